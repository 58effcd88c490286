"""The same run folder from the LightningCLI ``predict`` subcommand, as a prediction-writer callback.

With :class:`data_modules.video.VideoDataModule` serving the clips and a stage's ``predict_step`` returning
``{"pose" B×T×21×3, "mesh" B×T×V×3, "heatmaps" B×T×21×h×w}``, this callback decodes and collects every valid
frame and, when prediction ends, writes exactly what ``tassn predict --video`` writes (the recurrence restarts
at every clip here, as in training; there is no reverse pass, so no forward/backward confidence either)::

    tassn predict --config experiments/stage3.yaml --ckpt_path best.ckpt \\
        --data data_modules.video.VideoDataModule --data.video in.mp4 --data.box "[120, 80, 360, 320]" \\
        --trainer.callbacks+=tassn.predict.prediction_writer.VideoPredictionWriter \\
        --trainer.callbacks.out_dir runs/in

It runs in one process (the overlay re-reads the video); under several devices only rank 0 would see its share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

from tassn.stages.checkpoints import CheckpointMismatchError, checkpoint_stage, read_checkpoint

from .decode import KEYPOINT_METHODS, heatmaps_to_keypoints
from .model import PREDICT_STAGES
from .overlay import OverlayStyle
from .runner import UNITS, assemble, write_run_outputs
from .writers import MESH_FORMATS, RUN_JSON, check_out_dir, run_out_dir

PREDICTION_KEYS: tuple[str, ...] = ("pose", "mesh", "heatmaps")


class VideoPredictionWriter(Callback):
    """Writes a prediction run folder (see :mod:`tassn.predict.writers`) from ``trainer.predict`` on a video.

    A plain callback rather than Lightning's ``BasePredictionWriter``: it needs each batch's own ``frame_index``,
    not the sampler's indices, which an iterable video dataset does not have.

    Args:
        out_dir: the run folder; must not exist or be empty unless ``overwrite``.
        mm_scale: reference-bone (middle MCP→PIP) length in mm; adds millimetre outputs.
        mesh_format: ``obj``, ``ply`` or ``none``.
        overlay: write ``overlay.mp4``.
        overwrite: replace an earlier run's outputs in ``out_dir``.
        keypoint_method, heatmap_temperature: how heatmaps become keypoints (see
            :func:`~tassn.predict.decode.heatmaps_to_keypoints`).
        allowed_stages: stages whose checkpoints may be predicted with (checked when ``--ckpt_path`` is given).
    """

    def __init__(
        self,
        out_dir: str,
        mm_scale: float | None = None,
        mesh_format: str = "obj",
        overlay: bool = True,
        overwrite: bool = False,
        keypoint_method: str = "quadratic",
        heatmap_temperature: float = 0.25,
        allowed_stages: Sequence[str] = PREDICT_STAGES,
    ) -> None:
        super().__init__()
        if mesh_format not in MESH_FORMATS:
            raise ValueError(f"mesh_format must be one of {MESH_FORMATS}, got {mesh_format!r}")
        if keypoint_method not in KEYPOINT_METHODS:
            raise ValueError(f"keypoint_method must be one of {KEYPOINT_METHODS}, got {keypoint_method!r}")
        if mm_scale is not None and not mm_scale > 0:
            raise ValueError(f"mm_scale (reference bone length in mm) must be positive, got {mm_scale}")
        self.out_dir = Path(out_dir)
        self.mm_scale = mm_scale
        self.mesh_format = mesh_format
        self.overlay = overlay
        self.overwrite = overwrite
        self.keypoint_method = keypoint_method
        self.heatmap_temperature = heatmap_temperature
        self.allowed_stages = tuple(allowed_stages)
        self._parts: dict[str, list[np.ndarray]] = {}
        self._checked_ckpt: str | None = None

    def _datamodule(self, trainer: Trainer) -> Any:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "source") or not hasattr(datamodule, "left_hand"):
            raise ValueError(
                "VideoPredictionWriter writes predictions of a video: use --data data_modules.video.VideoDataModule"
            )
        return datamodule

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._checked_ckpt: str | None = None

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Check the stage on the dict Lightning loaded (weights-only) for ``--ckpt_path``: no second read."""
        self._check_stage(checkpoint, trainer.ckpt_path)

    def _check_stage(self, checkpoint: Mapping[str, Any], path: str | None) -> None:
        stage = checkpoint_stage(checkpoint, path or "<checkpoint>")
        if stage not in self.allowed_stages:
            raise CheckpointMismatchError(
                f"{path} was written by stage {stage!r}; predicting needs a trained network from "
                f"one of {list(self.allowed_stages)}"
            )
        self._checked_ckpt = path

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._datamodule(trainer)
        check_out_dir(self.out_dir, self.overwrite)
        if trainer.ckpt_path and self._checked_ckpt != trainer.ckpt_path:
            # Lightning calls callbacks' on_load_checkpoint only for checkpoints with callback state
            self._check_stage(read_checkpoint(trainer.ckpt_path), trainer.ckpt_path)
        self._parts = {k: [] for k in ("frame_index", "kp_crop", "confidence", "pose", "mesh", "crop_box")}

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Mapping[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        prediction = outputs
        if not isinstance(prediction, Mapping) or any(k not in prediction for k in PREDICTION_KEYS):
            raise ValueError(
                f"{type(pl_module).__name__}.predict_step must return a dict with {list(PREDICTION_KEYS)}, "
                f"got {type(prediction).__name__}"
            )
        valid = batch["valid"].bool()
        heatmaps = prediction["heatmaps"][valid]
        kp, conf = heatmaps_to_keypoints(heatmaps, batch["frames"].shape[-1], self.keypoint_method,
                                         self.heatmap_temperature)
        parts = {
            "frame_index": batch["frame_index"][valid], "kp_crop": kp, "confidence": conf,
            "pose": prediction["pose"][valid], "mesh": prediction["mesh"][valid], "crop_box": batch["crop_box"][valid],
        }
        for key, value in parts.items():
            self._parts[key].append(value.detach().cpu().numpy())

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        datamodule = self._datamodule(trainer)
        if not self._parts.get("frame_index"):
            raise ValueError(f"no frames were predicted from {datamodule.video}")
        data = {k: np.concatenate(v) for k, v in self._parts.items()}
        order = np.argsort(data["frame_index"], kind="stable")
        data = {k: v[order] for k, v in data.items()}
        source = datamodule.source
        size = (source.info.width, source.info.height)
        arrays = assemble(
            data["kp_crop"].astype(np.float64), data["confidence"], data["pose"].astype(np.float64), data["mesh"],
            data["crop_box"], datamodule.crop.size, pl_module.net.template_faces.cpu().numpy(), source.info.fps,
            size, datamodule.left_hand, self.mm_scale, frame_index=data["frame_index"],
        )
        with run_out_dir(self.out_dir, self.overwrite) as staging:  # moved into out_dir once complete
            outputs = write_run_outputs(arrays, staging, source, self.mesh_format, self.overlay, OverlayStyle(),
                                            progress=trainer.progress_bar_callback is not None)
            run = {
                "video": str(Path(datamodule.video).resolve()),
                "checkpoint": str(trainer.ckpt_path) if trainer.ckpt_path else None,
                "stage": getattr(pl_module, "stage", None),
                "frames": len(arrays),
                "fps": source.info.fps,
                "image_size": list(size),
                "crop": datamodule.crop_mode,
                "crop_size": datamodule.crop.size,
                "settings": {"clip_len": datamodule.clip_len, "left_hand": datamodule.left_hand,
                             "mm_scale": self.mm_scale, "mesh_format": self.mesh_format,
                             "keypoint_method": self.keypoint_method, "heatmap_temperature": self.heatmap_temperature},
                "units": UNITS | {"kp3d_mm": "kp3d × mm_scale" if self.mm_scale is not None else None,
                                  "meshes": "mm" if self.mm_scale is not None else "as kp3d"},
                "outputs": outputs,
            }
            (staging / RUN_JSON).write_text(json.dumps(run, indent=2, default=str) + "\n")
