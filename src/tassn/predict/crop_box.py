"""A square hand crop in frame pixels, and the map between frame and crop pixels.

Coordinates are OpenCV's: pixel centres at integers. A box of side ``size`` centred on ``(cx, cy)`` maps its
extent ``[cx − size/2, cx + size/2]`` onto the crop's ``[−0.5, S − 0.5]``; the crop itself is cut exactly as the
training pipeline cuts its crops (:mod:`data_modules.clips`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from data_modules.clips import crop_matrix, warp_image

#: Fewer confident keypoints than this and a keypoint frame is treated as missing.
MIN_KEYPOINTS = 3


@dataclass(frozen=True)
class CropBox:
    """A square in frame pixels: centre ``(cx, cy)`` and side ``size``."""

    cx: float
    cy: float
    size: float

    def __post_init__(self) -> None:
        if not np.isfinite([self.cx, self.cy, self.size]).all() or self.size <= 0:
            raise ValueError(f"a crop box needs a finite centre and a positive size, got {self}")

    @classmethod
    def from_corners(cls, x0: float, y0: float, x1: float, y1: float, margin: float = 1.0) -> CropBox:
        """The square around a (possibly non-square) box, its longer side scaled by ``margin``."""
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box (x0, y0, x1, y1) = {(x0, y0, x1, y1)} must have x1 > x0 and y1 > y0")
        return cls((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * margin)

    @classmethod
    def from_keypoints(cls, kp2d: np.ndarray, margin: float = 1.5, min_size: float = 16.0) -> CropBox:
        """The square around keypoints ``K×2`` (x, y), side = longer extent × ``margin`` (at least ``min_size``)."""
        lo, hi = kp2d.min(axis=0), kp2d.max(axis=0)
        centre = (lo + hi) / 2
        return cls(float(centre[0]), float(centre[1]), float(max((hi - lo).max() * margin, min_size)))

    @classmethod
    def centred_square(cls, width: int, height: int) -> CropBox:
        """The largest square centred in a ``width×height`` frame."""
        return cls((width - 1) / 2, (height - 1) / 2, float(min(width, height)))

    def corners(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` of the square's extent."""
        h = self.size / 2
        return self.cx - h, self.cy - h, self.cx + h, self.cy + h

    def as_array(self) -> np.ndarray:
        """``[cx, cy, size]`` as float64."""
        return np.array([self.cx, self.cy, self.size], dtype=np.float64)

    def iou(self, other: CropBox) -> float:
        """Intersection over union of two squares."""
        a, b = self.corners(), other.corners()
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / (self.size**2 + other.size**2 - inter)

    def affine(self, crop_size: int) -> np.ndarray:
        """The ``3×3`` map from frame to crop pixels (the training pipeline's :func:`crop_matrix`)."""
        return crop_matrix((self.cx, self.cy), self.size, crop_size)

    def to_crop(self, points: np.ndarray, crop_size: int) -> np.ndarray:
        """Frame pixels ``…×2`` → crop pixels."""
        k = crop_size / self.size
        return (points - np.array([self.cx, self.cy])) * k + (crop_size - 1) / 2

    def to_frame(self, points: np.ndarray, crop_size: int) -> np.ndarray:
        """Crop pixels ``…×2`` → frame pixels (inverse of :meth:`to_crop`)."""
        k = crop_size / self.size
        return (points - (crop_size - 1) / 2) / k + np.array([self.cx, self.cy])

    def cut(self, frame: np.ndarray, crop_size: int) -> np.ndarray:
        """The ``crop_size×crop_size`` crop of an ``H×W×C`` frame, black outside it, low-passed when shrinking
        exactly as training crops are (:func:`data_modules.clips.warp_image`)."""
        return warp_image(frame, self.affine(crop_size), crop_size)
