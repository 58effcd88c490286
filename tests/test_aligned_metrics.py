"""Scale+translation- and Procrustes-aligned EPE (ST-EPE, PA-EPE): hand-computed cases, no reflections, DDP sync."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tassn.metrics import SCALAR_KEYS, PoseMetrics3D, similarity_align
from tassn.nets.pme import PMEOutput
from tassn.stages.evaluation import EvaluationMetrics


def random_rotation(g: torch.Generator) -> torch.Tensor:
    """A proper rotation (det +1) from the QR of a Gaussian matrix."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.linalg.det(q) > 0 else -q


def hands(n: int, seed: int) -> torch.Tensor:
    """``n×21×3`` non-planar joint sets (mm, camera frame)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 21, 3, generator=g, dtype=torch.float64) * 40 + torch.tensor([0.0, 0.0, 500.0])


def ring_case(radius: float, height: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth: 20 joints evenly on a circle of ``radius`` in the z = 0 plane plus its centre. Prediction: the
    circle's joints lifted by ``±height`` alternately. The lifts have zero mean and no correlation with the circle,
    so the best rotation is the identity and the best translation zero; the best scale is r²/(r² + h²), which
    leaves every circle joint ``r·h/√(r² + h²)`` from its ground truth and the centre exact."""
    angles = torch.arange(20, dtype=torch.float64) * (2 * math.pi / 20)
    circle = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles), torch.zeros(20, dtype=torch.float64)], 1)
    gt = torch.cat([circle, torch.zeros(1, 3, dtype=torch.float64)])
    lift = torch.zeros(21, 3, dtype=torch.float64)
    lift[:20, 2] = height * (-1.0) ** torch.arange(20, dtype=torch.float64)
    return (gt + lift)[None], gt[None]


def epe(alignment: str, pred: torch.Tensor, gt: torch.Tensor) -> float:
    metric = PoseMetrics3D(alignment=alignment, input_space="mm")
    metric.update(pred, gt)
    return float(metric.compute()["epe_mm"])


def test_rotated_scaled_shifted_copy_scores_zero_under_procrustes_only() -> None:
    g = torch.Generator().manual_seed(1)
    gt = hands(5, seed=0)
    rot = torch.stack([random_rotation(g) for _ in range(5)])
    pred = 0.37 * gt @ rot + torch.tensor([12.0, -40.0, 300.0])
    result = PoseMetrics3D(alignment="procrustes", input_space="mm")
    result.update(pred, gt)
    out = result.compute()
    assert float(out["epe_mm"]) == pytest.approx(0.0, abs=1e-9)
    assert float(out["auc_20_50"]) == pytest.approx(1.0)
    # every threshold but 0 mm (which float round-off of a zero error may miss) counts every joint
    assert float(out["auc_0_50"]) >= 1.0 - 0.5 / 19 - 1e-9
    assert epe("scale_translation", pred, gt) > 10.0  # the rotation is not undone without Procrustes
    assert epe("root_bone", pred, gt) > 10.0


def test_scaled_shifted_copy_scores_zero_under_scale_translation() -> None:
    gt = hands(4, seed=2)
    pred = 2.5 * gt - torch.tensor([100.0, 7.0, -3.0])
    assert epe("scale_translation", pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert epe("procrustes", pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert epe("root_bone", pred, gt) > 10.0  # mm input keeps its own (wrong) scale under the protocol


@pytest.mark.parametrize("alignment", ["scale_translation", "procrustes"])
def test_known_perturbation_scores_its_known_value(alignment: str) -> None:
    radius, height = 40.0, 10.0
    pred, gt = ring_case(radius, height)
    expected = 20 * radius * height / math.sqrt(radius**2 + height**2) / 21  # the centre joint is exact
    assert epe(alignment, pred, gt) == pytest.approx(expected, rel=1e-9)
    aligned = similarity_align(pred, gt, rotation=alignment == "procrustes")
    assert aligned[0, :20, 2].abs() == pytest.approx(torch.full((20,), height * radius**2 / (radius**2 + height**2)))


def test_reflection_is_not_used_to_align() -> None:
    g = torch.Generator().manual_seed(3)
    gt = hands(1, seed=4)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0])  # a left hand for a right one
    pa = epe("procrustes", mirrored, gt)
    assert pa > 5.0  # with reflections allowed the mirror image would align exactly
    aligned = similarity_align(mirrored, gt)
    x = mirrored[0] - mirrored[0].mean(0)
    y = aligned[0] - aligned[0].mean(0)
    fit = torch.linalg.lstsq(x, y).solution  # the linear map applied: scale × rotation
    assert torch.linalg.det(fit) > 0
    sse = float(((aligned - gt) ** 2).sum())
    for _ in range(200):  # and it is the best proper similarity (least squares): no rotated start does better
        moved = mirrored @ random_rotation(g)
        assert sse == pytest.approx(float(((similarity_align(moved, gt) - gt) ** 2).sum()), rel=1e-9)
        assert sse <= float(((similarity_align(moved, gt, rotation=False) - gt) ** 2).sum()) + 1e-6


