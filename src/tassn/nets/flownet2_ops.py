"""The two custom layers of FlowNet2 besides correlation, in plain PyTorch: backward warping and channel norm.

flownet2-pytorch implements both as CUDA extensions; these modules reproduce their forward values (bilinear
interpolation with indices clamped to the image, L2 norm over channels) so that the released weights see the inputs
they were trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ChannelNorm", "Resample2d", "warp"]


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample ``image`` (``B×C×H×W``) at ``x + flow(x)`` (``flow B×2×H×W``, pixels, channel 0 = x, 1 = y).

    With a flow that maps frame a to frame b (``b(x + o(x)) ≈ a(x)``) ``warp(b, o)`` reconstructs ``a``.
    Bilinear; samples outside the image take the nearest border pixel, exactly as flownet2-pytorch's Resample2d
    clamps its interpolation indices.
    """
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"warp expects image B×C×H×W and flow B×2×H×W, got {tuple(image.shape)} and {tuple(flow.shape)}"
        )
    if image.shape[0] != flow.shape[0] or image.shape[2:] != flow.shape[2:]:
        raise ValueError(
            f"warp expects image and flow with the same batch and size, got {tuple(image.shape)} "
            f"and {tuple(flow.shape)}"
        )
    _, _, h, w = image.shape
    dtype = flow.dtype if flow.is_floating_point() else torch.float32
    ys = torch.arange(h, device=flow.device, dtype=dtype)
    xs = torch.arange(w, device=flow.device, dtype=dtype)
    x = xs.view(1, 1, w) + flow[:, 0]
    y = ys.view(1, h, 1) + flow[:, 1]
    # align_corners=True maps −1 / +1 to the centres of the first / last pixel: pixel i ↔ 2i/(n−1) − 1.
    grid = torch.stack((2.0 * x / max(w - 1, 1) - 1.0, 2.0 * y / max(h - 1, 1) - 1.0), dim=-1)
    return F.grid_sample(
        image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True
    )


class Resample2d(nn.Module):
    """``Resample2d()(image, flow)``: backward warping of :func:`warp` as a module (no parameters)."""

    def forward(self, image: Tensor, flow: Tensor) -> Tensor:
        """``B×C×H×W``, ``B×2×H×W`` → ``B×C×H×W`` with ``out(x) = image(x + flow(x))``."""
        return warp(image, flow)


class ChannelNorm(nn.Module):
    """L2 norm over the channel axis: ``B×C×H×W`` → ``B×1×H×W`` (a zero vector has zero gradient)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.linalg.vector_norm(x, ord=2, dim=1, keepdim=True)
