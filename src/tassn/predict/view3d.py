"""A small 3D view of the predicted skeleton from another viewpoint, drawn with OpenCV lines.

The overlay's main picture already shows the hand from the camera; this inset turns the root-relative 3D pose
about the vertical axis (and tilts it) so that depth errors — invisible from the camera — become visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from tassn.hand.skeleton import BONES, NUM_JOINTS


def view_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """``3×3`` rotation of camera-frame points (x right, y down, z forward): yaw about y, then pitch about x."""
    return Rotation.from_euler("yx", [yaw_deg, pitch_deg], degrees=True).as_matrix()


@dataclass(frozen=True)
class ViewFrame:
    """The part of 3D space the view shows: a ball of radius ``extent`` around ``centre``."""

    centre: np.ndarray
    extent: float


def view_frame(poses: np.ndarray, margin: float = 1.1) -> ViewFrame:
    """The ball holding every pose ``F×21×3`` of a video: one centre and scale for all frames, so no jitter."""
    finite = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    finite = finite[np.isfinite(finite).all(axis=1)]
    if not len(finite):
        return ViewFrame(np.zeros(3), 1.0)
    centre = (finite.min(axis=0) + finite.max(axis=0)) / 2
    radius = np.linalg.norm(finite - centre, axis=1).max()
    return ViewFrame(centre, float(max(radius * margin, 1e-6)))


def project_view(pose: np.ndarray, size: int, frame: ViewFrame, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic view pixels ``21×2`` and depths ``21`` of a pose ``21×3`` (``frame.centre`` in the middle)."""
    rotated = (pose - frame.centre) @ rotation.T
    scale = (size / 2 - 2) / frame.extent
    return rotated[:, :2] * scale + (size - 1) / 2, rotated[:, 2]


def render_view3d(
    pose: np.ndarray,
    size: int,
    frame: ViewFrame,
    colors: Sequence[tuple[int, int, int]],
    yaw_deg: float = 70.0,
    pitch_deg: float = -20.0,
    background: tuple[int, int, int] = (32, 32, 32),
    label: str | None = "3D",
) -> np.ndarray:
    """An RGB ``size×size`` picture of ``pose 21×3`` seen from ``(yaw, pitch)``; ``colors`` has one RGB per bone.

    Bones are drawn far to near so the nearer finger covers the farther one.
    """
    if pose.shape != (NUM_JOINTS, 3):
        raise ValueError(f"pose must be {NUM_JOINTS}×3, got {pose.shape}")
    if len(colors) != len(BONES):
        raise ValueError(f"need one colour per bone ({len(BONES)}), got {len(colors)}")
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = background
    cv2.rectangle(canvas, (0, 0), (size - 1, size - 1), (110, 110, 110), 1)
    if label:
        cv2.putText(canvas, label, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (200, 200, 200), 1, cv2.LINE_AA)
    if not np.isfinite(pose).all():
        return canvas
    points, depth = project_view(pose, size, frame, view_rotation(yaw_deg, pitch_deg))
    thickness = max(1, size // 64)
    order = sorted(range(len(BONES)), key=lambda b: -(depth[BONES[b][0]] + depth[BONES[b][1]]))
    shift = 4  # sub-pixel line positions
    fixed = np.round(points * (1 << shift)).astype(np.int64)
    for b in order:
        p, c = BONES[b]
        cv2.line(canvas, tuple(map(int, fixed[p])), tuple(map(int, fixed[c])), tuple(map(int, colors[b])),
                 thickness, cv2.LINE_AA, shift)
    for j in np.argsort(-depth):
        cv2.circle(canvas, tuple(map(int, fixed[j])), thickness * (1 << shift), (235, 235, 235), -1, cv2.LINE_AA,
                   shift)
    return canvas
