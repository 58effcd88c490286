"""From the network's heatmaps to 2D keypoints in crop pixels, and from forward + reverse passes to one answer."""

from __future__ import annotations

import torch
from kornia.geometry.subpix import spatial_expectation2d, spatial_softmax2d

from tassn.heatmaps import HEATMAP_STRIDE, heatmap_peaks, heatmap_to_crop

KEYPOINT_METHODS: tuple[str, ...] = ("quadratic", "softargmax")
_LOG_FLOOR = 1e-6


def heatmaps_to_keypoints(
    heatmaps: torch.Tensor, crop_size: int, method: str = "quadratic", temperature: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints ``B×J×2`` in crop pixels and their confidence ``B×J`` (the heatmap's peak) from ``B×J×h×w``.

    ``quadratic``: argmax with a log-parabola sub-pixel step (exact for Gaussian peaks, unaffected by the rest of
    the map). ``softargmax``: kornia's ``spatial_softmax2d`` + ``spatial_expectation2d`` on the log-heatmap — a
    Gaussian to the power ``1/temperature`` keeps its centre and narrows to ``σ·√temperature``, so this is unbiased
    away from the border while averaging over the whole map (0.25 turns the σ = 2 training targets into σ = 1). Heatmap pixels map to crop pixels by the training pipeline's convention
    (:func:`tassn.heatmaps.heatmap_to_crop`).
    """
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must be B×J×h×w, got shape {tuple(heatmaps.shape)}")
    if method not in KEYPOINT_METHODS:
        raise ValueError(f"keypoint method must be one of {KEYPOINT_METHODS}, got {method!r}")
    stride = crop_size / heatmaps.shape[-1]
    if stride != HEATMAP_STRIDE:
        raise ValueError(
            f"heatmaps of side {heatmaps.shape[-1]} do not match crops of {crop_size} px (expected a stride of "
            f"{HEATMAP_STRIDE})"
        )
    maps = heatmaps.float()
    if method == "quadratic":
        in_heatmap = heatmap_peaks(maps)[0]
    else:
        probabilities = spatial_softmax2d(torch.log(maps.clamp_min(_LOG_FLOOR)), temperature=temperature)
        in_heatmap = spatial_expectation2d(probabilities, normalized_coordinates=False)
    confidence = maps.flatten(2).amax(dim=-1)
    return heatmap_to_crop(in_heatmap, stride), confidence


def fuse_directions(forward: torch.Tensor, reverse: torch.Tensor) -> torch.Tensor:
    """The mean of the forward and reversed-order predictions of the same frames.

    Both passes are trained to agree (the temporal consistency loss), so their mean is the least-squares answer
    for either; it also halves the variance of their independent errors.
    """
    if forward.shape != reverse.shape:
        raise ValueError(f"forward {tuple(forward.shape)} and reverse {tuple(reverse.shape)} must have one shape")
    return 0.5 * (forward + reverse)
