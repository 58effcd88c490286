"""The paper's losses against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from tassn.losses import (
    LossWeights,
    consistency_loss,
    heatmap_loss,
    silhouette_loss,
    squared_error,
    temporal_consistency_terms,
    total_loss,
    weighted_sum,
)


def test_heatmap_loss_hand_computed() -> None:
    # B=1, S=2 stacks, K=2 keypoints, 2×2 heatmaps
    target = torch.zeros(1, 2, 2, 2)
    pred = torch.zeros(1, 2, 2, 2, 2)
    pred[0, 0, 0] = 1.0  # stack 0, kp 0: ‖·‖² = 4
    pred[0, 1, 1, 0, 0] = 3.0  # stack 1, kp 1: ‖·‖² = 9
    # stack 0: (4 + 0)/2 = 2 ; stack 1: (0 + 9)/2 = 4.5 ; summed: 6.5
    assert heatmap_loss(pred, target).item() == pytest.approx(6.5)
    assert heatmap_loss(pred, target, stack_reduction="mean").item() == pytest.approx(3.25)
    # only kp 1 labelled: stack 0 → 0, stack 1 → 9
    assert heatmap_loss(pred, target, visible=torch.tensor([[0.0, 1.0]])).item() == pytest.approx(9.0)
    # without a stack dimension: one stack
    assert heatmap_loss(pred[:, 1], target).item() == pytest.approx(4.5)


def test_heatmap_loss_frames_average_and_shape_errors() -> None:
    target = torch.zeros(2, 3, 21, 4, 4)  # B×T×K×h×w
    pred = torch.zeros(2, 3, 2, 21, 4, 4)
    pred[0, 0, :, 0, 0, 0] = 2.0  # one frame: each stack 4/21, summed 8/21
    assert heatmap_loss(pred, target).item() == pytest.approx(8 / 21 / 6)
    with pytest.raises(ValueError, match="heatmaps"):
        heatmap_loss(pred[..., :3], target)


def test_silhouette_loss_normalisations() -> None:
    target = torch.zeros(2, 1, 4, 4)
    rendered = torch.zeros(2, 1, 4, 4)
    rendered[0, 0, :2, :2] = 0.5  # 4 pixels × 0.25 = 1
    assert silhouette_loss(rendered, target, "sum").item() == pytest.approx(0.5)  # (1 + 0) / 2 frames
    assert silhouette_loss(rendered, target).item() == pytest.approx(1 / 16 / 2)
    assert silhouette_loss(rendered, target, weights=torch.tensor([1.0, 0.0])).item() == pytest.approx(1 / 16)
    with pytest.raises(ValueError, match="normalization"):
        silhouette_loss(rendered, target, "max")  # type: ignore[arg-type]


def test_consistency_loss_is_mean_over_frames_of_squared_frobenius() -> None:
    fwd = torch.zeros(1, 3, 21, 3)
    rev = torch.zeros(1, 3, 21, 3)
    rev[0, 0, 0] = torch.tensor([1.0, 2.0, 2.0])  # frame 0: 9
    rev[0, 2, 5, 1] = 3.0  # frame 2: 9
    assert consistency_loss(fwd, rev).item() == pytest.approx(6.0)
    got = weighted_sum(temporal_consistency_terms(10.0, 2.0, fwd, rev, torch.zeros(1, 3, 7, 3), torch.ones(1, 3, 7, 3)))
    assert got["loss"].item() == pytest.approx(10 * 6.0 + 2 * 21.0)  # Eq. 5
    assert set(got) == {"loss", "loss_c_pose", "loss_c_mesh"}
    with pytest.raises(ValueError, match="consistency"):
        consistency_loss(fwd, rev[:, :2])
    assert squared_error(rev, fwd).item() == pytest.approx(6.0)
    assert squared_error(rev, fwd, torch.tensor([[1.0, 0.0, 0.0]])).item() == pytest.approx(9.0)


def test_total_loss_weights_and_switched_off_terms() -> None:
    w = LossWeights()
    assert (w.heatmap, w.silhouette, w.pose_consistency, w.mesh_consistency) == (1.0, 0.1, 10.0, 10.0)
    hm_t = torch.zeros(1, 2, 21, 2, 2)
    hm = torch.zeros(1, 2, 1, 21, 2, 2)
    hm[..., 0, 0, 0] = 1.0  # each frame 1/21
    sil = torch.ones(1, 2, 1, 2, 2)
    pose = torch.zeros(1, 2, 21, 3)
    pose_rev = torch.ones(1, 2, 21, 3)  # 63 per frame
    mesh = torch.zeros(1, 2, 5, 3)
    out = total_loss(
        w,
        heatmaps=hm,
        heatmap_targets=hm_t,
        silhouettes=lambda: sil,
        silhouette_targets=torch.zeros_like(sil),
        pose=pose,
        pose_reversed=pose_rev,
        mesh=mesh,
        mesh_reversed=mesh,
    )
    assert out["loss_h"].item() == pytest.approx(1 / 21)
    assert out["loss_m"].item() == pytest.approx(1.0)
    assert out["loss_c_pose"].item() == pytest.approx(63.0)
    assert out["loss_c_mesh"].item() == pytest.approx(0.0)
    assert out["loss"].item() == pytest.approx(1 / 21 + 0.1 + 630.0)

    def must_not_run() -> torch.Tensor:
        raise AssertionError("a switched-off term was computed")

    off = total_loss(
        LossWeights(silhouette=0.0, mesh_consistency=0.0),
        heatmaps=hm,
        heatmap_targets=hm_t,
        silhouettes=must_not_run,
        pose=pose,
        pose_reversed=pose_rev,
    )
    assert set(off) == {"loss", "loss_h", "loss_c_pose"}
    with pytest.raises(ValueError, match="silhouette_targets"):
        total_loss(LossWeights(heatmap=0, pose_consistency=0, mesh_consistency=0), silhouettes=sil)
    with pytest.raises(ValueError, match="≥ 0"):
        LossWeights(heatmap=-1.0)


def test_keep_scale_keeps_the_value_and_drops_the_common_shrink() -> None:
    torch.manual_seed(0)
    fwd = torch.randn(2, 3, 21, 3, requires_grad=True)
    rev = (fwd.detach() + 0.3 * torch.randn(2, 3, 21, 3)).requires_grad_(True)
    plain, kept = consistency_loss(fwd, rev), consistency_loss(fwd, rev, keep_scale=True)
    assert kept.item() == pytest.approx(plain.item())
    # d/dα of the loss at (α·fwd, α·rev), α = 1: the plain form shrinks both for free, the kept form does not
    g_plain = torch.autograd.grad(plain, (fwd, rev))
    g_kept = torch.autograd.grad(kept, (fwd, rev))
    along_scale = [sum(float((g * x).sum()) for g, x in zip(grads, (fwd, rev), strict=True)) for grads in (g_plain, g_kept)]
    assert along_scale[0] == pytest.approx(2 * plain.item(), rel=1e-4)  # homogeneous of degree 2
    assert abs(along_scale[1]) < 1e-4 * plain.item()
    assert float(torch.cat([g.flatten() for g in g_kept]).norm()) > 0.1 * float(torch.cat([g.flatten() for g in g_plain]).norm())
    terms = weighted_sum(temporal_consistency_terms(1.0, 1.0, fwd, rev, fwd, rev, keep_scale=True))
    assert terms["loss_c_pose"].item() == pytest.approx(plain.item())


def test_losses_have_gradients() -> None:
    pose = torch.randn(2, 3, 21, 3, requires_grad=True)
    pose_rev = torch.randn(2, 3, 21, 3, requires_grad=True)
    consistency_loss(pose, pose_rev).backward()
    assert pose.grad is not None and pose_rev.grad is not None
    torch.testing.assert_close(pose.grad, -pose_rev.grad)


def test_weighted_sum_adds_in_order_skips_zero_weights_and_refuses_negative_ones() -> None:
    def must_not_run() -> torch.Tensor:
        raise AssertionError("a term of weight 0 was computed")

    out = weighted_sum({"a": (2.0, torch.tensor(3.0)), "b": (0.0, must_not_run), "c": (0.5, lambda: torch.tensor(4.0))})
    assert list(out) == ["a", "c", "loss"] and out["loss"].item() == pytest.approx(8.0)
    with pytest.raises(ValueError, match=r"≥ 0.*'b': -1"):
        weighted_sum({"a": (1.0, torch.tensor(1.0)), "b": (-1.0, torch.tensor(1.0))})
    with pytest.raises(ValueError, match="every loss weight is 0"):
        weighted_sum({"a": (0.0, must_not_run)})
