"""``tassn adapt`` on a short synthetic video with a tiny random network: outputs, guards and errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from predict_testdata import FRAMES, stage_checkpoint

from tassn.predict.adapt import ADAPT_JSON, ADAPTED_CKPT, AdaptStage, adapt_video
from tassn.predict.adapt_main import main as adapt_main
from tassn.predict.model import load_model
from tassn.predict.runner import predict_video
from tassn.predict.writers import PredictionArrays
from tassn.stages.base import LABELS_3D

BOX = (10.0, 12.0, 60.0, 62.0)
#: A random network's heatmap peaks are far below any real threshold: take every joint as a pseudo-label.
#: The collapse guard is off here; its own test turns it on.
TINY = dict(steps=4, lr=1e-3, batch_size=2, clip_len=3, min_confidence=0.0, min_joints=0, box=BOX, crop="box",
            collapse_fraction=0.0, mesh_format="none", overlay=False, progress=False)
#: Adaptation may sharpen or smooth the motion, but every joint keeps at least this share of its variance across
#: frames (a model collapsing to one hand would lose all of it).
VARIANCE_FRACTION = 0.5
#: The batch entries Stage 3 may see while adapting: all made from the video and the un-adapted model.
LABEL_FREE_KEYS = {"frames", "kp2d", "heatmaps", "visible", "silhouettes", "frame_index"}


def net_state(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in load_model(path, device="cpu").net.state_dict().items()}


def test_adapt_writes_predictions_and_a_checkpoint_predict_loads(blob_folder: Path, tiny_ckpt: Path,
                                                                  tmp_path: Path) -> None:
    out = adapt_video(blob_folder, tiny_ckpt, tmp_path / "adapted", **TINY)
    assert {"adapted.ckpt", "adapt.json", "predictions.npz", "keypoints3d.csv", "confidence.json", "run.json"} <= {
        p.name for p in out.iterdir()}
    report = json.loads((out / ADAPT_JSON).read_text())
    assert report["steps"] == 4 and report["frames"] == FRAMES and report["clips"] == FRAMES - 2
    assert report["settings"]["consistency_keeps_scale"] is True  # stage 3's recipe
    # the adapted checkpoint is plain tensors and values, and differs from the original in trained weights only
    raw = torch.load(out / ADAPTED_CKPT, map_location="cpu", weights_only=True)
    assert raw["tassn_stage"] == "stage3" and raw["tassn_adapted"]["steps"] == 4
    before, after = net_state(tiny_ckpt), net_state(out / ADAPTED_CKPT)
    assert before.keys() == after.keys()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= {"heatmap", "mesh", "pose"}, changed
    # it loads in predict, and predicting with it reproduces the adapt run's own predictions
    again = predict_video(blob_folder, out / ADAPTED_CKPT, tmp_path / "again", box=BOX, crop="box",
                          mesh_format="none", overlay=False, progress=False)
    a = PredictionArrays.load_npz(out / "predictions.npz")
    b = PredictionArrays.load_npz(again / "predictions.npz")
    np.testing.assert_allclose(a.kp3d, b.kp3d, atol=1e-6)
    run = json.loads((out / "run.json").read_text())
    assert Path(run["checkpoint"]) == (out / ADAPTED_CKPT).resolve()


def test_adapt_never_reads_labels(blob_folder: Path, tiny_ckpt: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Label files beside the frames change nothing, and Stage 3 sees only label-free batch entries."""
    poisoned = tmp_path / "poisoned"
    shutil.copytree(blob_folder, poisoned)
    rng = np.random.default_rng(0)
    np.save(poisoned / "kp3d.npy", rng.normal(size=(FRAMES, 21, 3)))
    np.savetxt(poisoned / "keypoints2d.csv", rng.normal(size=(FRAMES, 42)), delimiter=",")
    (poisoned / "labels.json").write_text(json.dumps({"kp2d": rng.normal(size=(FRAMES, 21, 2)).tolist()}))
    seen: list[set[str]] = []
    original_step = AdaptStage.training_step

    def recording_step(self, batch, batch_idx):  # noqa: ANN001, ANN202
        seen.append(set(batch))
        return original_step(self, batch, batch_idx)

    monkeypatch.setattr(AdaptStage, "training_step", recording_step)
    clean = adapt_video(blob_folder, tiny_ckpt, tmp_path / "clean", **TINY)
    dirty = adapt_video(poisoned, tiny_ckpt, tmp_path / "dirty", **TINY)
    assert len(seen) == 2 * TINY["steps"]
    assert all(keys <= LABEL_FREE_KEYS and not keys & set(LABELS_3D) for keys in seen), seen
    a, b = net_state(clean / ADAPTED_CKPT), net_state(dirty / ADAPTED_CKPT)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_adaptation_does_not_collapse_to_a_constant_hand(blob_folder: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    common = dict(box=BOX, crop="box", mesh_format="none", overlay=False, progress=False)
    before = PredictionArrays.load_npz(predict_video(blob_folder, tiny_ckpt, tmp_path / "before", **common)
                                       / "predictions.npz")
    var_before = before.kp3d[:, 1:].var(axis=0).sum(-1)  # per joint (the root is always 0), summed over x, y, z
    assert (var_before > 0).all()

    def ratio(out: Path) -> np.ndarray:
        after = PredictionArrays.load_npz(out / "predictions.npz")
        return after.kp3d[:, 1:].var(axis=0).sum(-1) / var_before

    # unguarded, a high learning rate flattens the motion: the criterion below is one that can fail
    unguarded = adapt_video(blob_folder, tiny_ckpt, tmp_path / "unguarded", **{**TINY, "steps": 12})
    assert ratio(unguarded).min() < VARIANCE_FRACTION
    # guarded (the default), every joint keeps the stated share of its variance, and the model still adapted
    guarded = adapt_video(blob_folder, tiny_ckpt, tmp_path / "guarded",
                          **{**TINY, "steps": 12, "lr": 1e-5, "collapse_fraction": VARIANCE_FRACTION,
                             "collapse_check_every": 1})
    assert (ratio(guarded) >= VARIANCE_FRACTION).all(), ratio(guarded).round(3)
    report = json.loads((guarded / ADAPT_JSON).read_text())
    assert report["collapse_variance_ratios"] and report["collapse_variance_ratios"][0]["min_ratio"] >= VARIANCE_FRACTION
    before_w, after_w = net_state(tiny_ckpt), net_state(guarded / ADAPTED_CKPT)
    assert any(not torch.equal(before_w[k], after_w[k]) for k in before_w)


def test_clear_errors(blob_folder: Path, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match=r"no 3 consecutive frames .*--min-confidence"):
        adapt_video(blob_folder, tiny_ckpt, tmp_path / "r1", **{**TINY, "min_confidence": 1.0, "min_joints": 21})
    with pytest.raises(ValueError, match="no keypoint file"):
        adapt_video(blob_folder, tiny_ckpt, tmp_path / "r2", **{**TINY, "crop": "keypoints"})
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        adapt_video(blob_folder, tiny_ckpt, busy, **TINY)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    missing = tmp_path / "missing.mp4"
    assert adapt_main(["--video", str(missing), "--ckpt", str(tiny_ckpt), "--out", str(tmp_path / "r3")]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert adapt_main(["--video", str(blob_folder), "--ckpt", str(tmp_path / "none.ckpt"), "--out",
                       str(tmp_path / "r4")]) == 2
    assert "none.ckpt" in capsys.readouterr().err
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 5))


