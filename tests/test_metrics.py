"""Keypoint metrics: a numpy reference, known offsets, and a 2-process DDP sync."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tassn.hand.normalize import normalize_3d
from tassn.heatmaps import heatmap_argmax
from tassn.metrics import (
    AUC_20_50_THRESHOLDS_MM,
    PCK2D,
    PCK_THRESHOLDS_MM,
    SCALAR_KEYS,
    PoseMetrics3D,
)


def random_hands(n: int, seed: int, noise_mm: float = 15.0) -> tuple[torch.Tensor, torch.Tensor]:
    """GT joints (mm, camera frame) and noisy predictions in normalised space."""
    g = torch.Generator().manual_seed(seed)
    gt = torch.randn(n, 21, 3, generator=g, dtype=torch.float64) * 40 + torch.tensor([0.0, 0.0, 500.0])
    pred_mm = gt + torch.randn(n, 21, 3, generator=g, dtype=torch.float64) * noise_mm
    pred_norm, _, _ = normalize_3d(
        pred_mm, gt
    )  # normalised with the GT root and bone, like a perfect scale guess
    return pred_norm.float(), gt.float()


def numpy_reference(pred_norm: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    bone = np.linalg.norm(gt[:, 9] - gt[:, 10], axis=-1)
    pred_mm = (pred_norm - pred_norm[:, :1]) * bone[:, None, None] + gt[:, :1]
    e = np.linalg.norm(pred_mm - gt, axis=-1).ravel()
    t = np.linspace(0, 50, 20)
    pck = np.array([(e <= x).mean() for x in t])
    t2 = np.linspace(20, 50, 31)
    pck2 = np.array([(e <= x).mean() for x in t2])
    return {
        "epe_mm": e.mean(),
        "epe_median_mm": float(np.median(e)),
        "auc_0_50": np.trapezoid(pck, t) / 50.0,
        "auc_20_50": np.trapezoid(pck2, t2) / 30.0,
    }


def test_grids_are_the_documented_ones() -> None:
    assert np.allclose(PCK_THRESHOLDS_MM, np.linspace(0, 50, 20))
    assert np.allclose(AUC_20_50_THRESHOLDS_MM, np.linspace(20, 50, 31))


def test_matches_numpy_reference_over_several_updates() -> None:
    pred, gt = random_hands(64, seed=0)
    metric = PoseMetrics3D()
    for chunk in range(4):
        sl = slice(16 * chunk, 16 * (chunk + 1))
        metric.update(pred[sl].reshape(4, 4, 21, 3), gt[sl].reshape(4, 4, 21, 3))  # B×T×21×3
    result = metric.compute()
    got = {k: result[k].item() for k in SCALAR_KEYS}
    ref = numpy_reference(pred.double().numpy(), gt.double().numpy())
    for key in ("epe_mm", "auc_0_50", "auc_20_50"):
        assert got[key] == pytest.approx(ref[key], abs=1e-4), key
    assert got["epe_median_mm"] == pytest.approx(ref["epe_median_mm"], abs=0.05)  # one histogram bin
    t, pck = metric.pck_curve()
    assert t.shape == pck.shape == (20,)
    torch.testing.assert_close(result["pck"], pck)
    torch.testing.assert_close(result["thresholds_mm"], t)
    assert pck[0].item() == pytest.approx(1 / 21, abs=1e-6)  # only the aligned roots have zero error
    assert pck[-1].item() <= 1.0 and bool((pck[1:] >= pck[:-1]).all())


def test_known_offsets() -> None:
    g = torch.Generator().manual_seed(3)
    gt = torch.randn(5, 21, 3, generator=g, dtype=torch.float64) * 30 + torch.tensor([0.0, 0.0, 400.0])
    direction = torch.randn(5, 21, 3, generator=g, dtype=torch.float64)
    offset = 10.0 * direction / direction.norm(dim=-1, keepdim=True)
    offset[:, 0] = 0.0  # the root is aligned anyway
    pred_mm = gt + offset
    pred_norm, _, _ = normalize_3d(pred_mm, gt)
    metric = PoseMetrics3D(pck_thresholds_mm=[0.0, 9.0, 11.0, 50.0], include_root=False)
    metric.update(pred_norm, gt)
    out = metric.compute()
    assert out["epe_mm"].item() == pytest.approx(10.0, abs=1e-9)
    assert out["epe_median_mm"].item() == pytest.approx(10.0, abs=0.05)
    t, pck = metric.pck_curve()
    assert pck.tolist() == [0.0, 0.0, 1.0, 1.0]
    # trapz over [0, 9, 11, 50] of [0, 0, 1, 1] / 50 = (0 + 1 + 39) / 50
    assert out["auc_0_50"].item() == pytest.approx(40 / 50)
    assert out["auc_20_50"].item() == pytest.approx(1.0)
    mm = PoseMetrics3D(input_space="mm", include_root=False)
    mm.update(pred_mm + 100.0, gt)  # a global shift is removed by root alignment
    assert mm.compute()["epe_mm"].item() == pytest.approx(10.0, abs=1e-9)
    assert mm.has_data() and not PoseMetrics3D().has_data()


def test_visibility_mask_and_bad_input() -> None:
    pred, gt = random_hands(2, seed=4)
    visible = torch.zeros(2, 21, dtype=torch.bool)
    visible[:, 5] = True
    metric = PoseMetrics3D()
    metric.update(pred, gt, visible)
    assert int(metric.count) == 2
    with pytest.raises(ValueError, match="…×21×3"):
        metric.update(pred[..., :2], gt[..., :2])
    with pytest.raises(ValueError, match="increasing"):
        PoseMetrics3D(pck_thresholds_mm=[10.0, 5.0])


def test_pck2d() -> None:
    target = torch.zeros(1, 4, 2)
    pred = torch.tensor([[[3.0, 4.0], [0.0, 12.0], [0.0, 13.0], [100.0, 0.0]]])  # errors 5, 12, 13, 100
    m = PCK2D(threshold=0.05, unit="fraction", image_size=256)  # 12.8 px
    m.update(pred, target)
    assert m.compute().item() == pytest.approx(0.5)
    assert m.epe_px().item() == pytest.approx(130 / 4)
    px = PCK2D()  # 5 px
    px.update(pred, target, torch.tensor([[True, True, False, False]]))
    assert px.compute().item() == pytest.approx(0.5)


def test_heatmap_argmax() -> None:
    h = torch.zeros(2, 21, 8, 6)
    h[1, 3, 5, 2] = 1.0
    xy = heatmap_argmax(h)
    assert xy.shape == (2, 21, 2) and xy[1, 3].tolist() == [2.0, 5.0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        pred, gt = random_hands(40, seed=7)
        metric = PoseMetrics3D()
        pck2d = PCK2D(threshold=10.0, unit="px")
        sl = slice(rank * 20, (rank + 1) * 20)
        metric.update(pred[sl], gt[sl])
        pck2d.update(pred[sl, :, :2] * 30, gt[sl, :, :2])
        result = metric.compute()
        out = {k: result[k].item() for k in SCALAR_KEYS}
        out["pck2d"] = pck2d.compute().item()
        out["curve"] = metric.pck_curve()[1].tolist()
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_sync_equals_single_process(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    pred, gt = random_hands(40, seed=7)
    single = PoseMetrics3D()
    single.update(pred, gt)
    result = single.compute()
    expected = {k: result[k].item() for k in SCALAR_KEYS}
    p2 = PCK2D(threshold=10.0, unit="px")
    p2.update(pred[..., :2] * 30, gt[..., :2])
    expected["pck2d"] = p2.compute().item()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-9), (rank, key)
        assert got["curve"] == pytest.approx(single.pck_curve()[1].tolist(), abs=1e-12)
