"""A user's own video as a DataModule for the LightningCLI ``predict`` subcommand.

A user video has no labels, so this module serves only ``predict`` batches: consecutive, non-overlapping clips of
``clip_len`` frames cropped around the hand, streamed from the file (or frame folder) without loading it whole::

    tassn predict --config experiments/stage3.yaml --ckpt_path runs/stage3/checkpoints/best.ckpt \\
        --data data_modules.video.VideoDataModule --data.video in.mp4 --data.box "[120, 80, 360, 320]" \\
        --trainer.callbacks+=tassn.predict.prediction_writer.VideoPredictionWriter \\
        --trainer.callbacks.out_dir runs/predict/in

Crops come from a fixed box or a keypoint file (see :mod:`tassn.predict.hand_crop`). Tracking the hand from the
previous frame's prediction is not offered here — a DataModule cannot see predictions; ``tassn predict --video``
(:func:`tassn.predict.predict_video`) does that, one frame at a time.

A batch holds ``frames B×T×3×S×S`` in [0, 1] (flipped horizontally when ``left_hand``), ``frame_index B×T``,
``valid B×T`` (False for the copies of the last frame that pad the last clip), ``crop_box B×T×3`` (cx, cy, side in
frame pixels), ``mirrored B`` and ``video`` (names).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from tassn.predict.hand_crop import CropBox, CropProvider, make_crop_provider
from tassn.predict.video_io import FrameSource

from .base import HandClipDataModule
from .records import VideoRecord

#: Crop modes a DataModule can serve (no ``track``: it needs the network's predictions).
VIDEO_CROP_MODES: tuple[str, ...] = ("auto", "box", "keypoints", "full")


def video_crop_provider(
    crop: str, box: Sequence[float] | None, keypoints_file: str | None, margin: float
) -> CropProvider:
    """``auto`` → keypoints when a file is given, else the box, else the largest centred square (``full``)."""
    if crop not in VIDEO_CROP_MODES:
        hint = " (tracking needs predictions: use `tassn predict --video`)" if crop == "track" else ""
        raise ValueError(f"crop must be one of {VIDEO_CROP_MODES}{hint}, got {crop!r}")
    if crop == "auto":
        crop = "keypoints" if keypoints_file else "box" if box is not None else "full"
    return make_crop_provider(crop, box=tuple(box) if box is not None else None, keypoints_file=keypoints_file,
                              margin=margin)


class VideoClipDataset(IterableDataset):
    """Non-overlapping clips of a video, in order, as dicts of tensors (see the module docstring).

    With several loader workers each takes every ``num_workers``-th clip (every worker decodes the video once);
    ``frame_index`` tells the clips apart.
    """

    def __init__(
        self,
        source: FrameSource,
        provider: CropProvider,
        clip_len: int,
        crop_size: int,
        left_hand: bool = False,
    ) -> None:
        if clip_len < 1:
            raise ValueError(f"clip_len must be at least 1, got {clip_len}")
        if provider.needs_predictions:
            raise ValueError(f"crop provider {provider.name!r} needs predictions and cannot run in a DataModule")
        self.source = source
        self.provider = provider
        self.clip_len = clip_len
        self.crop_size = crop_size
        self.left_hand = left_hand

    def __len__(self) -> int:
        return -(-len(self.source) // self.clip_len)

    def _clip(self, frames: list[np.ndarray], boxes: list[CropBox], start: int) -> dict:
        n = len(frames)
        pad = self.clip_len - n
        crops = [box.cut(frame, self.crop_size) for frame, box in zip(frames, boxes, strict=True)]
        if self.left_hand:
            crops = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        crops += [crops[-1]] * pad
        boxes = boxes + [boxes[-1]] * pad
        index = list(range(start, start + n)) + [start + n - 1] * pad
        return {
            "frames": torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0,
            "frame_index": torch.tensor(index, dtype=torch.int64),
            "valid": torch.tensor([True] * n + [False] * pad),
            "crop_box": torch.from_numpy(np.stack([b.as_array() for b in boxes])),
            "mirrored": torch.tensor(self.left_hand),
            "video": self.source.path.name,
        }

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        workers, me = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        width, height = self.source.info.width, self.source.info.height
        frames: list[np.ndarray] = []
        boxes: list[CropBox] = []
        start = 0
        for index, frame in enumerate(self.source):
            if (index // self.clip_len) % workers != me:
                continue
            if not frames:
                start = index
            frames.append(frame)
            boxes.append(self.provider.box(index, width, height))
            if len(frames) == self.clip_len:
                yield self._clip(frames, boxes, start)
                frames, boxes = [], []
        if frames:
            yield self._clip(frames, boxes, start)


class VideoDataModule(HandClipDataModule):
    """Serves a user's video (file or frame folder) for ``predict`` in clips of ``clip_len`` frames.

    Args:
        video: a video file OpenCV can read, or a folder of frame images.
        box: hand box ``[x0, y0, x1, y1]`` in frame pixels (used for every frame).
        keypoints_file: per-frame 2D keypoints or boxes (``.npy``/``.npz``/``.csv``; see
            :class:`~tassn.predict.hand_crop.KeypointFileCrop`).
        crop: ``auto`` (keypoints file, else box, else ``full``), ``box``, ``keypoints`` or ``full`` (the largest
            centred square, for a video already framed on the hand).
        left_hand: the video shows a left hand: crops are mirrored for the right-hand network.
        fps: frame rate of a frame folder (default 30) or to override the video's.
        max_frames: serve only the first frames.
        clip_len: frames per clip; the recurrence restarts at every clip, as in training.
        crop_size, crop_margin: as in training (``crop_margin`` scales keypoint boxes; a user box is used as is).
        batch_size, num_workers, pin_memory: as for ``torch.utils.data.DataLoader``.
    """

    def __init__(
        self,
        video: str,
        box: list[float] | None = None,
        keypoints_file: str | None = None,
        crop: str = "auto",
        left_hand: bool = False,
        fps: float | None = None,
        max_frames: int | None = None,
        clip_len: int = 8,
        crop_size: int = 256,
        crop_margin: float = 1.5,
        batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(
            clip_len=clip_len, clip_stride=clip_len, crop_size=crop_size, crop_margin=crop_margin,
            batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory, silhouettes=False,
        )
        self.video = video
        self.box = box
        self.keypoints_file = keypoints_file
        self.crop_mode = crop
        self.left_hand = left_hand
        self.fps = fps
        self.max_frames = max_frames
        self.source: FrameSource | None = None
        self.predict_dataset: VideoClipDataset | None = None
        video_crop_provider(crop, box, keypoints_file, crop_margin)  # bad crop settings fail at configuration

    @property
    def data_root(self) -> Path:
        return Path(self.video).parent

    def load_videos(self, split: str) -> list[VideoRecord]:
        """A user video has no labelled frames: nothing for train/val/test."""
        return []

    def prepare_data(self) -> None:
        """Nothing to generate or cache."""

    def setup(self, stage: str | None = None) -> None:
        if stage not in ("predict", None):
            raise ValueError(
                f"VideoDataModule serves only `predict` (a user video has no labels), not {stage!r}"
            )
        if self.predict_dataset is None:
            self.source = FrameSource(self.video, fps=self.fps, max_frames=self.max_frames)
            provider = video_crop_provider(self.crop_mode, self.box, self.keypoints_file, self.crop.margin)
            self.predict_dataset = VideoClipDataset(
                self.source, provider, self.clip_len, self.crop.size, self.left_hand
            )

    def predict_dataloader(self) -> DataLoader:
        self.setup("predict")
        return DataLoader(
            self.predict_dataset, batch_size=self.batch_size, num_workers=self.num_workers,
            pin_memory=self.pin_memory, persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        raise ValueError("VideoDataModule serves only `predict`: a user video has no labels to train on")

    def val_dataloader(self) -> DataLoader:
        raise ValueError("VideoDataModule serves only `predict`: a user video has no labels to validate on")

    def test_dataloader(self) -> DataLoader:
        raise ValueError("VideoDataModule serves only `predict`: a user video has no labels to test on")
