"""The LightningCLI ``predict`` path (VideoDataModule + VideoPredictionWriter) writes what predict_video writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_modules.video import VideoDataModule
from lightning.pytorch import LightningModule, Trainer
from predict_testdata import FRAMES, HEIGHT, WIDTH, stage_checkpoint

from tassn.predict.model import load_model
from tassn.predict.prediction_writer import VideoPredictionWriter
from tassn.predict.runner import predict_video
from tassn.predict.video_io import read_frames
from tassn.predict.writers import PredictionArrays
from tassn.stages.checkpoints import CheckpointMismatchError

BOX = [10.0, 12.0, 60.0, 62.0]


class PredictingStage(LightningModule):
    """The prediction side of a stage module: ``net`` and ``StageModule.predict_step``'s output."""

    stage = "stage3"

    def __init__(self, net) -> None:
        super().__init__()
        self.net = net

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        out = self.net.run(batch["frames"])
        return {"pose": out.pose, "mesh": out.mesh, "heatmaps": out.heatmaps[:, :, -1]}


def trainer(writer: VideoPredictionWriter) -> Trainer:
    return Trainer(accelerator="cpu", logger=False, callbacks=[writer], enable_progress_bar=False,
                   enable_model_summary=False)


def test_same_run_folder_as_predict_video(blob_folder: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    module = PredictingStage(load_model(tiny_ckpt, device="cpu").net)
    dm = VideoDataModule(str(blob_folder), box=BOX, clip_len=3, crop_size=64, batch_size=2)
    trainer(VideoPredictionWriter(str(tmp_path / "cli"), mm_scale=20.0)).predict(module, datamodule=dm,
                                                                                 return_predictions=False)
    direct = predict_video(blob_folder, tiny_ckpt, tmp_path / "direct", box=BOX, crop="box", clip_length=3,
                           mm_scale=20.0, confidence=False, progress=False)  # the CLI path has no reverse pass
    a = PredictionArrays.load_npz(tmp_path / "cli" / "predictions.npz")
    b = PredictionArrays.load_npz(direct / "predictions.npz")
    assert a.frame_index.tolist() == list(range(FRAMES))
    for name in ("kp2d", "confidence", "kp3d", "mesh", "crop_boxes"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=2e-3, err_msg=name)  # batched float32
    np.testing.assert_allclose(a.camera, b.camera, rtol=1e-4)
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == sorted(p.name for p in direct.iterdir())
    assert read_frames(tmp_path / "cli" / "overlay.mp4").shape == (FRAMES, HEIGHT, WIDTH, 3)


def test_refuses_existing_folder_and_wrong_stage(blob_folder: Path, tiny_net_config: dict, tmp_path: Path) -> None:
    stage1 = stage_checkpoint(tmp_path / "stage1.ckpt", tiny_net_config, stage="stage1")
    module = PredictingStage(load_model(stage1, allowed_stages=["stage1"], device="cpu").net)
    dm = VideoDataModule(str(blob_folder), box=BOX, clip_len=4, crop_size=64)
    with pytest.raises(CheckpointMismatchError, match="stage 'stage1'"):
        trainer(VideoPredictionWriter(str(tmp_path / "out"))).predict(module, datamodule=dm, ckpt_path=str(stage1))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "predictions.npz").write_bytes(b"")
    with pytest.raises(FileExistsError, match="overwrite"):
        trainer(VideoPredictionWriter(str(tmp_path / "used"))).predict(module, datamodule=dm)
    with pytest.raises(ValueError, match="mesh_format"):
        VideoPredictionWriter(str(tmp_path / "x"), mesh_format="stl")


def test_with_a_real_stage_module_and_its_checkpoint(blob_folder: Path, tiny_net_config: dict, tmp_path: Path) -> None:
    """Stage3's own predict_step feeds the writer, and the checkpoint Lightning writes for it runs predict_video."""
    stage3 = pytest.importorskip("tassn.stages.stage3", reason="the stage modules' dependencies are not all written")
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters_context

    from tassn.nets.pme import PME

    # what LightningCLI records while it instantiates the model from a config
    hparams = {"_class_path": "tassn.stages.Stage3",
               "net": {"class_path": "tassn.nets.PME", "init_args": dict(tiny_net_config)}}
    with _given_hyperparameters_context(hparams=hparams, instantiator="lightning.pytorch.cli.instantiate_module"):
        module = stage3.Stage3(net=PME(**tiny_net_config))
    dm = VideoDataModule(str(blob_folder), box=BOX, clip_len=4, crop_size=64)
    lightning_run = trainer(VideoPredictionWriter(str(tmp_path / "cli"), mesh_format="none", overlay=False))
    lightning_run.predict(module, datamodule=dm, return_predictions=False)
    ckpt = tmp_path / "stage3.ckpt"
    lightning_run.save_checkpoint(ckpt)
    direct = predict_video(blob_folder, ckpt, tmp_path / "direct", box=BOX, crop="box", clip_length=4,
                           mesh_format="none", overlay=False, progress=False)
    a = PredictionArrays.load_npz(tmp_path / "cli" / "predictions.npz")
    b = PredictionArrays.load_npz(direct / "predictions.npz")
    np.testing.assert_allclose(a.kp3d, b.kp3d, atol=1e-4)
    np.testing.assert_allclose(a.kp2d, b.kp2d, atol=2e-3)
