"""The tracking crop follows a moving, scaling hand and never collapses (tassn.predict.tracking)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_modules.synthetic_video import domain_style, intrinsics, sample_motion, video_rng

from tassn.hand import PALM_JOINTS
from tassn.hand.kinematics import forward_kinematics
from tassn.predict.crop_box import CropBox
from tassn.predict.tracking import TrackingCrop

SIZE = 128
FRAMES = 100


def generated_hand_track(frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """``frames×21×2`` keypoints of a generated target-domain video, panned and zoomed so the hand both crosses
    the frame and changes size (the generator alone keeps it near the centre)."""
    rng = video_rng(7, "target", "test", 0)
    style = domain_style("target")
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
    tracker = TrackingCrop(initial=None, margin=1.5, smoothing=0.0, scale_smoothing=0.0, floor_fraction=0.25, patience=3)
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


def test_a_fingertip_read_on_clutter_does_not_stretch_the_box_past_the_palm_cap() -> None:
    hand = generated_hand_track()[0]
    stray = hand.copy()
    stray[8] = hand[0] + 3.0 * (hand[8] - hand[0])  # the index tip read on a stick far beside the hand
    palm = hand[list(PALM_JOINTS)]
    palm_side = 1.5 * float((palm.max(axis=0) - palm.min(axis=0)).max())
    capped, uncapped = TrackingCrop(palm_cap=2.0), TrackingCrop(palm_cap=None)
    for tracker in (capped, uncapped):
        tracker.box(0, SIZE, SIZE)
    confident = np.full(21, 0.8)
    assert uncapped.settle(uncapped.first, stray, confident).size > 2.0 * palm_side
    assert capped.settle(capped.first, stray, confident).size == pytest.approx(2.0 * palm_side)
    # a hand within the cap keeps its keypoints' box; the cap needs every palm joint
    assert capped.settle(capped.first, hand, confident) == uncapped.settle(uncapped.first, hand, confident)
    confident[PALM_JOINTS[2]] = 0.0
    assert capped.settle(capped.first, stray, confident) == uncapped.settle(uncapped.first, stray, confident)
    with pytest.raises(ValueError, match="palm_cap"):
        TrackingCrop(palm_cap=0.5)


def centred_network(truth: np.ndarray, box: CropBox, pull: float) -> np.ndarray:
    """What a network that sees the hand only partly gives on ``box``: the true keypoints (frame px), moved
    ``pull`` of the way towards the crop's centre (0: the truth; 1: the hand always at the centre)."""
    return truth + pull * (np.array([box.cx, box.cy]) - (truth.min(axis=0) + truth.max(axis=0)) / 2)


@pytest.mark.parametrize("pull", [0.0, 0.5])
def test_refinement_refits_each_frames_box_within_the_frame(pull: float) -> None:
    truth = generated_hand_track()
    offsets = {}
    for refine in (0, 2):
        tracker = TrackingCrop(initial=None, margin=1.5, smoothing=0.5, refine=refine)
        previous, errors = None, []
        for t in range(FRAMES):
            box = tracker.box(t, SIZE, SIZE)
            for _ in range(tracker.refine):
                box = tracker.refit(t, centred_network(truth[t], box, pull), np.full(21, 0.8))
            if previous is not None:  # the guarantees hold for the boxes the frames are predicted on
                assert previous.size / 1.25 - 1e-9 <= box.size <= previous.size * 1.25 + 1e-9
            assert box.size >= tracker.floor and 0 <= box.cx <= SIZE - 1 and 0 <= box.cy <= SIZE - 1
            middle = (truth[t].min(axis=0) + truth[t].max(axis=0)) / 2
            errors.append(np.hypot(box.cx - middle[0], box.cy - middle[1]))
            tracker.update(t, centred_network(truth[t], box, pull), np.full(21, 0.8))
            previous = box
        offsets[refine] = np.mean(errors[10:])
    assert offsets[2] < 0.6 * offsets[0], offsets  # the frame's own re-fit takes most of the lag away
    if pull == 0.0:
        assert offsets[2] < 0.5  # a network that finds the hand: the box is the ground-truth crop's


def test_a_lost_frame_is_not_refit() -> None:
    tracker = TrackingCrop(initial=None, refine=1)
    box = tracker.box(0, SIZE, SIZE)
    assert tracker.refit(0, np.full((21, 2), 30.0), np.zeros(21)) is None
    assert tracker.box(0, SIZE, SIZE) == box  # the frame keeps its tracked box
    assert tracker.refit(0, np.full((21, 2), 30.0), np.full(21, 0.9)).size == pytest.approx(SIZE / 1.25)
    with pytest.raises(ValueError, match="refine"):
        TrackingCrop(refine=-1)


def test_extent_calibration_stops_the_shrink_of_a_network_that_draws_small_hands() -> None:
    truth = generated_hand_track()
    ratios = {}
    for scale in (1.0, 0.8):
        tracker = TrackingCrop(initial=None, margin=1.5, smoothing=0.5, extent_scale=scale)
        sizes = []
        for t in range(FRAMES):
            sizes.append(tracker.box(t, SIZE, SIZE).size / (1.5 * extent(truth[t])))
            middle = (truth[t].min(axis=0) + truth[t].max(axis=0)) / 2
            tracker.update(t, middle + 0.8 * (truth[t] - middle), np.full(21, 0.8))  # every hand drawn at 0.8×
        ratios[scale] = np.array(sizes[20:])
    # the hand's extent changes from frame to frame (it turns), so compare the box to the ground-truth crop on average
    assert ratios[1.0].mean() == pytest.approx(0.8, abs=0.05)  # uncalibrated: the network's 0.8 × the hand's crop
    assert ratios[0.8].mean() == pytest.approx(1.0, abs=0.05)  # calibrated: the ground-truth crop's side
    with pytest.raises(ValueError, match="extent_scale"):
        TrackingCrop(extent_scale=0.0)


def test_scale_smoothing_holds_the_side_of_a_network_without_a_scale_signal() -> None:
    """A network that draws the hand at one size in every crop (its keypoints' extent a fixed share of the crop,
    plus noise) gives the side no restoring force: each update is a step of a random walk in log-side. Smoothing
    the side shortens the steps, so after 32 frames the box is nearer its start, and the true hand still gets a box."""
    truth = generated_hand_track()
    drift = {}
    for weight in (None, 0.8):
        ends = []
        for seed in range(20):
            rng = np.random.default_rng(seed)
            tracker = TrackingCrop(initial=CropBox(64.0, 64.0, 60.0), margin=1.5, smoothing=0.5, scale_smoothing=weight)
            for t in range(32):
                box = tracker.box(t, SIZE, SIZE)
                drawn = box.size / 1.5 * (1.0 + rng.normal(0.0, 0.1))  # no scale signal: a share of the crop
                unit = (truth[t] - truth[t].mean(axis=0)) / extent(truth[t])
                tracker.update(t, np.array([box.cx, box.cy]) + drawn * unit, np.full(21, 0.8))
            ends.append(np.log(tracker.box(32, SIZE, SIZE).size / 60.0))
        drift[weight] = float(np.std(ends))
    assert drift[0.8] < 0.6 * drift[None], drift
    with pytest.raises(ValueError, match="scale smoothing"):
        TrackingCrop(scale_smoothing=1.0)