def test_scale_translation_never_inverts() -> None:
    gt = hands(1, seed=10)
    inverted = -gt  # a point inversion (det −1): a negative scale would align it exactly
    aligned = similarity_align(inverted, gt, rotation=False)
    assert torch.allclose(aligned, gt.mean(dim=-2, keepdim=True).expand_as(gt))  # best non-negative scale: 0


def test_normalised_input_and_evaluation_metrics_keys() -> None:
    from tassn.hand.normalize import normalize_3d

    gt = hands(3, seed=5)
    g = torch.Generator().manual_seed(6)
    noisy = gt + torch.randn(gt.shape, generator=g, dtype=torch.float64) * 5
    normed, _, _ = normalize_3d(noisy)
    assert epe("procrustes", normed, gt) == pytest.approx(epe("procrustes", noisy, gt), rel=1e-9)
    metrics = EvaluationMetrics()
    out = PMEOutput(heatmaps=torch.rand(1, 3, 1, 21, 4, 4), features=torch.zeros(1), mesh=torch.zeros(1),
                    pose=normed[None].float(), flow=torch.zeros(1))
    batch = {"frames": torch.zeros(1, 3, 3, 16, 16), "kp2d": torch.zeros(1, 3, 21, 2),
             "visible": torch.ones(1, 3, 21), "kp3d": gt[None].float()}
    metrics.update(out, batch)
    scalars = metrics.compute()["scalars"]
    for key in SCALAR_KEYS:
        assert f"pa_{key}" in scalars and f"st_{key}" in scalars
    assert float(scalars["pa_epe_mm"]) == pytest.approx(epe("procrustes", normed.float().double(), gt), rel=1e-5)
    assert float(scalars["pa_epe_mm"]) < float(scalars["st_epe_mm"])
    metrics.reset()
    assert not metrics.pose3d_pa.has_data() and not metrics.pose3d_st.has_data()


def test_unknown_alignment_is_refused() -> None:
    with pytest.raises(ValueError, match="alignment"):
        PoseMetrics3D(alignment="icp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gt = hands(10, seed=8)
        pred = gt + hands(10, seed=9) / 4
        out = {}
        for alignment in ("scale_translation", "procrustes"):
            metric = PoseMetrics3D(alignment=alignment, input_space="mm")
            metric.update(pred[rank * 5:(rank + 1) * 5], gt[rank * 5:(rank + 1) * 5])
            result = metric.compute()
            out.update({f"{alignment}/{k}": float(result[k]) for k in SCALAR_KEYS})
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_sync_equals_single_process(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    gt = hands(10, seed=8)
    pred = gt + hands(10, seed=9) / 4
    for alignment in ("scale_translation", "procrustes"):
        single = PoseMetrics3D(alignment=alignment, input_space="mm")
        single.update(pred, gt)
        expected = single.compute()
        for rank in range(2):
            got = torch.load(tmp_path / f"rank{rank}.pt")
            for key in SCALAR_KEYS:
                assert got[f"{alignment}/{key}"] == pytest.approx(float(expected[key]), abs=1e-9), (rank, key)
