from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_modules.clips import crop_matrix, transform_points

from tassn.hand.skeleton import JOINT_NAMES
from tassn.predict.hand_crop import (
    CropBox,
    FixedBoxCrop,
    KeypointFileCrop,
    make_crop_provider,
    parse_bbox,
)
from tassn.predict.tracking import TrackingCrop


def test_crop_box_maps_like_the_training_crop() -> None:
    box = CropBox(50.0, 40.0, 32.0)
    pts = np.array([[34.0, 24.0], [50.0, 40.0], [66.0, 56.0], [41.3, 47.9]])
    in_crop = box.to_crop(pts, 64)
    np.testing.assert_allclose(in_crop, transform_points(crop_matrix((50.0, 40.0), 32.0, 64), pts))
    np.testing.assert_allclose(in_crop[:3], [[-0.5, -0.5], [31.5, 31.5], [63.5, 63.5]])
    np.testing.assert_allclose(box.to_frame(in_crop, 64), pts)
    assert box.corners() == (34.0, 24.0, 66.0, 56.0)


def test_cut_puts_a_frame_pixel_where_to_crop_says() -> None:
    frame = np.zeros((80, 96, 3), np.uint8)
    frame[30, 60] = 255  # a bright dot at x=60, y=30
    box = CropBox(55.5, 35.5, 32.0)
    crop = box.cut(frame, 32)  # scale 1: the dot lands on one pixel
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    np.testing.assert_allclose(box.to_crop(np.array([60.0, 30.0]), 32), [x, y])


def test_from_corners_and_keypoints() -> None:
    assert CropBox.from_corners(10, 20, 30, 60, margin=1.5) == CropBox(20.0, 40.0, 60.0)
    kp = np.array([[10.0, 10.0], [30.0, 20.0], [20.0, 50.0]])
    assert CropBox.from_keypoints(kp, margin=2.0) == CropBox(20.0, 30.0, 80.0)
    assert CropBox.from_keypoints(np.array([[5.0, 5.0]] * 3), min_size=16.0).size == 16.0
    with pytest.raises(ValueError, match="x1 > x0"):
        CropBox.from_corners(10, 10, 5, 20)


def test_tracking_follows_keypoints_with_smoothing_and_bounded_steps() -> None:
    tracker = TrackingCrop(initial=None, margin=1.0, smoothing=0.5, max_scale_step=1.25, floor_fraction=0.1,
                           scale_smoothing=None)  # the side smoothed as the centre
    assert tracker.box(0, 96, 80) == CropBox(47.5, 39.5, 80.0)  # the full frame until a prediction arrives
    kp = np.array([[10.0, 10.0], [30.0, 10.0], [10.0, 30.0], [30.0, 30.0]])
    tracker.update(0, kp, np.ones(4))
    box = tracker.box(1, 96, 80)
    assert box.cx == pytest.approx(0.5 * 47.5 + 0.5 * 20.0)
    assert box.size == pytest.approx(80.0 / 1.25)  # the geometric mean (40) is more than one step away
    tracker.update(1, kp, np.zeros(4))  # a lost frame: the box stays
    assert tracker.box(2, 96, 80) == box
    runaway = TrackingCrop(initial=CropBox(40.0, 40.0, 60.0), margin=3.0, smoothing=0.0, max_scale_step=10.0,
                           scale_smoothing=None)
    runaway.box(0, 96, 80)
    runaway.update(0, np.array([[-500.0, 0.0], [500.0, 10.0], [200.0, 300.0]]), np.ones(3))
    assert runaway.box(1, 96, 80) == CropBox(0.0, 79.0, 96.0)  # centre kept in the frame, side ≤ 96
    fast = TrackingCrop(initial=CropBox(0, 0, 10), margin=1.0, smoothing=0.0, max_scale_step=4.0, scale_smoothing=None)
    fast.box(0, 96, 80)
    fast.update(0, kp, np.ones(4))
    np.testing.assert_allclose(fast.box(1, 96, 80).as_array(), [20.0, 20.0, 20.0])


