"""benchmarks/video_scoring.py, bench_confidence.py and bench_adapt.py: the scoring on hand-made numbers, the order
in which labels are read, and whole runs on a tiny random checkpoint and a hand-made target test folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

ROOT_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT_DIR / "benchmarks"))
sys.path.insert(0, str(ROOT_DIR / "tests" / "predict"))
from predict_testdata import TINY_NET, blob_centre, blob_frames, sphere_template, stage_checkpoint  # noqa: E402

import bench_adapt  # noqa: E402
import bench_confidence  # noqa: E402
import tassn.hand.template as hand_template  # noqa: E402
import video_scoring  # noqa: E402
from tassn.hand.skeleton import REF_BONE, ROOT  # noqa: E402
from tassn.predict.writers import PredictionArrays  # noqa: E402

FRAMES = 8
#: a tiny random network finds no confident joint: adapt takes every joint, without the collapse guard
TINY_ADAPT = "--min-confidence 0 --min-joints 0 --collapse-fraction 0 --batch-size 2 --clip-len 3 --lr 1e-3"


def hand_mm(seed: int = 0) -> np.ndarray:
    """A 21×3 pose in mm, 500 mm from the camera, reference bone 30 mm long."""
    pose = np.random.default_rng(seed).normal(0.0, 30.0, (21, 3))
    pose[:, 2] += 500.0
    pose[REF_BONE[1]] = pose[REF_BONE[0]] + [0.0, 30.0, 0.0]
    return pose


def normalised(pose_mm: np.ndarray) -> np.ndarray:
    return (pose_mm - pose_mm[..., ROOT : ROOT + 1, :]) / 30.0


def arrays(kp3d: np.ndarray, kp2d: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(kp3d=kp3d, kp2d=kp2d, frame_index=np.arange(len(kp3d)))


# ----------------------------------------------------------------------------------------------- hand-made numbers
def test_scorer_on_hand_made_numbers() -> None:
    truth3d = np.stack([hand_mm() + [2.0 * t, 0.0, 0.0] for t in range(4)])  # moves 2 mm a frame: no acceleration
    truth2d = np.zeros((4, 21, 2))
    pred3d = normalised(truth3d)
    pred3d[2, 8] += [0.5, 0.0, 0.0]  # frame 2, joint 8: half a reference bone = 15 mm off
    pred2d = truth2d.copy()
    pred2d[:2, :, 0] = 3.0  # inside PCK@5
    pred2d[2:, :, 1] = 8.0  # outside
    labels = video_scoring.VideoLabels(kp2d=truth2d, kp3d=truth3d)
    scorer = video_scoring.VideoScorer(pck_px=5.0)
    row = scorer.add("v", arrays(pred3d, pred2d), labels)
    assert row["frames"] == 4 and row["pck2d"] == pytest.approx(0.5) and row["error_px"] == pytest.approx(5.5)
    assert row["epe_mm"] == pytest.approx(15.0 / (4 * 21))
    # second differences at frames 1 and 2: the 15 mm offset enters once (frame 1's t+1) and twice (frame 2)
    assert row["accel_mm"] == pytest.approx(45.0 / (2 * 21)) and row["jitter_gt_mm"] == pytest.approx(0.0, abs=1e-9)
    assert row["pa_epe_mm"] > 0.0 and row["st_epe_mm"] > 0.0
    errors = video_scoring.joint_errors_mm(pred3d, truth3d)
    assert errors[2, 8] == pytest.approx(15.0) and errors.sum() == pytest.approx(15.0)
    # a second video, exact: the total pools the frames (and never chains one video's frames to the other's)
    exact = scorer.add("w", arrays(normalised(truth3d), truth2d), labels)
    assert exact["epe_mm"] == pytest.approx(0.0, abs=1e-9) and exact["pck2d"] == 1.0
    total = scorer.total()
    assert total["frames"] == 8 and total["epe_mm"] == pytest.approx(15.0 / (8 * 21))
    assert total["accel_mm"] == pytest.approx(45.0 / (4 * 21)) and total["pck2d"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="video v: 3 predicted frames"):
        scorer.add("v", arrays(pred3d[:3], pred2d[:3]), labels)


def test_confidence_scoring_on_hand_made_numbers() -> None:
    confidence = np.array([[0.9, 0.9, 0.2, 0.8], [0.1, 0.7, 0.3, 0.6]])
    errors = np.array([[0.0, 5.0, 30.0, 10.0], [0.0, 12.0, 25.0, 40.0]])
    c, e = bench_confidence.scored_joints(confidence, errors)  # column 0 (the wrist) is left out
    assert c.tolist() == [0.9, 0.2, 0.8, 0.7, 0.3, 0.6] and e.tolist() == [5.0, 30.0, 10.0, 12.0, 25.0, 40.0]
    # wrong: 30 (0.2), 25 (0.3), 40 (0.6); right: 5 (0.9), 10 (0.8), 12 (0.7) → every wrong joint is less confident
    assert bench_confidence.auroc_or_none(c, e, 20.0) == (pytest.approx(1.0), None)
    auroc, why = bench_confidence.auroc_or_none(c, e, 50.0)
    assert auroc is None and "both sides of 50.0 mm" in why
    rows = [{"confidence": c[:3], "errors": e[:3], "auroc": 1.0}, {"confidence": c[3:], "errors": e[3:], "auroc": None}]
    summary = bench_confidence.summarise(rows, 20.0, bins=2, joints=3)
    assert summary["auroc"] == pytest.approx(1.0) and summary["goal_met"] and summary["joints"] == 6
    # within a joint only the third has frames on both sides (10 mm at 0.8, 40 mm at 0.6): ranked right
    assert summary["auroc_within_joint_mean"] == pytest.approx(1.0)
    # a per-joint factor reorders joints, not frames of one joint: the pooled AUROC moves, the within-joint one not
    factor = np.tile([1.0, 1.0, 0.1], 2)
    scaled = bench_confidence.summarise([{"confidence": c * factor, "errors": e, "auroc": None}], 20.0, bins=2, joints=3)
    assert scaled["auroc"] < 1.0 and scaled["auroc_within_joint_mean"] == pytest.approx(1.0)
    assert summary["wrong_fraction"] == 0.5 and summary["videos_with_auroc"] == 1
    assert [b["wrong_fraction"] for b in summary["bins"]] == [1.0, 0.0]
    flipped = [{"confidence": 1.0 - c, "errors": e, "auroc": 0.0}]
    assert not bench_confidence.summarise(flipped, 20.0, bins=2, joints=3)["goal_met"]


def test_adapt_summary_on_hand_made_numbers() -> None:
    before = {"pck2d": 0.5, "epe_mm": 20.0, "pa_epe_mm": 10.0, "accel_mm": None}
    after = {"0": {"pck2d": 0.6, "epe_mm": 18.0, "pa_epe_mm": 9.0, "accel_mm": 1.0},
             "1": {"pck2d": 0.7, "epe_mm": 16.0, "pa_epe_mm": 9.0, "accel_mm": None}}
    summary = bench_adapt.summarise(before, after)
    assert summary["after"]["epe_mm"] == pytest.approx({"mean": 17.0, "std": 1.4142136, "n": 2})
    assert summary["change"]["epe_mm"] == pytest.approx(-3.0) and summary["change"]["pck2d"] == pytest.approx(0.15)
    assert summary["after"]["accel_mm"] == {"mean": 1.0, "std": 0.0, "n": 1}
    assert summary["change"]["accel_mm"] is None  # no before value: no change invented
    assert bench_adapt.over_seeds([None, None]) is None


# ---------------------------------------------------------------------------------------------- whole runs, tiny
@pytest.fixture
def tiny_ckpt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = sphere_template()
    monkeypatch.setattr(hand_template, "load_template", lambda name: template)
    return stage_checkpoint(tmp_path / "stage3.ckpt", {**TINY_NET, "graph_cache_dir": str(tmp_path / "graphs")})


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """``target-test-abc/`` laid out as the synthetic generator writes it: two videos of a moving blob, with
    labels (the blob's centre in 2D, a hand moving with it in 3D) and masks."""
    root = tmp_path / "data"
    folder = root / "target-test-abc"
    names = ["target_test_000", "target_test_001"]
    kp2d = np.zeros((len(names), FRAMES, 21, 2), np.float32)
    kp3d = np.zeros((len(names), FRAMES, 21, 3), np.float32)
    spread = np.random.default_rng(1).normal(0.0, 4.0, (21, 2))
    for i, name in enumerate(names):
        for sub in ("videos", "masks"):
            (folder / sub / name).mkdir(parents=True)
        for t, frame in enumerate(blob_frames(FRAMES)):
            cv2.imwrite(str(folder / "videos" / name / f"frame_{t:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(folder / "masks" / name / f"frame_{t:05d}.png"), frame[..., 0])
            kp2d[i, t] = np.array(blob_centre(t)) + spread
            kp3d[i, t] = hand_mm(i) + [3.0 * t, 2.0 * t, 0.0]
    np.savez(folder / "annotations.npz", names=np.array(names), kp2d=kp2d, kp3d=kp3d)
    return root


def mann_whitney_auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½ P(tie), counted pair by pair."""
    pos, neg = score[positive], score[~positive]
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))


def test_bench_confidence_on_a_tiny_checkpoint(tiny_ckpt: Path, data_root: Path, tmp_path: Path) -> None:
    out, png, work = tmp_path / "confidence.json", tmp_path / "images" / "confidence_error.png", tmp_path / "work"
    code = bench_confidence.main(["--ckpt", str(tiny_ckpt), "--data", str(data_root), "--out", str(out), "--png",
                                  str(png), "--work", str(work), "--device", "cpu"])
    assert code == 0
    report = json.loads(out.read_text())
    assert [v["video"] for v in report["videos"]] == ["target_test_000", "target_test_001"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the scores, recomputed here from the saved predictions and the labels with plain numpy
    with np.load(data_root / "target-test-abc" / "annotations.npz") as ann:
        truth = ann["kp3d"].astype(np.float64)
    confidence, errors = [], []
    for i, video in enumerate(report["videos"]):
        pred = PredictionArrays.load_npz(work / video["video"] / "predict" / "predictions.npz")
        bone = np.linalg.norm(truth[i][:, REF_BONE[0]] - truth[i][:, REF_BONE[1]], axis=-1)
        mm = (pred.kp3d - pred.kp3d[:, :1]) * bone[:, None, None] + truth[i][:, :1]
        err = np.linalg.norm(mm - truth[i], axis=-1)
        assert video["epe_mm"] == pytest.approx(err.mean(), rel=1e-6)
        confidence.append(pred.extra["confidence3d"][:, 1:].ravel())
        errors.append(err[:, 1:].ravel())
    c, e = np.concatenate(confidence), np.concatenate(errors)
    assert report["summary"]["joints"] == c.size == 2 * FRAMES * 20
    assert report["summary"]["wrong_fraction"] == pytest.approx((e > 20.0).mean())
    if report["summary"]["auroc"] is None:  # a random network may be wrong (or right) everywhere
        assert (e > 20.0).all() or (e <= 20.0).all()
    else:
        assert report["summary"]["auroc"] == pytest.approx(mann_whitney_auroc(1.0 - c, e > 20.0), abs=1e-6)


def test_bench_adapt_on_a_tiny_checkpoint(tiny_ckpt: Path, data_root: Path, tmp_path: Path) -> None:
    out, table, work = tmp_path / "adapt.json", tmp_path / "adapt.md", tmp_path / "work"
    code = bench_adapt.main(["--ckpt", str(tiny_ckpt), "--data", str(data_root), "--out", str(out), "--markdown",
                             str(table), "--work", str(work), "--limit", "1", "--seeds", "0", "1", "--steps", "2",
                             "--adapt-args", TINY_ADAPT, "--device", "cpu"])
    assert code == 0
    report = json.loads(out.read_text())
    (video,) = report["videos"]
    assert video["video"] == "target_test_000" and video["refused_seeds"] == []
    assert set(video["adapt_seconds"]) == {"0", "1"} and all(s > 0 for s in video["adapt_seconds"].values())
    assert all(video["adapt"][s]["steps"] == 2 for s in ("0", "1"))
    # after: the adapted weights' predictions, scored per seed; before: the checkpoint's own
    before = PredictionArrays.load_npz(work / "target_test_000" / "before" / "predictions.npz")
    after = PredictionArrays.load_npz(work / "target_test_000" / "after-seed0" / "predictions.npz")
    assert not np.allclose(before.kp3d, after.kp3d)
    assert video["after_per_seed"]["0"]["epe_mm"] != video["before"]["epe_mm"]
    overall = report["overall"]
    assert overall["after"]["epe_mm"]["n"] == 2 and overall["before"]["epe_mm"] == video["before"]["epe_mm"]
    text = table.read_text()
    assert text.startswith("| model | 2D PCK@5px ↑ | EPE (mm) ↓ | PA-EPE (mm) ↓ | ACCEL (mm/f²) ↓ |")
    assert f"| un-adapted | {video['before']['pck2d']:.3f} | {video['before']['epe_mm']:.1f} |" in text
    assert "| adapted (2 steps, seeds 0 1) | " in text and "| target_test_000 | 8 | " in text


# -------------------------------------------------------------------------------------- labels only after predicting
def only_frames(folder: Path) -> bool:
    """The folder holds frame images and nothing else, and no label file sits in it or above it."""
    return (all(p.suffix == ".png" for p in folder.iterdir())
            and not any((p / "annotations.npz").exists() for p in [folder, *folder.parents]))


def test_labels_are_read_only_after_the_predictions(data_root: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    truth = {}
    with np.load(data_root / "target-test-abc" / "annotations.npz") as ann:
        for name, kp3d, kp2d in zip(ann["names"], ann["kp3d"], ann["kp2d"], strict=True):
            truth[str(name)] = (normalised(kp3d.astype(np.float64)), kp2d.astype(np.float64))

    def fake_predict(video: Path, ckpt: Path, out: Path, options: object = (), device: str = "auto") -> object:
        assert only_frames(video), f"{video} is not a folder of frames alone"
        name = video.parent.name
        events.append(("predict", name))
        kp3d, kp2d = truth[name]
        return SimpleNamespace(kp3d=kp3d, kp2d=kp2d, frame_index=np.arange(len(kp3d)),
                               extra={"confidence3d": np.linspace(0, 1, kp3d.shape[0] * 21).reshape(-1, 21)})

    def fake_adapt(video: Path, ckpt: Path, out: Path, seed: int, steps: int, options: object = (),
                   device: str = "auto") -> tuple[Path, dict]:
        assert only_frames(video)
        events.append(("adapt", video.parent.name))
        return tmp_path / "adapted.ckpt", {"steps": steps}

    def recording_labels(folder: Path, name: str) -> video_scoring.VideoLabels:
        events.append(("labels", name))
        return video_scoring.load_labels(folder, name)

    ckpt = tmp_path / "stage3.ckpt"
    ckpt.write_bytes(b"")
    for module in (bench_confidence, bench_adapt):
        monkeypatch.setattr(module, "predict", fake_predict)
        monkeypatch.setattr(module, "load_labels", recording_labels)
    monkeypatch.setattr(bench_adapt, "adapt", fake_adapt)
    common = ["--ckpt", str(ckpt), "--data", str(data_root), "--out", str(tmp_path / "o.json")]
    assert bench_confidence.main([*common, "--png", str(tmp_path / "c.png"), "--work", str(tmp_path / "w1")]) == 0
    assert events == [("predict", "target_test_000"), ("labels", "target_test_000"),
                      ("predict", "target_test_001"), ("labels", "target_test_001")]
    events.clear()
    assert bench_adapt.main([*common, "--seeds", "0", "1", "--work", str(tmp_path / "w2"), "--limit", "1"]) == 0
    assert events == [("predict", "target_test_000"), ("adapt", "target_test_000"), ("predict", "target_test_000"),
                      ("adapt", "target_test_000"), ("predict", "target_test_000"), ("labels", "target_test_000")]
    # the fake predictions are the labels themselves: scored as exact
    assert json.loads((tmp_path / "o.json").read_text())["overall"]["before"]["epe_mm"] == pytest.approx(0.0, abs=1e-4)


def test_missing_inputs_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_confidence.main(["--ckpt", str(tmp_path / "none.ckpt")]) == 2
    assert "checkpoint" in capsys.readouterr().err
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"")
    assert bench_adapt.main(["--ckpt", str(ckpt), "--data", str(tmp_path)]) == 2
    assert "target-test-*/ folder with annotations.npz" in capsys.readouterr().err
    folder = tmp_path / "target-test-q"
    folder.mkdir()
    np.savez(folder / "annotations.npz", names=np.array(["a"]))
    with pytest.raises(ValueError, match=r"annotations.npz: no video 'b'"):
        video_scoring.load_labels(folder, "b")
    with pytest.raises(ValueError, match=r"annotations.npz: expected a synthetic annotations file"):
        video_scoring.load_labels(folder, "a")


def test_a_video_adapt_refuses_is_reported_not_raised(tiny_ckpt: Path, data_root: Path, tmp_path: Path) -> None:
    """A random network has no joint of the default confidence 0.3: `tassn adapt` refuses, the benchmark notes it."""
    frames = video_scoring.stage_frames(data_root / "target-test-abc" / "videos" / "target_test_000", tmp_path / "f")
    checkpoint, report = bench_adapt.adapt(frames, tiny_ckpt, tmp_path / "adapted", seed=0, steps=2, device="cpu")
    assert checkpoint is None and "consecutive frames" in report["refused"]
    with pytest.raises(ValueError, match="steps and batch_size must be at least 1"):  # other errors still raise
        bench_adapt.adapt(frames, tiny_ckpt, tmp_path / "again", seed=0, steps=0, device="cpu")
