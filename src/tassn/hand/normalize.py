"""Root-relative, scale-normalised 3D: the space networks predict in.

``x = (X − X_wrist) / ‖X_middle_mcp − X_middle_pip‖`` (Ge et al.; Zimmermann & Brox). Metrics invert it with the
ground truth's root and reference-bone length, which is why both are returned.
"""

from __future__ import annotations

import torch

from .skeleton import REF_BONE, ROOT


def reference_bone_length(joints: torch.Tensor) -> torch.Tensor:
    """Length of the middle MCP→PIP bone. joints ``…×21×3`` → ``…``."""
    return (joints[..., REF_BONE[0], :] - joints[..., REF_BONE[1], :]).norm(dim=-1)


def normalize_3d(
    points: torch.Tensor, joints: torch.Tensor | None = None, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Make ``points …×N×3`` root-relative and scale-normalised using ``joints …×21×3`` (default: points).

    Returns ``(normalised …×N×3, root …×3, bone …)``.
    """
    joints = points if joints is None else joints
    root = joints[..., ROOT, :]
    bone = reference_bone_length(joints).clamp_min(eps)
    return (points - root[..., None, :]) / bone[..., None, None], root, bone


def denormalize_3d(normalised: torch.Tensor, root: torch.Tensor, bone: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_3d`: ``normalised …×N×3`` → mm with the given root ``…×3`` and bone ``…``."""
    return normalised * bone[..., None, None] + root[..., None, :]
