"""Projection into the crop and differentiable silhouettes. Light to import: torch and kornia only."""

from .camera import (
    WeakPerspective,
    fit_and_project,
    fit_weak_perspective,
    perspective_project,
    weak_perspective_project,
)
from .pytorch3d_backend import load_pytorch3d, pytorch3d_available, pytorch3d_silhouette
from .silhouette import SilhouetteRenderer
from .soft_rasterizer import blur_radius_for, soft_silhouette

__all__ = [
    "SilhouetteRenderer",
    "WeakPerspective",
    "blur_radius_for",
    "fit_and_project",
    "fit_weak_perspective",
    "load_pytorch3d",
    "perspective_project",
    "pytorch3d_available",
    "pytorch3d_silhouette",
    "soft_silhouette",
    "weak_perspective_project",
]
