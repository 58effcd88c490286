"""benchmarks/bench_train.py: realistic inputs, peak memory, one real stage step, the temporal price."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_train  # noqa: E402
import bench_train_profile  # noqa: E402
import bench_train_report  # noqa: E402

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
    # in a fresh process: here, memory freed by earlier tests may be reused without growing the resident set
    script = (
        "import time, torch, bench_train\n"
        "memory = bench_train.PeakMemory(torch.device('cpu'))\n"
        "with memory.measure():\n"
        "    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched\n"
        "    x += 1\n"
        "    time.sleep(0.1)  # held for many sampling intervals, as a timed step is\n"
        "    del x\n"
        "print(memory.peak_bytes)\n"
    )
    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(benchmarks), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    peak = int(out.stdout.split()[-1])
    assert 48 * 2**20 < peak < 256 * 2**20

def test_stages_are_timed_interleaved_with_ratio_spread(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real = bench_train.train_step_fn

    def logged(module: torch.nn.Module, batch: dict) -> object:
        step = real(module, batch)
        name = type(module).__name__

        def run() -> None:
            order.append(name)
            step()

        return run

    monkeypatch.setattr(bench_train, "train_step_fn", logged)
    rows = bench_train.bench_train(TINY, torch.device("cpu"), ("stage2", "stage3"), rounds=3)
    assert order == ["Stage2", "Stage3"] * 3  # warm-up 0: A B A B A B, never A A A B B B
    assert [r["stage"] for r in rows] == ["stage2", "stage3"]
    for r in rows:
        assert r["s_per_step"] > 0 and r["frames_per_s"] == pytest.approx(2 / r["s_per_step"])
        assert r["rounds"] == 3 and r["ratio_to"] == "stage2"
        assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
    assert rows[0]["ratio"] == rows[0]["ratio_min"] == rows[0]["ratio_max"] == 1.0
    # both render: their meshes' size beside the batch's own hands
    gt_fraction = float(bench_train.hand_batch(TINY, torch.device("cpu"))["silhouettes"].mean())
    for r in rows:
        assert r["face_area_px"] > 0 and 0 < r["silhouette_fraction"] < 1 and r["init"] == "fresh"
        assert r["gt_silhouette_fraction"] == pytest.approx(gt_fraction) and r["gt_face_area_px"] > 0
    price = bench_train_report.temporal_price(rows)
    assert price[0]["ratio"] == pytest.approx(rows[1]["ms_per_frame"] / rows[0]["ms_per_frame"])


def test_compare_times_both_renderer_methods_interleaved_with_spread() -> None:
    size = bench_train.Size("tiny-32", 32, dict(bench_train.CPU_NET), 1, 2, 1, 0, render_batch=2)
    rows = bench_train_profile.bench_compare(size, torch.device("cpu"), rounds=2)
    assert [r["case"] for r in rows] == ["renderer fwd+bwd", "stage3 step"]
    for r in rows:
        assert r["speedup_min"] <= r["speedup"] <= r["speedup_max"] and r["rounds"] == 2
    assert rows[0]["max_alpha_diff"] < 1e-5 and rows[0]["max_grad_rel_diff"] < 1e-3


def test_silhouette_options_reach_the_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bench_train.STAGE_OPTIONS, "silhouette_divisor", 2)
    monkeypatch.setitem(bench_train.STAGE_OPTIONS, "batch_directions", True)
    module = bench_train.build_stage("stage3", TINY)
    assert module.silhouette_size == 16 and module.renderer.image_size == 16 and module.batch_directions


def test_stage3_step_trains_under_bf16_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--autocast bf16`` on the CPU: the step runs, its loss is finite and the weights move."""
    monkeypatch.setattr(bench_train, "autocast_dtype", torch.bfloat16)
    module = bench_train.build_stage("stage3", TINY)
    module.log = lambda *a, **k: None
    before = [p.detach().clone() for p in module.parameters()]
    bench_train.train_step_fn(module, bench_train.hand_batch(TINY, torch.device("cpu")))()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, module.parameters(), strict=True))


def test_profile_reports_the_renderer_share() -> None:
    prof = bench_train_profile.profile_stage3(TINY, torch.device("cpu"))
    r = prof["renderer"]
    assert r["forward_ms"] > 0 and r["backward_ms"] > 0 and 0 < r["share_of_step"] < 1
    text = bench_train_report.report({"device": "cpu", "machine": {}, "train": [], "profile": prof})
    assert f"= {r['share_of_step']:.1%} of" in text and "Renderer in the profiled stage-3 step" in text
    assert r["face_area_px"] > 0 and r["gt_face_area_px"] > 0 and 0 < r["gt_silhouette_fraction"] < 1
    assert f"mean face {r['face_area_px']:.2f} px² (batch's hands {r['gt_face_area_px']:.2f})" in text
    assert "PME weights: fresh PME" in text


def test_pytorch3d_missing_is_reported_not_raised() -> None:
    from tassn.render import pytorch3d_available

    if pytorch3d_available():
        pytest.skip("PyTorch3D is installed here")
    rows = bench_train.bench_render(bench_train.Size("tiny-32", 32, {}, 1, 1, 1, 0, render_batch=2),
                                    torch.device("cpu"), backends=("pytorch3d",))
    assert rows[0]["backend"] == "pytorch3d" and "not installed" in rows[0]["skipped"]
