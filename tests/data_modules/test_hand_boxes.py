"""Whole frames and hand boxes for the first-box detector: letterboxing, augmentation, the data module."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from data_modules.clips import hand_box, transform_points
from data_modules.hand_boxes import HandBoxDataModule, HandBoxDataset, letterbox_matrix
from data_modules.records import FrameRecord, VideoRecord


def wide_video(folder: Path, frames: int = 3) -> VideoRecord:
    """A 160×96 frame with a bright 'hand' square whose keypoints span it."""
    folder.mkdir(parents=True, exist_ok=True)
    video = VideoRecord(name="wide", image_size=(160, 96))
    for t in range(frames):
        image = np.full((96, 160, 3), 30, np.uint8)
        x0, y0 = 100 + 4 * t, 20
        image[y0: y0 + 30, x0: x0 + 24] = (205, 150, 120)
        kp = np.random.default_rng(t).uniform([x0, y0], [x0 + 24, y0 + 30], (21, 2))
        kp[0], kp[1] = (x0, y0), (x0 + 24, y0 + 30)
        path = folder / f"frame_{t:05d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        video.frames.append(FrameRecord(image_path=path, kp2d=kp, K=np.eye(3), index=t))
    return video


def test_a_letterboxed_sample_holds_the_hand_at_its_box(tmp_path: Path) -> None:
    video = wide_video(tmp_path)
    sample = HandBoxDataset([video], input_size=64, margin=1.5)[0]
    image, box = sample["image"].numpy().transpose(1, 2, 0), sample["box"].numpy()
    assert image.shape == (64, 64, 3)
    scale = 64 / 160  # the longer side fills the square
    assert box[2] == pytest.approx(30 * 1.5 * scale, rel=1e-5)
    cx, cy = int(round(box[0])), int(round(box[1]))
    assert image[cy, cx, 0] > 0.7  # the skin-coloured square is at the box's centre
    assert image[2, 32].max() == 0.0  # letterbox padding above a frame wider than tall


def test_the_letterbox_centres_the_frame() -> None:
    A = letterbox_matrix(160, 96, 64)
    corners = transform_points(A, np.array([[-0.5, -0.5], [159.5, 95.5]]))
    assert corners[0, 0] == pytest.approx(-0.5) and corners[1, 0] == pytest.approx(63.5)
    assert corners[0, 1] - (-0.5) == pytest.approx(63.5 - corners[1, 1])  # equal padding above and below


def test_augmented_samples_keep_the_box_on_the_hand_and_change_by_epoch(tmp_path: Path) -> None:
    video = wide_video(tmp_path)
    dataset = HandBoxDataset([video], input_size=64, augment=True, zoom=0.5, shift=0.3, distractors=3, seed=1)
    boxes = []
    for epoch in range(6):
        dataset.epoch = epoch
        sample = dataset[1]
        image, box = sample["image"].numpy().transpose(1, 2, 0), sample["box"].numpy()
        cx, cy = np.clip(np.round(box[:2]).astype(int), 0, 63)
        assert image[cy, cx, 0] > 0.7, f"epoch {epoch}: the box's centre is off the hand"
        assert 0 <= box[0] <= 63 and 0 <= box[1] <= 63
        boxes.append(box)
    assert len({tuple(np.round(b, 3)) for b in boxes}) == 6  # a new draw every epoch
    dataset.epoch = 2
    assert np.array_equal(dataset[1]["box"].numpy(), boxes[2])  # and the same draw for the same epoch


def test_the_box_follows_the_training_crops_rule(tmp_path: Path) -> None:
    video = wide_video(tmp_path)
    frame = video.frames[0]
    cx, cy, extent = hand_box(frame.kp2d)
    box = HandBoxDataset([video], input_size=160, margin=1.4)[0]["box"].numpy()
    A = letterbox_matrix(160, 96, 160)
    assert np.allclose(box[:2], transform_points(A, np.array([cx, cy])), atol=1e-4)
    assert box[2] == pytest.approx(1.4 * extent, rel=1e-5)


class VideosOnly:
    """The part of a HandClipDataModule the box data module reads."""

    def __init__(self, videos: dict[str, list[VideoRecord]]) -> None:
        self.videos = videos
        self.data_root = "somewhere"

        class crop:  # noqa: N801 - the attribute name HandClipDataModule has
            margin = 1.5

        self.crop = crop
        self.prepared = False

    def prepare_dataset(self) -> None:
        self.prepared = True

    def load_videos(self, split: str) -> list[VideoRecord]:
        return self.videos.get(split, [])


def test_the_data_module_batches_train_and_val_frames(tmp_path: Path) -> None:
    source = VideosOnly({"train": [wide_video(tmp_path / "a")], "val": [wide_video(tmp_path / "b", 2)]})
    module = HandBoxDataModule(source, input_size=32, batch_size=2, distractors=2)  # type: ignore[arg-type]
    module.prepare_data()
    module.setup("fit")
    assert source.prepared and module.margin == 1.5
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["box"].shape == (2, 3)
    assert len(module.datasets["val"]) == 2 and not module.datasets["val"].augment
    empty = HandBoxDataModule(VideosOnly({"train": []}), input_size=32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no 'train' videos"):
        empty.setup("fit")
