"""FlowNetC correlation layer in plain PyTorch.

flownet2-pytorch ships this layer as a CUDA extension that does not build against CPU torch; this module computes
the same numbers with tensor ops so FlowNetC runs (and differentiates) on any device.

For output position ``(y, x)`` and displacement ``(dy, dx)`` (multiples of ``stride2`` within
``±max_displacement``) the layer returns ``Σ_c f1[c, y, x] · f2[c, y + dy, x + dx] / C`` where both feature maps
are zero-padded by ``pad_size``. Channel ``(dy/stride2 + R)·D + (dx/stride2 + R)`` holds displacement ``(dy, dx)``
with ``R = max_displacement // stride2`` and ``D = 2R + 1``; FlowNetC's setting (pad 20, displacement 20, stride2
2) gives ``D² = 441`` channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Correlation", "correlation"]


def _output_size(size: int, pad_size: int, max_displacement: int, stride1: int) -> int:
    """Output length along one axis, as the reference kernel computes it: ceil((size + 2·pad − 2·md) / stride1)."""
    span = size + 2 * pad_size - 2 * max_displacement
    return max(0, -(-span // stride1))


def correlation(
    input1: Tensor,
    input2: Tensor,
    pad_size: int = 20,
    kernel_size: int = 1,
    max_displacement: int = 20,
    stride1: int = 1,
    stride2: int = 2,
) -> Tensor:
    """Correlate two feature maps ``B×C×H×W`` over a grid of displacements → ``B×D²×H'×W'``.

    One batched matmul per vertical displacement (``D`` of them) correlates each output row with every reachable
    column of the second image; the ``D`` horizontal displacements are then gathered from that ``B×H'×W'×Wc`` block.
    This keeps the temporaries to one row-block at a time (never the ``B×C×D²×H'×W'`` product volume) and lets
    BLAS do the work: far faster, forward and backward, than looping over the ``D²`` shifted products.
    """
    if input1.dim() != 4 or input1.shape != input2.shape:
        raise ValueError(
            f"correlation expects two feature maps of equal shape B×C×H×W, got {tuple(input1.shape)} "
            f"and {tuple(input2.shape)}"
        )
    if kernel_size != 1:
        raise ValueError(f"correlation supports kernel_size=1 only (FlowNetC's setting), got {kernel_size}")
    if stride1 < 1 or stride2 < 1 or max_displacement < 0 or pad_size < 0:
        raise ValueError(
            "correlation needs stride1 >= 1, stride2 >= 1, max_displacement >= 0 and pad_size >= 0, got "
            f"stride1={stride1}, stride2={stride2}, max_displacement={max_displacement}, pad_size={pad_size}"
        )
    b, c, h, w = input1.shape
    out_h = _output_size(h, pad_size, max_displacement, stride1)
    out_w = _output_size(w, pad_size, max_displacement, stride1)
    radius = max_displacement // stride2
    grid = 2 * radius + 1
    if out_h == 0 or out_w == 0:
        return input1.new_zeros(b, grid * grid, out_h, out_w)

    pad = (pad_size, pad_size, pad_size, pad_size)
    p1 = F.pad(input1, pad)
    p2 = F.pad(input2, pad)
    md = max_displacement
    # First image at padded coordinates md + i·stride1, channels last: B×H'×W'×C.
    span_h = (out_h - 1) * stride1 + 1
    span_w = (out_w - 1) * stride1 + 1
    f1 = p1[:, :, md : md + span_h : stride1, md : md + span_w : stride1].permute(0, 2, 3, 1)
    # Second image: the columns any horizontal displacement can reach, starting at md − R·stride2.
    col0 = md - radius * stride2
    cols = p2[:, :, :, col0 : col0 + (grid - 1) * stride2 + span_w]
    # Column of cols that output x pairs with at horizontal displacement index k.
    band = torch.arange(out_w, device=input1.device)[:, None] * stride1
    band = (band + torch.arange(grid, device=input1.device)[None, :] * stride2).expand(b, out_h, out_w, grid)
    rows_out = []
    for j in range(grid):
        row0 = md + (j - radius) * stride2
        rows = cols[:, :, row0 : row0 + span_h : stride1, :].permute(0, 2, 1, 3)  # B×H'×C×Wc
        # All column pairs of each row in one batched matmul, then keep the D diagonals we need.
        rows_out.append(torch.matmul(f1, rows).gather(3, band))  # B×H'×W'×D(dx)
    out = torch.stack(rows_out, dim=1).permute(0, 1, 4, 2, 3)  # B×D(dy)×D(dx)×H'×W'
    return out.reshape(b, grid * grid, out_h, out_w) / (kernel_size * kernel_size * c)


class Correlation(nn.Module):
    """Module form of :func:`correlation`; defaults are FlowNetC's (441 output channels)."""

    def __init__(
        self,
        pad_size: int = 20,
        kernel_size: int = 1,
        max_displacement: int = 20,
        stride1: int = 1,
        stride2: int = 2,
    ) -> None:
        super().__init__()
        if kernel_size != 1:
            raise ValueError(
                f"Correlation supports kernel_size=1 only (FlowNetC's setting), got {kernel_size}"
            )
        self.pad_size = pad_size
        self.kernel_size = kernel_size
        self.max_displacement = max_displacement
        self.stride1 = stride1
        self.stride2 = stride2

    @property
    def out_channels(self) -> int:
        """Number of displacement channels ``(2·(max_displacement // stride2) + 1)²``."""
        return (2 * (self.max_displacement // self.stride2) + 1) ** 2

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        """``B×C×H×W``, ``B×C×H×W`` → ``B×D²×H'×W'`` (``H' = H`` for FlowNetC's setting)."""
        return correlation(
            input1, input2, self.pad_size, self.kernel_size, self.max_displacement, self.stride1, self.stride2
        )

    def extra_repr(self) -> str:
        return (
            f"pad_size={self.pad_size}, kernel_size={self.kernel_size}, max_displacement={self.max_displacement}, "
            f"stride1={self.stride1}, stride2={self.stride2}"
        )