def test_a_tracker_checkpoint_places_the_adapted_runs_crops(blob_folder: Path, tiny_ckpt: Path, tiny_net_config: dict,
                                                             tmp_path: Path) -> None:
    tracker = stage_checkpoint(tmp_path / "tracker.ckpt", tiny_net_config, stage="stage1", seed=5)
    tracking = {**TINY, "crop": "track", "min_confidence": 0.0}
    out = adapt_video(blob_folder, tiny_ckpt, tmp_path / "adapted", **tracking, tracker_ckpt=tracker)
    assert json.loads((out / "run.json").read_text())["tracker_checkpoint"] == str(tracker.resolve())
    with pytest.raises(ValueError, match="tracker-ckpt.*'box'"):
        adapt_video(blob_folder, tiny_ckpt, tmp_path / "r1", **TINY, tracker_ckpt=tracker)
    assert not (tmp_path / "r1").exists()


def test_a_hand_detector_serves_the_adapted_runs_tracking(blob_folder: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    from tassn.nets.hand_detector import HandBoxDetector

    net = HandBoxDetector(input_size=32, width=4)
    detector = tmp_path / "detector.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "tassn_stage": "detector",
                "hyper_parameters": {"input_size": 32, "width": 4}}, detector)
    tracking = {**TINY, "crop": "track", "box": None, "min_confidence": 0.0}
    out = adapt_video(blob_folder, tiny_ckpt, tmp_path / "adapted", **tracking, detector_ckpt=detector)
    run = json.loads((out / "run.json").read_text())
    assert run["detector_checkpoint"] == str(detector.resolve())
    assert run["tracking"]["searched_at"][0] == 0 and run["tracking"]["redetect_iou"] == 0.65
    with pytest.raises(ValueError, match="detector-ckpt.*'box'"):
        adapt_video(blob_folder, tiny_ckpt, tmp_path / "r1", **TINY, detector_ckpt=detector)
    assert not (tmp_path / "r1").exists()


def test_listed_in_tassn_help(capsys: pytest.CaptureFixture) -> None:
    from tassn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "tassn adapt --video" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["adapt", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--steps" in help_text and "--min-confidence" in help_text
