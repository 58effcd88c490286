"""Optical-flow backends for the PME network, chosen by name in the config.

Every backend is a :class:`FlowEstimator`: ``forward(img_a, img_b)`` with two ``B×3×H×W`` RGB batches in [0, 1]
returns ``B×2×H×W`` float flow in pixels (channel 0 = x to the right, 1 = y downwards) that maps ``img_a`` to
``img_b``::

    img_b(x + o(x)) ≈ img_a(x)

i.e. ``o(x)`` is where the pixel ``x`` of ``img_a`` moved to in ``img_b`` (OpenCV's ``calcOpticalFlow*(prev,
next)`` convention, prev = a, next = b). ``tassn.nets.flownet2_ops.warp(img_b, o)`` therefore reconstructs
``img_a``. The flow of the reversed pair is the same call with the images swapped.

Backends: ``dis`` (OpenCV DIS, CPU, no weights, no gradient; the default), ``none`` (zeros, for ablations) and the
FlowNet2 family (``flownet2``, ``flownet2c``, ``flownet2s``, ``flownet2sd``, ``flownet2cs``, ``flownet2css``) from
the official checkpoints, frozen unless ``trainable``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from tassn.nets.flownet2 import (
    CHECKPOINT_FILES,
    CHECKPOINT_SOURCE,
    canonical_variant,
    flownet2_model,
    load_flownet2_checkpoint,
)

__all__ = [
    "DISFlow",
    "FLOW_BACKENDS",
    "FlowEstimator",
    "FlowNet2Backend",
    "ZeroFlow",
    "build_flow_estimator",
]

FLOW_BACKENDS: tuple[str, ...] = (
    "dis",
    "none",
    "flownet2",
    "flownet2c",
    "flownet2s",
    "flownet2sd",
    "flownet2cs",
    "flownet2css",
)


class FlowEstimator(nn.Module):
    """Base class of the flow backends: ``forward(img_a B×3×H×W in [0, 1], img_b) -> flow B×2×H×W`` (pixels).

    Subclasses implement :meth:`estimate`; ``forward`` checks the inputs first.
    """

    #: Whether gradients can flow from the flow back into the backend's parameters (and inputs).
    differentiable: bool = False

    def forward(self, img_a: Tensor, img_b: Tensor) -> Tensor:
        """Flow ``B×2×H×W`` in pixels with ``img_b(x + o(x)) ≈ img_a(x)``."""
        _check_pair(img_a, img_b, type(self).__name__)
        return self.estimate(img_a, img_b)

    def estimate(self, img_a: Tensor, img_b: Tensor) -> Tensor:
        """The backend's flow for an already checked pair (same contract as ``forward``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement estimate()")


def _check_pair(img_a: Tensor, img_b: Tensor, name: str) -> None:
    if img_a.dim() != 4 or img_a.shape[1] != 3:
        raise ValueError(
            f"{name} expects RGB images B×3×H×W in [0, 1], got img_a of shape {tuple(img_a.shape)}"
        )
    if img_b.shape != img_a.shape:
        raise ValueError(
            f"{name} expects img_a and img_b of the same shape, got {tuple(img_a.shape)} and {tuple(img_b.shape)}"
        )
    if not img_a.is_floating_point() or not img_b.is_floating_point():
        raise ValueError(
            f"{name} expects floating-point images in [0, 1], got {img_a.dtype} and {img_b.dtype}"
        )


class ZeroFlow(FlowEstimator):
    """No motion: zero flow of the right shape (ablation "without flow")."""

    def estimate(self, img_a: Tensor, img_b: Tensor) -> Tensor:
        b, _, h, w = img_a.shape
        return img_a.new_zeros(b, 2, h, w)


_DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class DISFlow(FlowEstimator):
    """OpenCV's Dense Inverse Search flow on the grayscale frames: fast on CPU, no weights, no gradient.

    Each pair of the batch is processed in turn (OpenCV has no batch API); the result is returned on the inputs'
    device and dtype, outside the autograd graph.
    """

    def __init__(self, preset: str = "medium") -> None:
        super().__init__()
        if preset not in _DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; expected one of {', '.join(_DIS_PRESETS)}")
        self.preset = preset

    @staticmethod
    def _gray_u8(images: Tensor) -> np.ndarray:
        """``B×3×H×W`` in [0, 1] → ``B×H×W`` uint8 luma (ITU-R BT.601 weights, as cv2.COLOR_RGB2GRAY)."""
        weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        gray = (images.detach() * weights).sum(1).mul(255.0).round().clamp(0, 255)
        return gray.to(device="cpu", dtype=torch.uint8).numpy()

    @torch.no_grad()
    def estimate(self, img_a: Tensor, img_b: Tensor) -> Tensor:
        # A fresh DIS object per call: the OpenCV object is neither picklable nor safe to share across threads.
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        gray_a, gray_b = self._gray_u8(img_a), self._gray_u8(img_b)
        flows = [dis.calc(a, b, None) for a, b in zip(gray_a, gray_b, strict=True)]  # H×W×2 each
        flow = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2)
        return flow.to(device=img_a.device, dtype=img_a.dtype)

    def extra_repr(self) -> str:
        return f"preset={self.preset!r}"