def test_parse_bbox_takes_corner_width_height() -> None:
    assert parse_bbox("10,20,30,40") == (10.0, 20.0, 40.0, 60.0)
    assert parse_bbox(" 1.5, 2 ,3,4") == (1.5, 2.0, 4.5, 6.0)
    for bad in ("1,2,3", "a,b,c,d", "0,0,-5,10", "0,0,5,0"):
        with pytest.raises(ValueError, match="--bbox"):
            parse_bbox(bad)


def _kp(cx: float, cy: float) -> np.ndarray:
    return np.array([[cx - 5, cy - 5], [cx + 5, cy - 5], [cx, cy + 5]], np.float64)


def test_keypoint_file_npy_fills_missing_frames(tmp_path: Path) -> None:
    kp = np.stack([_kp(20, 20), np.full((3, 2), np.nan), _kp(40, 30)])
    np.save(tmp_path / "kp.npy", kp)
    provider = KeypointFileCrop(tmp_path / "kp.npy", margin=2.0)
    assert provider.box(0, 96, 80) == CropBox(20.0, 20.0, 20.0)
    assert provider.box(1, 96, 80) == CropBox(20.0, 20.0, 20.0)  # nearest known frame (ties: earlier)
    assert provider.box(2, 96, 80) == CropBox(40.0, 30.0, 20.0)
    with pytest.raises(ValueError, match="has 3 frames"):
        provider.box(3, 96, 80)
    np.save(tmp_path / "boxes.npy", np.array([[0.0, 0.0, 10.0, 20.0]]))
    assert KeypointFileCrop(tmp_path / "boxes.npy", margin=1.0).box(0, 9, 9) == CropBox(5.0, 10.0, 20.0)
    np.save(tmp_path / "bad.npy", np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"bad\.npy.*F×K×2"):
        KeypointFileCrop(tmp_path / "bad.npy")


def test_keypoint_file_csv_with_frame_column(tmp_path: Path) -> None:
    names = JOINT_NAMES[:3]
    header = ["frame", "time_s"] + [f"{n}_{c}" for n in names for c in ("x", "y", "conf")]
    lines = [",".join(header)]
    for frame, (cx, cy) in ((0, (20, 20)), (2, (40, 30))):
        values = [f"{v:.1f}" for xy in _kp(cx, cy) for v in (*xy, 0.9)]
        lines.append(",".join([str(frame), "0.0", *values]))
    path = tmp_path / "kp.csv"
    path.write_text("\n".join(lines) + "\n")
    provider = KeypointFileCrop(path, margin=2.0)
    assert [provider.box(i, 96, 80).cx for i in range(3)] == [20.0, 20.0, 40.0]
    (tmp_path / "few.csv").write_text("frame,a_x,a_y\n0,1,2\n")
    with pytest.raises(ValueError, match="column pairs"):
        KeypointFileCrop(tmp_path / "few.csv")


def test_make_crop_provider_choices(tmp_path: Path) -> None:
    np.save(tmp_path / "kp.npy", _kp(20, 20)[None])
    assert isinstance(make_crop_provider(keypoints_file=tmp_path / "kp.npy"), KeypointFileCrop)
    tracker = make_crop_provider(box=(10, 10, 30, 50))
    assert isinstance(tracker, TrackingCrop) and tracker.box(0, 96, 80) == CropBox(20.0, 30.0, 40.0)
    assert isinstance(make_crop_provider("box", box=(10, 10, 30, 50)), FixedBoxCrop)
    with pytest.raises(ValueError, match="needs a box"):
        make_crop_provider("box")
    with pytest.raises(ValueError, match="needs a keypoints_file"):
        make_crop_provider("keypoints")
    with pytest.raises(ValueError, match="crop must be one of"):
        make_crop_provider("detector")
