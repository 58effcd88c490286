"""The tracking crop follows a moving, scaling hand and never collapses (tassn.predict.tracking)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_modules.synthetic import _rng, _style, intrinsics, sample_motion

from tassn.hand.kinematics import forward_kinematics
from tassn.predict.hand_crop import CropBox
from tassn.predict.tracking import TrackingCrop

SIZE = 128
FRAMES = 100


def generated_hand_track(frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """``frames×21×2`` keypoints of a generated target-domain video, panned and zoomed so the hand both crosses
    the frame and changes size (the generator alone keeps it near the centre)."""
    rng = _rng(7, "target", "test", 0)
    style = _style("target")
    K = intrinsics(rng, style, size)
    pose, shape = sample_motion(rng, style, frames, K, size)
    with torch.no_grad():
        joints = forward_kinematics(pose, shape)[0].double().numpy()
    uv = joints[..., :2] / joints[..., 2:] * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]
    t = np.linspace(0.0, 1.0, frames)[:, None, None]
    centre = uv.mean(axis=1, keepdims=True)
    zoom = 1.0 + 0.8 * t  # the hand grows ×1.8 over the video
    path = np.concatenate([0.25 + 0.5 * t, 0.35 + 0.3 * np.sin(np.pi * t)], axis=-1) * (size - 1)
    return (uv - centre) * zoom + path


def extent(kp: np.ndarray) -> float:
    return float((kp.max(axis=0) - kp.min(axis=0)).max())


def test_tracker_follows_a_moving_scaling_hand_through_noise_and_dropped_frames() -> None:
    truth = generated_hand_track()
    assert np.ptp(truth.mean(axis=1)[:, 0]) > 50 and extent(truth[-1]) > 1.6 * extent(truth[0])  # it does move
    rng = np.random.default_rng(0)
    tracker = TrackingCrop(initial=None, margin=1.5, smoothing=0.5)
    dropped = rng.random(FRAMES) < 0.2
    boxes = []
    for t in range(FRAMES):
        boxes.append(tracker.box(t, SIZE, SIZE))
        noisy = truth[t] + rng.normal(0.0, 1.5, truth[t].shape)
        confidence = np.full(21, 0.0 if dropped[t] else 0.8)
        tracker.update(t, noisy, confidence)
    assert dropped.sum() >= 15 and tracker.reinitialised == []  # never three dropped frames in a row here
    for t in range(10, FRAMES):  # after a few frames to settle from the full-frame start
        box, hand = boxes[t], truth[t]
        x0, y0, x1, y1 = box.corners()
        inside = (hand[:, 0] >= x0) & (hand[:, 0] <= x1) & (hand[:, 1] >= y0) & (hand[:, 1] <= y1)
        assert inside.mean() >= 0.95, f"frame {t}: the box {box} lost the hand"
        assert 0.7 < box.size / (1.5 * extent(hand)) < 1.75, f"frame {t}: box {box.size:.1f} px for a hand of " \
            f"{extent(hand):.1f} px"
        middle = (hand.min(axis=0) + hand.max(axis=0)) / 2
        offset = np.hypot(box.cx - middle[0], box.cy - middle[1])
        assert offset < 0.2 * box.size, f"frame {t}: the box centre is {offset:.1f} px off the hand's"


def test_low_confidence_frames_never_shrink_the_box_below_its_floor() -> None:
    tracker = TrackingCrop(initial=None, margin=1.5, smoothing=0.0, floor_fraction=0.25, patience=3)
    assert tracker.box(0, SIZE, SIZE).size == SIZE
    assert tracker.floor == pytest.approx(0.25 * SIZE)
    point = np.array([[60.0, 60.0]]) + np.random.default_rng(1).normal(0.0, 0.5, (21, 2))
    sizes = []
    for t in range(40):  # a collapsing network: keypoints bunched on one spot, confident enough to be used
        tracker.update(t, point, np.full(21, 0.5))
        sizes.append(tracker.box(t + 1, SIZE, SIZE).size)
    assert min(sizes) == pytest.approx(tracker.floor)
    assert all(b >= a / 1.25 - 1e-9 for a, b in zip([float(SIZE), *sizes], sizes, strict=False))  # bounded steps
    for t in range(40, 60):  # then a run of low-confidence frames
        tracker.update(t, point, np.full(21, 0.02))
        box = tracker.box(t + 1, SIZE, SIZE)
        assert box.size >= tracker.floor
    assert tracker.reinitialised[0] == 43  # three lost frames put the first box back
    assert tracker.box(60, SIZE, SIZE) == CropBox.centred_square(SIZE, SIZE)


def test_the_floor_follows_a_user_box() -> None:
    user = CropBox.from_corners(20, 20, 60, 60)
    tracker = TrackingCrop(initial=user, floor_fraction=0.5, patience=1)
    assert tracker.box(0, 200, 100) == user and tracker.floor == pytest.approx(20.0)
    tracker.update(0, np.full((21, 2), 40.0), np.full(21, 0.9))
    assert tracker.box(1, 200, 100).size >= 20.0
    tracker.update(1, np.full((21, 2), 40.0), np.zeros(21))
    assert tracker.box(2, 200, 100) == user and tracker.reinitialised == [2]
