"""2D keypoint heatmap estimator: a stacked hourglass (Newell et al. 2016) in the variant of Ge et al. 2019.

TASSN feeds it ``[I_{t+1}, o_{t+1}, H_t]`` (3 + 2 + 21 channels) and reads back the heatmaps ``H_{t+1}`` of every
stack plus the features the mesh estimator encodes. Defaults are the paper's: 256 features, 2 stacks, depth 4,
2 residual modules per slot, 256² input → 21×64×64 heatmaps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1×1 (out/2), BN-ReLU-3×3, BN-ReLU-1×1; 1×1 skip when widths differ."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _residuals(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(Residual(channels, channels) for _ in range(count)))


class Hourglass(nn.Module):
    """One recursive hourglass of ``depth`` halvings; ``modules`` residuals in every slot; same size out."""

    def __init__(self, depth: int, channels: int, modules: int = 2):
        super().__init__()
        self.up = _residuals(channels, modules)
        self.down = _residuals(channels, modules)
        self.inner = Hourglass(depth - 1, channels, modules) if depth > 1 else _residuals(channels, modules)
        self.after = _residuals(channels, modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.after(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.up(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class HourglassOutput(NamedTuple):
    """``heatmaps B×S×J×h×w`` (every stack); ``features B×C×h×w`` (the last stack's encoding);
    ``previous_features B×C×h×w`` (the input of the last stack, ``None`` with a single stack)."""

    heatmaps: torch.Tensor
    features: torch.Tensor
    previous_features: torch.Tensor | None


class StackedHourglass(nn.Module):
    """Stem (7×7/2 conv, residuals, max-pool: ÷4) then ``stacks`` hourglasses with intermediate supervision."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 21,
        features: int = 256,
        stacks: int = 2,
        depth: int = 4,
        modules: int = 2,
        stem_features: int = 128,
    ):
        super().__init__()
        if stacks < 1 or depth < 1 or modules < 1:
            raise ValueError(f"StackedHourglass: stacks, depth, modules must be ≥ 1, got {stacks}, {depth}, {modules}")
        self.depth = depth
        half = stem_features // 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, half, 7, stride=2, padding=3),
            nn.BatchNorm2d(half),
            nn.ReLU(),
            Residual(half, stem_features),
            nn.MaxPool2d(2),
            Residual(stem_features, stem_features),
            Residual(stem_features, features),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, features, modules) for _ in range(stacks))
        self.post = nn.ModuleList(
            nn.Sequential(
                _residuals(features, modules), nn.Conv2d(features, features, 1), nn.BatchNorm2d(features), nn.ReLU()
            )
            for _ in range(stacks)
        )
        self.to_heatmaps = nn.ModuleList(nn.Conv2d(features, out_channels, 1) for _ in range(stacks))
        for head in self.to_heatmaps:  # start near empty maps: L_h then starts at the targets' own energy, not ~100×
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)
        self.remap_features = nn.ModuleList(nn.Conv2d(features, features, 1) for _ in range(stacks - 1))
        self.remap_heatmaps = nn.ModuleList(nn.Conv2d(out_channels, features, 1) for _ in range(stacks - 1))

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this: ÷4 in the stem, then ``depth`` halvings."""
        return 4 * 2**self.depth

    def forward(self, x: torch.Tensor) -> HourglassOutput:
        if x.shape[-1] % self.size_multiple or x.shape[-2] % self.size_multiple:
            raise ValueError(
                f"StackedHourglass: input sides must be multiples of {self.size_multiple}, got {tuple(x.shape[-2:])}"
            )
        x = self.stem(x)
        heatmaps, previous = [], None
        last = len(self.hourglasses) - 1
        for i, (hourglass, post, head) in enumerate(zip(self.hourglasses, self.post, self.to_heatmaps, strict=True)):
            feat = post(hourglass(x))
            heat = head(feat)
            heatmaps.append(heat)
            if i < last:
                previous = x = x + self.remap_features[i](feat) + self.remap_heatmaps[i](heat)
        return HourglassOutput(torch.stack(heatmaps, dim=1), feat, previous)


class HeatmapEstimator(nn.Module):
    """Heatmaps ``H_{t+1}`` and features from ``[I_{t+1}, o_{t+1}, H_t]``.

    Input conditioning (documented because checkpoints depend on it):
    - the image in ``[0, 1]`` is centred to ``[−0.5, 0.5]``;
    - the flow (pixels) is divided by ``flow_normaliser × side`` per axis, so a motion of
      ``flow_normaliser`` of the image side reads 1 (default 0.1: 25.6 px at 256²);
    - ``H_t`` (``B×J×h×w``, ``h = H/4``) is up-sampled bilinearly to the image size.
    """

    def __init__(
        self,
        num_joints: int = 21,
        features: int = 256,
        stacks: int = 2,
        depth: int = 4,
        modules: int = 2,
        stem_features: int = 128,
        flow_normaliser: float = 0.1,
    ):
        super().__init__()
        if flow_normaliser <= 0:
            raise ValueError(f"HeatmapEstimator: flow_normaliser must be > 0, got {flow_normaliser}")
        self.num_joints = num_joints
        self.flow_normaliser = flow_normaliser
        self.hourglass = StackedHourglass(3 + 2 + num_joints, num_joints, features, stacks, depth, modules, stem_features)

    def forward(self, image: torch.Tensor, flow: torch.Tensor, prev_heatmap: torch.Tensor) -> HourglassOutput:
        """``image B×3×H×W``, ``flow B×2×H×W`` (pixels), ``prev_heatmap B×J×h×w`` → :class:`HourglassOutput`."""
        b, _, h, w = image.shape
        if image.shape[1] != 3 or flow.shape != (b, 2, h, w):
            raise ValueError(
                f"HeatmapEstimator: expected image B×3×H×W and flow B×2×H×W, got {tuple(image.shape)}, {tuple(flow.shape)}"
            )
        if prev_heatmap.dim() != 4 or prev_heatmap.shape[:2] != (b, self.num_joints):
            raise ValueError(f"HeatmapEstimator: expected heatmaps B×{self.num_joints}×h×w, got {tuple(prev_heatmap.shape)}")
        scale = flow.new_tensor([w, h]).view(1, 2, 1, 1) * self.flow_normaliser
        heat = F.interpolate(prev_heatmap, size=(h, w), mode="bilinear", align_corners=False)
        return self.hourglass(torch.cat([image - 0.5, flow / scale, heat], dim=1))
