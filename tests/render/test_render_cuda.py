"""The renderer and a stage-3 step on a CUDA device (run by benchmarks/gpu_check.sh; skipped without a GPU)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tassn.render.soft_rasterizer import soft_silhouette

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_train  # noqa: E402

pytestmark = pytest.mark.cuda


def test_soft_rasterizer_on_cuda_matches_cpu(cuda_device: torch.device) -> None:
    verts, _, faces, _, _ = bench_train.posed_hands(4, 64, seed=3)
    out = []
    for device in (torch.device("cpu"), cuda_device):
        v = verts.to(device).requires_grad_(True)
        alpha = soft_silhouette(v, faces.to(device), 64)
        (grad,) = torch.autograd.grad((alpha * torch.linspace(0, 1, alpha.numel(), device=device).view_as(alpha)).sum(), v)
        out.append((alpha.detach().cpu(), grad.cpu()))
    (a_cpu, g_cpu), (a_gpu, g_gpu) = out
    assert float((a_cpu > 0.5).float().mean()) > 0.05
    torch.testing.assert_close(a_gpu, a_cpu, atol=1e-5, rtol=0)
    torch.testing.assert_close(g_gpu, g_cpu, atol=1e-3 * float(g_cpu.abs().max()), rtol=1e-3)


def test_stage3_step_under_bf16_autocast_on_cuda(cuda_device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    size = bench_train.Size("cuda-64", 64, dict(bench_train.CPU_NET), batch=2, clip_len=2, steps=1, warmup=0)
    module = bench_train.build_stage("stage3", size).to(cuda_device)
    module.log = lambda *a, **k: None
    monkeypatch.setattr(bench_train, "autocast_dtype", torch.bfloat16)
    before = [p.detach().clone() for p in module.parameters()]
    bench_train.train_step_fn(module, bench_train.hand_batch(size, cuda_device))()  # raises on a non-finite loss
    moved = sum(int(not torch.equal(a, b.detach())) for a, b in zip(before, module.parameters(), strict=True))
    assert moved > 0
