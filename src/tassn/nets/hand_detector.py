"""A small whole-frame hand detector: where the hand is and how large, for the first box of a tracked video.

A heatmap network trained on crops centred on the hand reads a hand well once a crop holds it, but choosing that
first crop by its heatmap peaks prefers boxes larger than the hand and falls for skin-coloured clutter
(docs/results.md, "Video prediction"). Hand trackers split the job: a detector on the whole frame finds the hand
once, a landmark network follows it. This is that detector, in the style of CenterNet (Zhou et al., *Objects as
Points*, 2019) with one class: on a letterboxed ``S×S`` frame it predicts, on a ``S/4`` grid, a centre heatmap
(logits), the centre's sub-cell offset and the log of the square box's side over ``S``. The box it is trained on
is the tracker's and the training crop's own: the keypoints' square, ``margin`` × its longer side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Output cells per input pixel: the heatmap is ``S / STRIDE`` on a side.
STRIDE = 4
#: Output channels: centre logit, x and y offset within the cell (cells), log(side / S).
CENTRE, OFFSET_X, OFFSET_Y, LOG_SIDE = range(4)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class HandBoxDetector(nn.Module):
    """Frames ``B×3×S×S`` (RGB in [0, 1], letterboxed) → ``B×4×S/4×S/4`` maps (see the module doc).

    An encoder down to ``S/32`` (the whole frame in view: a stick next to a hand looks like a finger only up close)
    and a decoder back to ``S/4`` with skips, as in a feature pyramid.
    """

    def __init__(self, input_size: int = 128, width: int = 32) -> None:
        super().__init__()
        if input_size % 32 or input_size < 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        if width < 4:
            raise ValueError(f"width must be at least 4, got {width}")
        self.input_size = input_size
        self.width = width
        w = width
        self.stem = nn.Sequential(_conv(3, w, 2), _conv(w, w))  # S/2
        self.down4 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # S/4
        self.down8 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # S/8
        self.down16 = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # S/16
        self.down32 = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # S/32
        self.up16 = _conv(8 * w, 4 * w)
        self.up8 = _conv(8 * w, 2 * w)
        self.up4 = _conv(4 * w, 2 * w)
        self.head = nn.Sequential(_conv(2 * w, w), nn.Conv2d(w, 4, 1))
        # a low prior for a centre everywhere (CenterNet's bias): the first steps learn where, not that, there is none
        nn.init.constant_(self.head[-1].bias, 0.0)
        with torch.no_grad():
            self.head[-1].bias[CENTRE] = -4.0

    def forward(self, images: Tensor) -> Tensor:
        x4 = self.down4(self.stem(images))
        x8 = self.down8(x4)
        x16 = self.down16(x8)
        x32 = self.down32(x16)
        y = self.up16(torch.cat([F.interpolate(x32, scale_factor=2.0), x16], 1))
        y = self.up8(torch.cat([F.interpolate(y, scale_factor=2.0), x8], 1))
        y = self.up4(torch.cat([F.interpolate(y, scale_factor=2.0), x4], 1))
        return self.head(y)


def decode_boxes(maps: Tensor, input_size: int, top_k: int = 1) -> tuple[Tensor, Tensor]:
    """The ``top_k`` strongest centres of ``B×4×h×w`` maps → boxes ``B×k×3`` ``(cx, cy, side)`` in input pixels
    (pixel centres at integers, as OpenCV's) and their scores ``B×k`` (sigmoid of the centre logit), strongest first.

    Peaks are local maxima of the centre heatmap (a 3×3 max-pool, CenterNet's NMS).
    """
    heat = maps[:, CENTRE : CENTRE + 1].sigmoid()
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    b, _, h, w = heat.shape
    scores, flat = peaks.view(b, -1).topk(min(top_k, h * w), dim=1)
    iy, ix = flat // w, flat % w
    picked = maps.view(b, 4, -1).gather(2, flat[:, None].expand(b, 4, flat.shape[1]))
    cx = (ix.to(maps.dtype) + picked[:, OFFSET_X]) * STRIDE + (STRIDE - 1) / 2
    cy = (iy.to(maps.dtype) + picked[:, OFFSET_Y]) * STRIDE + (STRIDE - 1) / 2
    side = picked[:, LOG_SIDE].exp() * input_size
    return torch.stack([cx, cy, side], dim=-1), scores
