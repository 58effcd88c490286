"""A short synthetic hand video written by the tests themselves: a bright blob moving on a dark background."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FRAMES, FPS = 96, 80, 8, 10.0


def blob_centre(t: int) -> tuple[float, float]:
    """Where the blob is in frame ``t`` (moves right and down by 3 px a frame)."""
    return 30.0 + 3.0 * t, 32.0 + 2.0 * t


def blob_frames(n: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """``n×H×W×3`` RGB uint8 frames with a skin-coloured disc of radius 12 at :func:`blob_centre`."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    frames[..., 2] = 40
    for t in range(n):
        cx, cy = blob_centre(t)
        cv2.circle(frames[t], (round(cx), round(cy)), 12, (230, 180, 150), -1)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames.shape[2:0:-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


