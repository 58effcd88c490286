"""Small stand-ins for package modules that are not written yet (``tassn.losses``, ``metrics``, ``render``, ``viz``).

They follow docs/interfaces.md and are installed into ``sys.modules`` by conftest.py only while the real module is
missing, so the stage tests exercise the stages' own logic now and the real modules as soon as they exist.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec

import numpy as np
import torch
from torchmetrics import Metric


# ----------------------------------------------------------------------------------------------------- losses
def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 1 over every stack: ``pred B×T×S×21×h×w``, ``target B×T×21×h×w``."""
    err = (pred - target.unsqueeze(2)).square().sum((-1, -2))  # B×T×S×21
    if visible is not None:
        err = err * visible.unsqueeze(2)
    return err.mean()


def squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm per frame (last two dims), averaged over frames."""
    return (a - b).square().sum((-1, -2)).mean()


consistency_loss = squared_error


def silhouette_loss(rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (rendered - target).square().mean()


# ----------------------------------------------------------------------------------------------------- render
@dataclass
class WeakPerspective:
    scale: torch.Tensor  # B
    translation: torch.Tensor  # B×2

    def project(self, points: torch.Tensor) -> torch.Tensor:
        xy = points[..., :2] * self.scale[:, None, None] + self.translation[:, None]
        return torch.cat([xy, points[..., 2:] * self.scale[:, None, None]], dim=-1)


def fit_weak_perspective(joints: torch.Tensor, kp2d: torch.Tensor, visible: torch.Tensor) -> WeakPerspective:
    w = visible.clamp_min(0)[..., None]
    n = w.sum(1).clamp_min(1e-6)
    mx, mk = (joints[..., :2] * w).sum(1) / n, (kp2d * w).sum(1) / n
    cx, ck = joints[..., :2] - mx[:, None], kp2d - mk[:, None]
    scale = (cx * ck * w).sum((1, 2)) / (cx.square() * w).sum((1, 2)).clamp_min(1e-6)
    return WeakPerspective(scale, mk - scale[:, None] * mx)


class SilhouetteRenderer(torch.nn.Module):
    """Gaussian splats of the vertices (not a rasterizer; enough to give L_m a gradient)."""

    def __init__(self, image_size: int, sigma: float = 1.0, faces_per_pixel: int = 50, backend: str = "auto"):
        super().__init__()
        self.image_size, self.sigma = image_size, sigma

    def forward(self, vertices_px: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        s = self.image_size
        grid = torch.arange(s, dtype=vertices_px.dtype, device=vertices_px.device)
        dx = (grid[None, None, :] - vertices_px[..., 0:1]).square()  # B×V×S
        dy = (grid[None, None, :] - vertices_px[..., 1:2]).square()
        g = torch.exp(-(dy[..., :, None] + dx[..., None, :]) / (2 * self.sigma**2))  # B×V×S×S
        return (1 - torch.prod(1 - 0.5 * g, dim=1)).unsqueeze(1)


# ---------------------------------------------------------------------------------------------------- metrics
def heatmap_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """``…×J×h×w`` → ``…×J×2`` (x, y) heatmap pixels of the maximum."""
    w = heatmaps.shape[-1]
    idx = heatmaps.flatten(-2).argmax(-1)
    return torch.stack([(idx % w).float(), (idx // w).float()], dim=-1)


class PCK2D(Metric):
    def __init__(self, threshold: float = 5.0) -> None:
        super().__init__()
        self.threshold = threshold
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor) -> None:
        ok = ((pred - target).norm(dim=-1) <= self.threshold).float() * visible
        self.correct += ok.sum()
        self.total += visible.sum()

    def compute(self) -> torch.Tensor:
        return self.correct / self.total.clamp_min(1)


class PoseMetrics3D(Metric):
    def __init__(self, num_thresholds: int = 20) -> None:
        super().__init__()
        self.register_buffer("thresholds", torch.linspace(0, 50, num_thresholds))
        self.add_state("hits", torch.zeros(num_thresholds), dist_reduce_fx="sum")
        self.add_state("err_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, gt_mm: torch.Tensor) -> None:
        from tassn.hand.normalize import denormalize_3d, normalize_3d

        _, root, bone = normalize_3d(gt_mm)
        err = (denormalize_3d(pred, root, bone) - gt_mm).norm(dim=-1).flatten()
        self.hits += (err[None] <= self.thresholds[:, None]).float().sum(1)
        self.err_sum += err.sum()
        self.count += err.numel()

    def has_data(self) -> bool:
        return bool(self.count > 0)

    def compute(self) -> dict:
        pck = self.hits / self.count.clamp_min(1)
        t = self.thresholds
        hi = t >= 20
        return {
            "epe_mm": self.err_sum / self.count.clamp_min(1),
            "auc_0_50": torch.trapezoid(pck, t) / 50,
            "auc_20_50": torch.trapezoid(pck[hi], t[hi]) / 30,
            "thresholds_mm": t,
            "pck": pck,
        }


# -------------------------------------------------------------------------------------------------------- viz
def pck_curve_figure(curves: dict) -> np.ndarray:
    return np.full((48, 64, 3), 255, dtype=np.uint8)


MODULES = {
    "tassn.losses": {"heatmap_loss": heatmap_loss, "squared_error": squared_error,
                     "consistency_loss": consistency_loss, "silhouette_loss": silhouette_loss},
    "tassn.render": {"SilhouetteRenderer": SilhouetteRenderer, "fit_weak_perspective": fit_weak_perspective},
    "tassn.metrics": {"PCK2D": PCK2D, "PoseMetrics3D": PoseMetrics3D, "heatmap_argmax": heatmap_argmax},
    "tassn.viz": {"pck_curve_figure": pck_curve_figure},
}


def install_missing() -> list[str]:
    """Provide each name of :data:`MODULES` the package lacks: on the real module when it exists, else on a
    stand-in module put into ``sys.modules``. Returns the ``module.name`` entries provided."""
    provided = []
    for name, attributes in MODULES.items():
        module = import_module(name) if find_spec(name) is not None else None
        if module is None:
            module = types.ModuleType(name)
            sys.modules[name] = module
        for attr, value in attributes.items():
            if not hasattr(module, attr):
                setattr(module, attr, value)
                provided.append(f"{name}.{attr}")
    return provided
