"""Keypoint heatmaps, one convention for the whole package: drawing them, reading them, and their pixel grid.

Heatmaps are ``1/HEATMAP_STRIDE`` of the crop with pixel centres at integers in both grids:
``heatmap = (crop + 0.5) / stride − 0.5``. The data modules draw the targets with :func:`gaussian_heatmaps`, the
network's recurrent input ``H_t`` is re-drawn with it (:mod:`tassn.nets.feedback`), and evaluation, prediction and
the tracker read peaks back with :func:`heatmap_peaks`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: crop pixels per heatmap pixel (the hourglass's stem divides the input side by 4).
HEATMAP_STRIDE = 4
_LOG_FLOOR = 1e-6


def to_heatmap_coords(kp_crop: np.ndarray | Tensor, stride: float = HEATMAP_STRIDE):
    """Crop pixels → heatmap pixels at ``1/stride`` resolution (pixel-centre convention)."""
    return (kp_crop + 0.5) / stride - 0.5


def heatmap_to_crop(points: Tensor, stride: float = HEATMAP_STRIDE) -> Tensor:
    """Heatmap pixels → crop pixels (:func:`to_heatmap_coords` inverted)."""
    return (points + 0.5) * stride - 0.5


def gaussian_heatmaps(kp: Tensor, size: int, sigma: float, weight: Tensor | None = None) -> Tensor:
    """Heatmaps ``…×J×size×size`` with a Gaussian of peak 1 at each keypoint ``…×J×2`` (heatmap pixels).

    ``exp(−d² / 2σ²)`` written out rather than kornia's ``render_gaussian2d``: that one renormalises each map to sum
    to one, which piles the mass of a keypoint near or beyond the border onto the border pixels. Here a keypoint off
    the map gives only its true tail. ``weight …×J`` (e.g. ``visible``) scales each map (0 → empty map).
    """
    xs = torch.arange(size, dtype=kp.dtype, device=kp.device)
    gx = torch.exp(-((xs - kp[..., 0:1]) ** 2) / (2.0 * sigma * sigma))  # …×J×W
    gy = torch.exp(-((xs - kp[..., 1:2]) ** 2) / (2.0 * sigma * sigma))  # …×J×H
    maps = gy[..., :, None] * gx[..., None, :]
    if weight is not None:
        maps = maps * weight[..., None, None].to(maps.dtype)
    return maps


def heatmap_argmax(heatmaps: Tensor) -> Tensor:
    """``…×J×h×w`` heatmaps → ``…×J×2`` (x, y) of each map's maximum, in heatmap pixels (centres at integers)."""
    w = heatmaps.shape[-1]
    idx = heatmaps.flatten(-2).argmax(-1)
    return torch.stack(((idx % w).to(heatmaps.dtype), (idx // w).to(heatmaps.dtype)), dim=-1)


def heatmap_peaks(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Sub-pixel peaks ``…×J×2`` (heatmap pixels) and their values ``…×J`` from ``…×J×h×w`` heatmaps.

    The argmax, refined by a parabola through the log-heatmap at the peak and its 4 neighbours: the log of a
    Gaussian is a parabola, so the step is exact for the training targets' shape and the rest of the map does not
    pull it (as a soft-argmax over a noisy map would). The step is clamped to half a pixel and left at 0 on the
    border or where the peak is flat. At a stride of 4 this removes the up-to-±2-crop-pixel rounding of the argmax.
    """
    lead, (h, w) = heatmaps.shape[:-2], heatmaps.shape[-2:]
    flat = heatmaps.detach().float().flatten(-2)
    value, peak = flat.max(dim=-1)
    y, x = peak // w, peak % w
    log_maps = torch.log(flat.clamp_min(_LOG_FLOOR))

    def at(yy: Tensor, xx: Tensor) -> Tensor:
        index = yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)
        return log_maps.gather(-1, index.unsqueeze(-1)).squeeze(-1)

    centre = at(y, x)

    def offset(minus: Tensor, plus: Tensor, inside: Tensor) -> Tensor:
        curvature = minus - 2 * centre + plus
        ok = inside & (curvature < 0)
        safe = torch.where(ok, curvature, -torch.ones_like(curvature))
        return torch.where(ok, (0.5 * (minus - plus) / safe).clamp(-0.5, 0.5), torch.zeros_like(curvature))

    dx = offset(at(y, x - 1), at(y, x + 1), (x > 0) & (x < w - 1))
    dy = offset(at(y - 1, x), at(y + 1, x), (y > 0) & (y < h - 1))
    points = torch.stack([x + dx, y + dy], dim=-1).reshape(*lead, 2)
    return points.to(heatmaps.dtype), value.reshape(lead).to(heatmaps.dtype)
