"""A per-frame, per-joint confidence from the agreement of the forward and reversed passes.

TASSN trains its forward and reversed temporal measurements to agree (L_c); where they still disagree on a joint,
at least one of them is wrong. The confidence of joint ``j`` in frame ``t`` is

    c = clamp(h, 0, 1) · exp(−½ (d / τ)²) · γ^k,   d = ‖p_t,j − p̃_t,j‖ (root-relative, scale-normalised units),

with ``h`` the mean heatmap peak of the two passes (the 2D evidence the pose is built on), ``p``/``p̃`` the forward
and reversed 3D keypoints, ``τ`` the disagreement (in reference-bone lengths) at which the agreement factor has
fallen to e^(−½) ≈ 0.61, and ``γ^k`` the **chain prior**: ``k`` is the joint's number of bones from the wrist (MCP 1,
tip 4). A root-relative joint inherits the errors of every bone between it and the wrist, so at equal evidence a
fingertip is more often wrong than its knuckle; ``γ`` (``chain_decay``, 1 = no prior) says by how much. Every factor
is in [0, 1], so ``c`` is too; ranking, not calibration, is what it is for. ``tassn adapt`` masks its pseudo-labels
by the confidence without the prior (``chain_decay = 1``), as it was chosen.
"""

from __future__ import annotations

import numpy as np

from tassn.hand.kinematics import DEPTH

#: Where the confidence of each frame and joint is saved (``predictions.npz`` extra, CSV/JSON columns).
CONFIDENCE3D_KEY = "confidence3d"
#: The forward/backward disagreement ``d`` behind it.
DISAGREEMENT_KEY = "fb_disagreement"
#: Default ``τ``: half a reference bone (middle MCP→PIP, about 15 mm on an adult hand).
AGREEMENT_SCALE = 0.5
#: Default ``γ`` of ``tassn predict``'s confidence, chosen on the synthetic validation videos (docs/results.md,
#: "Temporal quality"): AUROC for "error > 20 mm" 0.747 without the prior, 0.773 / 0.786 / 0.791 / 0.791 at
#: γ = 0.9 / 0.8 / 0.7 / 0.6.
CHAIN_DECAY = 0.7
#: The definition, as written next to the numbers.
FORMULA = (
    "confidence = clamp(h, 0, 1) * exp(-0.5 * (d / tau)^2) * gamma^k, in [0, 1]: h = mean heatmap peak of the "
    "forward and reversed passes, d = ||p - p~|| between their 3D keypoints (root-relative, reference bone = 1), "
    "tau = agreement_scale, k = the joint's number of bones from the wrist, gamma = chain_decay"
)


def chain_depth() -> np.ndarray:
    """``21`` ints: each joint's number of bones from the wrist (the wrist 0, MCPs 1, tips 4)."""
    return np.asarray(DEPTH, dtype=np.int64)


def forward_backward_confidence(
    pose_forward: np.ndarray,
    pose_reverse: np.ndarray,
    peak_forward: np.ndarray,
    peak_reverse: np.ndarray,
    scale: float = AGREEMENT_SCALE,
    chain_decay: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(confidence F×21, disagreement F×21)`` from the two passes' poses ``F×21×3`` and heatmap peaks ``F×21``;
    ``chain_decay`` is the chain prior's ``γ`` (module doc; 1: none)."""
    if not scale > 0:
        raise ValueError(f"agreement scale τ must be positive (reference-bone lengths), got {scale}")
    if not 0.0 < chain_decay <= 1.0:
        raise ValueError(f"chain decay γ must be in (0, 1], got {chain_decay}")
    pose_forward, pose_reverse = np.asarray(pose_forward, np.float64), np.asarray(pose_reverse, np.float64)
    if pose_forward.shape != pose_reverse.shape or pose_forward.ndim != 3 or pose_forward.shape[-1] != 3:
        raise ValueError(f"poses must both be F×21×3, got {pose_forward.shape} and {pose_reverse.shape}")
    peaks = 0.5 * (np.asarray(peak_forward, np.float64) + np.asarray(peak_reverse, np.float64))
    if peaks.shape != pose_forward.shape[:-1]:
        raise ValueError(f"heatmap peaks must be {pose_forward.shape[:-1]}, got {peaks.shape}")
    disagreement = np.linalg.norm(pose_forward - pose_reverse, axis=-1)
    confidence = np.clip(peaks, 0.0, 1.0) * np.exp(-0.5 * (disagreement / scale) ** 2)
    confidence = confidence * chain_decay ** chain_depth().astype(np.float64)
    return confidence, disagreement
