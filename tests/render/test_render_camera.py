"""Weak-perspective fit and pinhole projection."""

from __future__ import annotations

import pytest
import torch

from tassn.render.camera import (
    fit_and_project,
    fit_weak_perspective,
    perspective_project,
    weak_perspective_project,
)


def test_fit_recovers_known_scale_and_offset_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(3, 21, 3, generator=g, dtype=torch.float64)
    scale = torch.tensor([40.0, 55.5, 12.25], dtype=torch.float64)
    trans = torch.tensor([[128.0, 120.0], [10.0, -3.0], [0.5, 200.0]], dtype=torch.float64)
    kp2d = scale[:, None, None] * pts[..., :2] + trans[:, None]
    cam = fit_weak_perspective(pts, kp2d)
    torch.testing.assert_close(cam.scale, scale, atol=1e-10, rtol=0)
    torch.testing.assert_close(cam.translation, trans, atol=1e-9, rtol=0)
    torch.testing.assert_close(cam.project(pts)[..., :2], kp2d, atol=1e-9, rtol=0)


def test_visibility_weights_ignore_bad_keypoints() -> None:
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(1, 21, 3, generator=g, dtype=torch.float64)
    kp2d = 30.0 * pts[..., :2] + torch.tensor([64.0, 70.0], dtype=torch.float64)
    kp2d[0, :5] += 500.0  # unlabelled keypoints with garbage coordinates
    visible = torch.ones(1, 21, dtype=torch.float64)
    visible[0, :5] = 0
    cam = fit_weak_perspective(pts, kp2d, visible)
    assert cam.scale.item() == pytest.approx(30.0, abs=1e-9)
    assert cam.translation[0].tolist() == pytest.approx([64.0, 70.0], abs=1e-9)
    assert abs(fit_weak_perspective(pts, kp2d).scale.item() - 30.0) > 1e-3


def test_fit_is_differentiable() -> None:
    g = torch.Generator().manual_seed(2)
    pts = torch.randn(2, 21, 3, generator=g, dtype=torch.float64, requires_grad=True)
    kp2d = torch.randn(2, 21, 2, generator=g, dtype=torch.float64, requires_grad=True) * 20
    vis = torch.rand(2, 21, generator=g, dtype=torch.float64)

    def f(p: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        cam = fit_weak_perspective(p, k, vis)
        return cam.project(p)

    assert torch.autograd.gradcheck(f, (pts, kp2d))


def test_degenerate_fit_is_finite() -> None:
    pts = torch.zeros(1, 21, 3)
    cam = fit_weak_perspective(pts, torch.ones(1, 21, 2))
    assert cam.scale.item() == 0.0 and torch.isfinite(cam.translation).all()
    cam = fit_weak_perspective(torch.randn(1, 21, 3), torch.ones(1, 21, 2), torch.zeros(1, 21))
    assert torch.isfinite(cam.scale).all() and torch.isfinite(cam.translation).all()


def test_weak_perspective_keeps_depth_order() -> None:
    pts = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]]])
    out = weak_perspective_project(pts, torch.tensor([3.0]), torch.tensor([[5.0, 6.0]]))
    assert out.tolist() == [[[5.0, 6.0, 3.0], [5.0, 6.0, 6.0]]]


def test_perspective_projection_with_K() -> None:
    K = torch.tensor([[[500.0, 0.0, 128.0], [0.0, 400.0, 120.0], [0.0, 0.0, 1.0]]])
    pts = torch.tensor([[[10.0, -20.0, 500.0], [0.0, 0.0, 250.0]]])
    out = perspective_project(pts, K)
    assert out[0, 0].tolist() == pytest.approx([128.0 + 10.0, 120.0 - 16.0, 500.0])
    assert out[0, 1].tolist() == pytest.approx([128.0, 120.0, 250.0])
    with pytest.raises(ValueError, match="K"):
        perspective_project(pts, K[:, :2])


def test_fit_and_project_shapes() -> None:
    mesh, joints = torch.randn(2, 3, 50, 3), torch.randn(2, 3, 21, 3)
    kp2d = 40 * joints[..., :2] + 128
    mesh_px, joints_px, cam = fit_and_project(mesh, joints, kp2d, torch.ones(2, 3, 21))
    assert mesh_px.shape == (2, 3, 50, 3) and joints_px.shape == (2, 3, 21, 3)
    torch.testing.assert_close(cam.scale, torch.full((2, 3), 40.0), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="target"):
        fit_weak_perspective(joints, kp2d[..., :20, :])
