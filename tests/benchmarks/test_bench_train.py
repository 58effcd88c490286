"""benchmarks/bench_train.py: realistic inputs, peak memory, one real stage step, the temporal price."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_train  # noqa: E402

TINY = bench_train.Size("tiny-32", 32, dict(bench_train.CPU_NET), batch=1, clip_len=2, steps=1, warmup=0)


def test_posed_hands_fill_the_crop() -> None:
    vertices_px, kp2d, faces, _, joints = bench_train.posed_hands(3, 64)
    assert vertices_px.shape[0] == 3 and kp2d.shape == (3, 21, 2) and joints.shape == (3, 21, 3)
    assert faces.dim() == 2 and faces.shape[1] == 3
    assert bool((kp2d >= 0).all() and (kp2d <= 63).all())
    # the joint farthest from the hand's centre (placed at the crop centre) is 35% of the crop away
    farthest = (kp2d - 31.5).abs().amax(dim=(1, 2))
    assert farthest.tolist() == pytest.approx([0.35 * 64] * 3, rel=1e-4)


def test_peak_memory_sees_an_allocation() -> None:
    memory = bench_train.PeakMemory(torch.device("cpu"))
    with memory.measure():
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        x += 1
        del x
    assert 48 * 2**20 < memory.peak_bytes < 256 * 2**20


def test_stage3_step_trains_and_times() -> None:
    rows = bench_train.bench_train(TINY, torch.device("cpu"), ("stage2", "stage3"))
    assert [r["stage"] for r in rows] == ["stage2", "stage3"]
    for r in rows:
        assert r["s_per_step"] > 0 and r["frames_per_s"] == pytest.approx(2 / r["s_per_step"])
    price = bench_train.temporal_price(rows)
    assert price[0]["ratio"] == pytest.approx(rows[1]["ms_per_frame"] / rows[0]["ms_per_frame"])


def test_pytorch3d_missing_is_reported_not_raised() -> None:
    from tassn.render import pytorch3d_available

    if pytorch3d_available():
        pytest.skip("PyTorch3D is installed here")
    rows = bench_train.bench_render(bench_train.Size("tiny-32", 32, {}, 1, 1, 1, 0, render_batch=2),
                                    torch.device("cpu"), backends=("pytorch3d",))
    assert rows[0]["backend"] == "pytorch3d" and "not installed" in rows[0]["skipped"]