class FlowNet2Backend(FlowEstimator):
    """A FlowNet2-family network with the official weights.

    Frozen by default (``trainable=False``): parameters do not require grad, the network stays in eval mode when
    the parent is put in train mode, it runs under ``no_grad``, and its weights are left out of ``state_dict()``
    (they come from ``checkpoint`` at construction, so the parent's Lightning checkpoints stay small; loading a
    parent state_dict without them keeps the official weights, loading one with them uses those). Whether it is
    frozen is read from ``requires_grad`` at each call, so a parent that unfreezes the parameters later fine-tunes
    it, and then its weights are saved. With ``trainable=True`` it is an ordinary sub-module from the start.

    The networks expect RGB in 0–255, so the [0, 1] inputs are scaled by 255.
    """

    def __init__(self, variant: str, checkpoint: str, trainable: bool = False) -> None:
        super().__init__()
        self.variant = canonical_variant(variant)
        self.checkpoint = str(checkpoint)
        self.model = flownet2_model(self.variant)
        self.checkpoint_meta: dict[str, Any] = load_flownet2_checkpoint(self.model, self.checkpoint)
        self.register_state_dict_post_hook(_drop_frozen_weights)
        self.register_load_state_dict_pre_hook(_fill_frozen_weights)
        if not trainable:
            self.model.requires_grad_(False)
            self.model.eval()

    @property
    def frozen(self) -> bool:
        """True while no parameter of the network requires grad."""
        return not any(p.requires_grad for p in self.model.parameters())

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return not self.frozen

    def train(self, mode: bool = True) -> FlowNet2Backend:
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def estimate(self, img_a: Tensor, img_b: Tensor) -> Tensor:
        inputs = torch.stack((img_a, img_b), dim=2) * 255.0  # B×3×2×H×W, the reference layout
        if not self.frozen:
            return self.model(inputs)
        with torch.no_grad():
            return self.model(inputs)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, checkpoint={self.checkpoint!r}, frozen={self.frozen}"


def _drop_frozen_weights(
    module: nn.Module, state_dict: dict[str, Tensor], prefix: str, local_metadata: Any
) -> None:
    """state_dict hook: a frozen network's weights are reloaded from the official file, not saved again."""
    if not isinstance(module, FlowNet2Backend) or not module.frozen:
        return
    for key in [k for k in state_dict if k.startswith(prefix + "model.")]:
        del state_dict[key]


def _fill_frozen_weights(module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
    """load_state_dict pre-hook: network weights absent from ``state_dict`` keep the ones already loaded."""
    if not isinstance(module, FlowNet2Backend):
        return
    for key, value in module.model.state_dict(keep_vars=False).items():
        state_dict.setdefault(f"{prefix}model.{key}", value)


def build_flow_estimator(
    name: str = "dis", checkpoint: str | None = None, trainable: bool = False
) -> FlowEstimator:
    """The backend called ``name`` (one of :data:`FLOW_BACKENDS`).

    ``checkpoint`` is required by the FlowNet2 family (path to the official ``*_checkpoint.pth.tar``) and ignored
    otherwise; ``trainable`` fine-tunes a FlowNet2 network instead of freezing it (``dis`` and ``none`` have no
    parameters).
    """
    key = name.lower()
    if key not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend {name!r}; valid names: {', '.join(FLOW_BACKENDS)}")
    if key == "dis":
        return DISFlow()
    if key == "none":
        return ZeroFlow()
    variant = canonical_variant(key)
    if checkpoint is None:
        raise ValueError(
            f"flow backend {name!r} needs the official {variant} weights: pass checkpoint=<path to "
            f"{CHECKPOINT_FILES[variant]}>, downloaded from {CHECKPOINT_SOURCE}"
        )
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(
            f"flow backend {name!r}: checkpoint {checkpoint} does not exist; expected the official "
            f"{CHECKPOINT_FILES[variant]} from {CHECKPOINT_SOURCE}"
        )
    return FlowNet2Backend(variant, checkpoint, trainable=trainable)
