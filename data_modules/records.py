"""What a dataset loader hands the clip pipeline: videos as lists of labelled frames.

Each source (synthetic, STB, MHP, a user's video) turns its own files into these records in one place; the clip
pipeline (:mod:`data_modules.clips`) does everything after that (crop, mirror, heatmaps, GrabCut) the same way
for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class FrameRecord:
    """One labelled frame, in the original image's pixels and the camera's millimetres.

    kp2d: 21×2 pixel coordinates (x, y) in canonical joint order, already including lens distortion.
    kp3d: 21×3 millimetres in the camera frame, or None when the source has no 3D.
    K: 3×3 intrinsics of the (undistorted pinhole part of the) camera.
    bbox: optional hand box (x0, y0, x1, y1) in pixels; the crop uses the keypoints when it is None.
    mesh3d: V×3 mm mesh vertices in the camera frame (synthetic only).
    mask_path: the true silhouette image (synthetic only: used to measure GrabCut, never for training).
    """

    image_path: Path
    kp2d: np.ndarray
    K: np.ndarray
    kp3d: np.ndarray | None = None
    bbox: tuple[float, float, float, float] | None = None
    visible: np.ndarray | None = None
    mesh3d: np.ndarray | None = None
    mask_path: Path | None = None
    index: int = 0


@dataclass
class VideoRecord:
    """Consecutive frames of one camera of one sequence.

    mirror: the hand is a left hand; the pipeline mirrors image, 2D, 3D and K so that every hand is a right hand.
    """

    name: str
    frames: list[FrameRecord] = field(default_factory=list)
    mirror: bool = False
    image_size: tuple[int, int] | None = None  # (width, height) when known without reading a frame

    def __len__(self) -> int:
        return len(self.frames)
