"""benchmarks/bench_train_data.py: ``bench_train --data-batch`` times each stage on its first training batch of the
synthetic videos, built as ``make`` builds the stage's data module, and says what is missing when it cannot."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "stages"))
from stage_fixtures import *  # noqa: E402,F401,F403  (tiny synthetic videos of both domains: data_root)
from stage_helpers import TINY_DATA  # noqa: E402

import bench_train  # noqa: E402
import bench_train_data  # noqa: E402

#: 32² crops, 2 clips of 2 frames: what the tiny videos (2 per split, 6 frames) can serve
TINY = bench_train.Size("tiny-32", 32, dict(bench_train.CPU_NET), batch=2, clip_len=2, steps=1, warmup=0)
#: the tiny videos' generator settings over the CPU recipe's (whose folders are other ones)
TINY_ARGS = tuple(f"--data.init_args.{k}={TINY_DATA[k]}" for k in (
    "num_train_videos", "num_val_videos", "num_test_videos", "frames_per_video", "image_size", "grabcut_iterations"))


@pytest.fixture(autouse=True)
def noise_batches_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test sets, the next one times noise batches again."""
    monkeypatch.setattr(bench_train_data, "data_batches", None)


def test_data_batches_have_the_training_keys_at_the_benchmark_shape(data_root: Path) -> None:
    batches = bench_train_data.DataBatches(root=data_root, overrides=TINY_ARGS)
    b, t, s = TINY.batch, TINY.clip_len, TINY.image_size
    target, reference = batches.batch("stage3", TINY, torch.device("cpu"))
    shapes = {k: tuple(v.shape) for k, v in target.items() if isinstance(v, torch.Tensor)}
    assert shapes == {"frames": (b, t, 3, s, s), "heatmaps": (b, t, 21, s // 4, s // 4), "kp2d": (b, t, 21, 2),
                      "visible": (b, t, 21), "silhouettes": (b, t, 1, s, s), "K": (b, t, 3, 3),
                      "frame_index": (b, t)}  # the target domain trains without 3D labels
    assert len(target["video"]) == b and 0.0 < float(target["silhouettes"].mean()) < 1.0
    assert float(target["frames"].std()) > 0.0 and bool(((target["kp2d"] >= 0) & (target["kp2d"] < s)).all())
    assert reference["gt_face_area_px"] > 0.0
    assert reference["gt_silhouette_fraction"] == pytest.approx(float(target["silhouettes"].mean()))
    assert 0.0 < reference["gt_true_silhouette_fraction"] < 1.0
    # the pre-training reads the source domain with its 3D labels, as make does; no stage renders it
    source, reference = batches.batch("pretrain", TINY, torch.device("cpu"))
    assert source["kp3d"].shape == (b, t, 21, 3) and source["mesh3d"].shape[:2] == (b, t)
    assert "silhouettes" not in source and reference == {}
    # the stage-3 ablation trains on stage 3's data: read once
    assert batches.batch("stage3 w/o L_c", TINY, torch.device("cpu"))[0]["frames"].equal(target["frames"])
    assert len(batches.cache) == 2


def test_a_stage_is_timed_on_its_data_batch(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batches = bench_train_data.DataBatches(root=data_root, overrides=TINY_ARGS)
    monkeypatch.setattr(bench_train_data, "data_batches", batches)
    seen: list[torch.Tensor] = []
    real = bench_train.train_step_fn
    monkeypatch.setattr(bench_train, "train_step_fn", lambda m, batch: seen.append(batch["frames"]) or real(m, batch))
    (row,) = bench_train.bench_train(TINY, torch.device("cpu"), ("stage2",), rounds=1)
    batch, reference = batches.batch("stage2", TINY, torch.device("cpu"))
    assert seen[0].equal(batch["frames"])
    assert row["gt_face_area_px"] == reference["gt_face_area_px"] and 0.0 < row["silhouette_fraction"] < 1.0
    assert bench_train_data.describe() == {"batches": "data", "data_root": str(data_root), "data_config": "cpu"}


def test_a_missing_data_folder_is_named_before_any_timing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "synthetic"
    monkeypatch.setattr(bench_train_data, "DATA_ROOT", missing)
    out = tmp_path / "train.json"
    with pytest.raises(SystemExit) as exit_:
        bench_train.main(["--sizes", "cpu", "--parts", "train", "--stages", "stage3", "--data-batch",
                          "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"--data-batch: data folder {missing} does not exist" in err
    assert "make data" in err and not out.exists()


def test_a_data_folder_without_the_stage_videos_names_the_missing_one(tmp_path: Path) -> None:
    batches = bench_train_data.DataBatches(root=tmp_path, overrides=TINY_ARGS)
    missing = rf"synthetic dataset folder {tmp_path}/target-train-\w+ does not exist"
    with pytest.raises(FileNotFoundError, match=missing):
        batches.batch("stage3", TINY, torch.device("cpu"))


def test_only_the_cpu_size_has_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench_train.main(["--sizes", "cpu", "paper", "--parts", "train", "--data-batch",
                          "--out", str(tmp_path / "train.json")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--data-batch: no generated training data for --sizes paper" in err
