"""A per-frame, per-joint confidence from the agreement of the forward and reversed passes.

TASSN trains its forward and reversed temporal measurements to agree (L_c); where they still disagree on a joint,
at least one of them is wrong. The confidence of joint ``j`` in frame ``t`` is

    c = clamp(h, 0, 1) · exp(−½ (d / τ)²),   d = ‖p_t,j − p̃_t,j‖ (root-relative, scale-normalised units),

with ``h`` the mean heatmap peak of the two passes (the 2D evidence the pose is built on), ``p``/``p̃`` the forward
and reversed 3D keypoints and ``τ`` the disagreement (in reference-bone lengths) at which the agreement factor has
fallen to e^(−½) ≈ 0.61. Both factors are in [0, 1], so ``c`` is too; ranking, not calibration, is what it is for.
"""

from __future__ import annotations

import numpy as np

#: Where the confidence of each frame and joint is saved (``predictions.npz`` extra, CSV/JSON columns).
CONFIDENCE3D_KEY = "confidence3d"
#: The forward/backward disagreement ``d`` behind it.
DISAGREEMENT_KEY = "fb_disagreement"
#: Default ``τ``: half a reference bone (middle MCP→PIP, about 15 mm on an adult hand).
AGREEMENT_SCALE = 0.5
#: The definition, as written next to the numbers.
FORMULA = (
    "confidence = clamp(h, 0, 1) * exp(-0.5 * (d / tau)^2), in [0, 1]: h = mean heatmap peak of the forward and "
    "reversed passes, d = ||p - p~|| between their 3D keypoints (root-relative, reference bone = 1), tau = "
    "agreement_scale"
)


def forward_backward_confidence(
    pose_forward: np.ndarray,
    pose_reverse: np.ndarray,
    peak_forward: np.ndarray,
    peak_reverse: np.ndarray,
    scale: float = AGREEMENT_SCALE,
) -> tuple[np.ndarray, np.ndarray]:
    """``(confidence F×21, disagreement F×21)`` from the two passes' poses ``F×21×3`` and heatmap peaks ``F×21``."""
    if not scale > 0:
        raise ValueError(f"agreement scale τ must be positive (reference-bone lengths), got {scale}")
    pose_forward, pose_reverse = np.asarray(pose_forward, np.float64), np.asarray(pose_reverse, np.float64)
    if pose_forward.shape != pose_reverse.shape or pose_forward.ndim != 3 or pose_forward.shape[-1] != 3:
        raise ValueError(f"poses must both be F×21×3, got {pose_forward.shape} and {pose_reverse.shape}")
    peaks = 0.5 * (np.asarray(peak_forward, np.float64) + np.asarray(peak_reverse, np.float64))
    if peaks.shape != pose_forward.shape[:-1]:
        raise ValueError(f"heatmap peaks must be {pose_forward.shape[:-1]}, got {peaks.shape}")
    disagreement = np.linalg.norm(pose_forward - pose_reverse, axis=-1)
    confidence = np.clip(peaks, 0.0, 1.0) * np.exp(-0.5 * (disagreement / scale) ** 2)
    return confidence, disagreement
