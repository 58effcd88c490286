"""Putting predicted 3D into the crop: a weak-perspective camera fitted to 2D labels, or the full pinhole K.

Networks predict root-relative, scale-normalised 3D (camera axes: x right, y down, z forward), so without 3D
labels the only link to the image is the 2D keypoints. A weak-perspective camera ``u = s·(X, Y) + t`` has a
closed-form weighted least-squares fit to them. The fit is differentiable, but the stages fit it to the detached
pose (stage 2's L_m shapes the mesh and never moves the pose or the camera through it):

    s = Σ w (P − P̄)·(k − k̄) / Σ w ‖P − P̄‖²,     t = k̄ − s·P̄      (P̄, k̄ weighted means)

Where depth and scale are known (synthetic data, evaluation) the pinhole projection with the crop's K is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.geometry.camera import project_points
from torch import Tensor


@dataclass
class WeakPerspective:
    """``u = scale·(X, Y) + translation`` in crop pixels; ``scale …``, ``translation …×2``."""

    scale: Tensor
    translation: Tensor

    def project(self, points: Tensor) -> Tensor:
        """``…×N×3`` → ``…×N×3``: x, y in crop pixels, z = scale·Z (depth order kept, larger = farther)."""
        return weak_perspective_project(points, self.scale, self.translation)


def fit_weak_perspective(
    points: Tensor, target: Tensor, weights: Tensor | None = None, eps: float = 1e-8
) -> WeakPerspective:
    """Least-squares scale and 2D offset mapping ``points …×N×(2|3)`` (x, y used) onto ``target …×N×2`` px.

    ``weights …×N`` (e.g. keypoint visibility) weight each point; a sample whose weights are all zero, or whose
    points all coincide, gets scale 0 (the fit is undefined there) rather than NaN. Differentiable in all inputs.
    """
    if points.shape[-1] not in (2, 3):
        raise ValueError(f"points must be …×N×2 or …×N×3; got {tuple(points.shape)}")
    if target.shape[-1] != 2 or target.shape[:-1] != points.shape[:-1]:
        raise ValueError(
            f"target must be …×N×2 matching points {tuple(points.shape)}; got {tuple(target.shape)}"
        )
    p = points[..., :2]
    if weights is None:
        w = torch.ones_like(p[..., 0])
    else:
        if weights.shape != p.shape[:-1]:
            raise ValueError(f"weights must be …×N {tuple(p.shape[:-1])}; got {tuple(weights.shape)}")
        w = weights.to(p.dtype)
    wsum = w.sum(-1, keepdim=True).clamp_min(eps)
    p_mean = (w[..., None] * p).sum(-2) / wsum
    k_mean = (w[..., None] * target).sum(-2) / wsum
    pc = p - p_mean[..., None, :]
    kc = target - k_mean[..., None, :]
    num = (w * (pc * kc).sum(-1)).sum(-1)
    den = (w * (pc * pc).sum(-1)).sum(-1)
    scale = num / den.clamp_min(eps)
    return WeakPerspective(scale=scale, translation=k_mean - scale[..., None] * p_mean)


def weak_perspective_project(points: Tensor, scale: Tensor, translation: Tensor) -> Tensor:
    """``points …×N×3`` → ``…×N×3`` (x, y crop px; z = scale·Z) with ``scale …`` and ``translation …×2``."""
    s = scale[..., None, None]
    xy = s * points[..., :2] + translation[..., None, :]
    return torch.cat((xy, s * points[..., 2:3]), dim=-1)


def perspective_project(points_cam: Tensor, K: Tensor) -> Tensor:
    """Pinhole projection of camera-frame points ``…×N×3`` (mm) with intrinsics ``…×3×3``.

    Returns ``…×N×3``: u, v in pixels and z the depth (mm), ready for the silhouette renderer.
    """
    if points_cam.shape[-1] != 3 or K.shape[-2:] != (3, 3):
        raise ValueError(
            f"expected points …×N×3 and K …×3×3; got {tuple(points_cam.shape)}, {tuple(K.shape)}"
        )
    Kb = K[..., None, :, :].expand(*points_cam.shape[:-1], 3, 3)
    uv = project_points(points_cam, Kb)
    return torch.cat((uv, points_cam[..., 2:3]), dim=-1)


def fit_and_project(
    mesh: Tensor, joints: Tensor, kp2d: Tensor, visible: Tensor | None = None
) -> tuple[Tensor, Tensor, WeakPerspective]:
    """Fit a weak-perspective camera from predicted ``joints …×21×3`` to ``kp2d …×21×2`` (weighted by
    ``visible …×21``) and project the predicted ``mesh …×V×3`` and the joints with it.

    Returns ``(mesh_px …×V×3, joints_px …×21×3, camera)``.
    """
    cam = fit_weak_perspective(joints, kp2d, visible)
    return cam.project(mesh), cam.project(joints), cam
