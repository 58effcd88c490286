"""How the previous frame's heatmaps ``H_t`` become the hourglass's third input, in training and at inference.

Feeding back the raw predicted heatmaps with the gradient running through the clip stops 2D learning: the network
learns to lean on its own early, blurry ``H_t`` and the loss of every frame pulls on all the frames before it.
Detaching helps, but the fed-back maps are still garbage early in training and far from the targets' shape later.
Here ``H_t`` always has the targets' form — a unit Gaussian per joint, or nothing:

- at inference (and validation), ``redrawn``: a Gaussian of the targets' ``σ`` at each sub-pixel peak of the
  previous frame's last-stack heatmaps, and an empty map for a joint whose peak is under ``min_peak`` (not found);
- in training, teacher forcing with noise (:func:`teacher_heatmaps`): the previous frame's *labelled* keypoints,
  jittered by up to ``jitter`` heatmap cells and dropped per joint with probability ``drop``, drawn the same way.
  The noise stands in for the model's own errors at inference, so the network learns ``H_t`` as a prior it may
  not trust, and the gradient of one frame never reaches the frames before it.

``predicted`` and ``detached`` keep the raw maps (with or without their gradient) for comparison.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from tassn.heatmaps import gaussian_heatmaps, heatmap_peaks

#: how a frame's output becomes the next frame's ``H_t`` when no teacher is given.
FeedbackMode = Literal["redrawn", "predicted", "detached"]
FEEDBACK_MODES: tuple[str, ...] = ("redrawn", "predicted", "detached")


def redraw_heatmaps(heatmaps: Tensor, sigma: float, min_peak: float, confidence: bool = False) -> Tensor:
    """``B×J×h×w`` heatmaps → Gaussians of width ``sigma`` at their sub-pixel peaks (no gradient): of height 1, or
    of the peak's own height clamped to [0, 1] with ``confidence``; a joint whose peak is under ``min_peak`` gets
    an empty map."""
    peaks, values = heatmap_peaks(heatmaps)
    weight = (values >= min_peak).to(heatmaps.dtype)
    if confidence:
        weight = weight * values.clamp(0.0, 1.0)
    return gaussian_heatmaps(peaks, heatmaps.shape[-1], sigma, weight)


def feed_back(heatmaps: Tensor, mode: FeedbackMode, sigma: float, min_peak: float, confidence: bool = False) -> Tensor:
    """The next frame's ``H_t`` from this frame's last-stack heatmaps ``B×J×h×w``."""
    if mode == "redrawn":
        return redraw_heatmaps(heatmaps, sigma, min_peak, confidence)
    if mode == "detached":
        return heatmaps.detach()
    if mode == "predicted":
        return heatmaps
    raise ValueError(f"heatmap feedback must be one of {FEEDBACK_MODES}, got {mode!r}")


def teacher_heatmaps(
    keypoints: Tensor,
    visible: Tensor,
    size: int,
    sigma: float,
    jitter: float,
    drop: float,
    confidence: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Noised label heatmaps ``…×J×size×size`` from keypoints ``…×J×2`` (heatmap pixels) and ``visible …×J``.

    Each keypoint moves by a uniform offset in ``[−jitter, jitter]`` cells per axis and is dropped (empty map) with
    probability ``drop``; unlabelled keypoints are always empty. With ``confidence`` each map gets a random height
    ``a`` in [0, 1] and its offset is scaled by ``2(1 − a)``: a faint map is a worse guess, as a low peak of the
    network's own heatmaps is at inference (where ``confidence`` re-draws maps at their peak's height).
    """
    if not 0.0 <= drop < 1.0 or jitter < 0:
        raise ValueError(f"teacher heatmaps: need 0 ≤ drop < 1 and jitter ≥ 0, got drop={drop}, jitter={jitter}")
    noise = torch.rand(keypoints.shape, generator=generator, device=keypoints.device, dtype=keypoints.dtype)
    keep = (torch.rand(visible.shape, generator=generator, device=visible.device) >= drop) & visible.bool()
    offset = (2 * noise - 1) * jitter
    weight = keep.to(keypoints.dtype)
    if confidence:
        height = torch.rand(visible.shape, generator=generator, device=visible.device, dtype=keypoints.dtype)
        offset = offset * 2 * (1 - height).unsqueeze(-1)
        weight = weight * height
    return gaussian_heatmaps(keypoints + offset, size, sigma, weight)
