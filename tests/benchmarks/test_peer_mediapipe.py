"""benchmarks/peer_mediapipe.py scoring, with MediaPipe's output faked from the labels (MediaPipe not needed):
keypoints mapped into the crops, misses counted, 3D in MediaPipe's hand-centred frame aligned, mirrored videos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from data_modules.clips import CropConfig  # noqa: E402
from data_modules.records import FrameRecord, VideoRecord  # noqa: E402

import peer_mediapipe  # noqa: E402


def video(tmp_path: Path, name: str, mirror: bool, frames: int = 3, width: int = 96) -> VideoRecord:
    """A tiny video whose hand is a random 21-joint set at 400 mm, projected with a pinhole camera."""
    rng = np.random.default_rng(len(name) + 7 * mirror)
    K = np.array([[120.0, 0.0, width / 2], [0.0, 120.0, 40.0], [0.0, 0.0, 1.0]])
    records = []
    for t in range(frames):
        kp3d = rng.normal(0.0, 30.0, (21, 3)) + np.array([5.0 * t, 0.0, 400.0])
        uvw = kp3d @ K.T
        path = tmp_path / f"{name}_{t}.png"
        cv2.imwrite(str(path), np.zeros((80, width, 3), np.uint8))
        records.append(FrameRecord(image_path=path, kp2d=uvw[:, :2] / uvw[:, 2:], K=K, kp3d=kp3d))
    return VideoRecord(name=name, frames=records, mirror=mirror, image_size=(width, 80))


def fake_mediapipe(videos: list[VideoRecord], missed: set[int], shift_px: float) -> dict[str, np.ndarray]:
    """What the runner would return: image keypoints of the unmirrored frame (shifted by ``shift_px`` in x) and world
    3D in mm, hand-centred, rotated by 90° about z and scaled 0.8 (another skeleton's scale and axes)."""
    frames = [f for v in videos for f in v.frames]
    image = np.stack([f.kp2d + [shift_px, 0.0] for f in frames])
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    world = np.stack([0.8 * (f.kp3d - f.kp3d.mean(0)) @ rot.T for f in frames])
    found = np.array([i not in missed for i in range(len(frames))])
    image[~found] = np.nan
    world[~found] = np.nan
    return {"tracking/image": image, "tracking/world": world, "tracking/found": found,
            "tracking/seconds": np.full(len(frames), 0.02)}


def test_score_maps_into_crops_counts_misses_and_aligns(tmp_path: Path) -> None:
    videos = [video(tmp_path, "a", mirror=False), video(tmp_path, "b", mirror=True)]
    crop = CropConfig(size=64)
    labels = peer_mediapipe.crop_labels(videos, crop)
    result = peer_mediapipe.score(labels, fake_mediapipe(videos, missed={1}, shift_px=0.0), "tracking")
    assert result["frames"] == 6 and result["found"] == 5 and result["detection_rate"] == pytest.approx(5 / 6)
    assert result["pck2d_5px_found"] == pytest.approx(1.0)  # exact keypoints land exactly in the crop, mirror too
    assert result["epe2d_px_found"] == pytest.approx(0.0, abs=1e-9)
    assert result["pck2d_5px_with_misses"] == pytest.approx(5 / 6)  # a missed frame's keypoints all fail
    assert result["pa_epe_mm"] == pytest.approx(0.0, abs=1e-6)  # rotation + scale + centring undone
    assert result["st_epe_mm"] > 1.0 and result["epe_mm"] > 1.0  # …only by Procrustes
    assert result["ms_per_frame"] == pytest.approx(20.0)
    assert result["accel_mm"] is not None  # video b's three frames chain
    broken = peer_mediapipe.score(labels, fake_mediapipe(videos, missed={1, 4}, shift_px=0.0), "tracking")
    assert broken["accel_mm"] is None  # a missed middle frame breaks each video's only chain


def test_a_known_image_offset_scales_with_the_crop(tmp_path: Path) -> None:
    videos = [video(tmp_path, "a", mirror=False)]
    crop = CropConfig(size=64)
    labels = peer_mediapipe.crop_labels(videos, crop)
    result = peer_mediapipe.score(labels, fake_mediapipe(videos, missed=set(), shift_px=3.0), "tracking")
    scales = np.sqrt(np.abs(np.linalg.det(labels["A"][:, :2, :2])))  # original → crop px
    assert result["epe2d_px_found"] == pytest.approx(3.0 * scales.mean(), rel=1e-9)


def test_frame_count_mismatch_is_refused(tmp_path: Path) -> None:
    videos = [video(tmp_path, "a", mirror=False)]
    labels = peer_mediapipe.crop_labels(videos, CropConfig(size=64))
    raw = fake_mediapipe(videos + [video(tmp_path, "b", mirror=False)], missed=set(), shift_px=0.0)
    with pytest.raises(ValueError, match="frames"):
        peer_mediapipe.score(labels, raw, "tracking")


def test_missing_environment_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="make peer-mediapipe"):
        peer_mediapipe.run_mediapipe(str(tmp_path / "nowhere" / "python"), [], ["tracking"])


def test_table_and_plot(tmp_path: Path) -> None:
    videos = [video(tmp_path, "a", mirror=False)]
    labels = peer_mediapipe.crop_labels(videos, CropConfig(size=64))
    row = {"domain": "tiny", **peer_mediapipe.score(labels, fake_mediapipe(videos, {0}, 0.0), "tracking")}
    text = peer_mediapipe.table([row])
    assert "tiny" in text and "66.7%" in text and "PA-EPE" in text
    peer_mediapipe.plot([row], tmp_path / "peer.png")
    assert cv2.imread(str(tmp_path / "peer.png")) is not None
    json.dumps(row)  # every figure is JSON-serialisable
