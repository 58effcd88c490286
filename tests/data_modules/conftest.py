"""Tiny hand-like videos built in a temporary folder: a posed skeleton drawn as thick limbs on a textured
background, with exact 2D/3D labels and the drawn mask (no generator needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from data_modules.records import FrameRecord, VideoRecord

from tassn.hand.kinematics import HandPose, forward_kinematics
from tassn.hand.skeleton import BONES


def draw_video(folder: Path, name: str = "clip", frames: int = 4, size: int = 96, seed: int = 0,
               mirror: bool = False) -> VideoRecord:
    rng = np.random.default_rng(seed)
    K = np.array([[1.1 * size, 0.0, size / 2 - 3.0], [0.0, 1.05 * size, size / 2 + 2.0], [0.0, 0.0, 1.0]])
    pose = HandPose.zeros(frames, dtype=torch.float64)
    pose.angles[:, :, 0] = torch.linspace(0.0, 0.6, frames)[:, None]
    pose.global_rot[:, 2] = torch.linspace(-0.2, 0.2, frames)
    pose.trans[:] = torch.tensor([0.0, 60.0, 380.0], dtype=torch.float64)
    kp3d = forward_kinematics(pose)[0].numpy()
    bg = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.uint8), (0, 0), 3)
    video = VideoRecord(name=name, mirror=mirror, image_size=(size, size))
    (folder / name).mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        uvw = kp3d[t] @ K.T
        kp2d = uvw[:, :2] / uvw[:, 2:]
        mask = np.zeros((size, size), np.uint8)
        thick = max(2, int(round(size / 14)))
        for a, b in BONES:
            cv2.line(mask, tuple(int(v) for v in np.round(kp2d[a])), tuple(int(v) for v in np.round(kp2d[b])),
                     1, thickness=thick)
        palm = np.round(kp2d[[0, 1, 5, 9, 13, 17]]).astype(np.int32)
        cv2.fillConvexPoly(mask, cv2.convexHull(palm), 1)
        img = bg.copy()
        img[mask > 0] = (205, 150, 120)  # RGB skin
        img_path = folder / name / f"frame_{t:05d}.png"
        mask_path = folder / name / f"mask_{t:05d}.png"
        cv2.imwrite(str(img_path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(mask_path), mask * 255)
        video.frames.append(FrameRecord(image_path=img_path, kp2d=kp2d, K=K, kp3d=kp3d[t], mask_path=mask_path,
                                        index=t))
    return video


@pytest.fixture
def tiny_video(tmp_path: Path) -> VideoRecord:
    return draw_video(tmp_path / "videos")


@pytest.fixture
def draw():
    """The :func:`draw_video` factory, for tests that need several videos."""
    return draw_video
