"""Whole frames with the hand's box: the training data of the first-box hand detector.

Any :class:`~data_modules.base.HandClipDataModule` (synthetic, STB, MHP) supplies the videos; every labelled frame
becomes one sample: the frame letterboxed onto an ``S×S`` square (its longer side fills it, the rest is black, as
at prediction) and the hand's square box in those pixels — the training crop's rule, ``margin`` × the longer side of
the keypoints' box around its centre. Training frames are also zoomed, shifted and flipped at random, and may get
skin-coloured sticks next to the hand (:mod:`data_modules.distractors`), the clutter a detector must not take for a
hand; validation frames are letterboxed only.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .base import HandClipDataModule
from .clips import crop_matrix, hand_box, read_image, transform_points, warp_image
from .distractors import checked_shapes, draw_distractors
from .records import FrameRecord, VideoRecord


def letterbox_matrix(width: int, height: int, size: int) -> np.ndarray:
    """3×3 map from frame pixels to the ``size × size`` letterbox: the frame's longer side fills it, centred."""
    return crop_matrix(((width - 1) / 2.0, (height - 1) / 2.0), float(max(width, height)), size)


class HandBoxDataset(Dataset):
    """One sample per labelled frame: ``image`` ``3×S×S`` float in [0, 1] and ``box`` ``3`` = ``(cx, cy, side)`` in
    its pixels.

    ``augment`` draws, per sample, a zoom of the letterbox by a factor in ``[1 / (1 + zoom), 1 + zoom]`` (log-uniform),
    a shift of its centre by up to ``shift`` × its side that keeps the hand's centre in view, a horizontal flip with
    probability ½ and up to ``distractors`` sticks; ``seed`` and the sample index fix the draw of every epoch's
    sample ``(epoch, index)``.
    """

    def __init__(
        self,
        videos: Sequence[VideoRecord],
        input_size: int = 128,
        margin: float = 1.5,
        augment: bool = False,
        zoom: float = 0.4,
        shift: float = 0.15,
        distractors: int = 0,
        distractor_shapes: Sequence[str] = ("stick",),
        seed: int = 0,
    ) -> None:
        self.frames: list[FrameRecord] = [f for v in videos for f in v.frames]
        self.input_size = input_size
        self.margin = margin
        self.augment = augment
        self.zoom = zoom
        self.shift = shift
        self.distractors = distractors
        self.distractor_shapes = checked_shapes(distractor_shapes)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frame = self.frames[index]
        image = read_image(frame.image_path)
        height, width = image.shape[:2]
        cx, cy, extent = hand_box(frame.kp2d, frame.visible, frame.bbox)
        A = letterbox_matrix(width, height, self.input_size)
        kp = np.asarray(frame.kp2d, dtype=np.float64)
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            A = self._augmentation(A, (cx, cy), rng) @ A
        image = warp_image(image, A, self.input_size)
        centre = transform_points(A, np.array([cx, cy]))
        side = extent * self.margin * float(np.sqrt(abs(np.linalg.det(A[:2, :2]))))
        if self.augment and self.distractors > 0:
            visible = np.ones(len(kp)) if frame.visible is None else np.asarray(frame.visible, dtype=np.float64)
            count = int(rng.integers(self.distractors + 1))
            image = draw_distractors([image], [transform_points(A, kp)], [visible], count, rng,
                                     self.distractor_shapes)[0]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0,
            "box": torch.tensor([centre[0], centre[1], side], dtype=torch.float32),
        }

    def _augmentation(self, A: np.ndarray, centre: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
        """A map of the letterbox onto itself: zoom about a shifted point, then maybe a flip (module doc)."""
        s = self.input_size
        hand = transform_points(A, np.array(centre))
        scale = float(np.exp(rng.uniform(-1.0, 1.0) * np.log1p(self.zoom)))
        view_side = s / scale
        middle = (s - 1) / 2.0
        view = middle + rng.uniform(-1.0, 1.0, size=2) * self.shift * view_side
        # keep the hand's centre inside the zoomed view, a tenth of its side from the edges
        view = np.clip(view, hand - 0.4 * view_side, hand + 0.4 * view_side)
        Z = crop_matrix((float(view[0]), float(view[1])), view_side, s)
        if rng.uniform() < 0.5:
            Z = np.array([[-1.0, 0.0, s - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ Z
        return Z


class HandBoxDataModule(L.LightningDataModule):
    """Frames and hand boxes from ``source``'s train and val videos (module doc).

    Args:
        source: the dataset whose videos are read (its own options — root, split sizes — apply; its crops do not).
        input_size: side of the letterboxed square the detector sees (a multiple of 32).
        margin: box side / the keypoints' longer side (default: ``source``'s crop margin, the tracker's rule).
        zoom, shift, distractors, distractor_shapes: training augmentation (:class:`HandBoxDataset`).
        batch_size, num_workers: as for ``torch.utils.data.DataLoader``.
        seed: seed of the augmentation and the shuffle.
    """

    def __init__(
        self,
        source: HandClipDataModule,
        input_size: int = 128,
        margin: float | None = None,
        zoom: float = 0.4,
        shift: float = 0.15,
        distractors: int = 6,
        distractor_shapes: Sequence[str] = ("stick",),
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.source = source
        self.input_size = input_size
        self.margin = float(source.crop.margin if margin is None else margin)
        self.zoom = zoom
        self.shift = shift
        self.distractors = distractors
        self.distractor_shapes = tuple(distractor_shapes)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.datasets: dict[str, HandBoxDataset] = {}

    def prepare_data(self) -> None:
        self.source.prepare_dataset()

    def make_dataset(self, split: str) -> HandBoxDataset:
        videos = self.source.load_videos(split)
        if not videos:
            raise ValueError(f"{type(self.source).__name__} at {self.source.data_root} has no {split!r} videos to "
                             "train or check the hand detector on")
        train = split == "train"
        return HandBoxDataset(videos, self.input_size, self.margin, augment=train, zoom=self.zoom, shift=self.shift,
                              distractors=self.distractors if train else 0,
                              distractor_shapes=self.distractor_shapes, seed=self.seed)

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val"):
            if split not in self.datasets:
                self.datasets[split] = self.make_dataset(split)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        if self.trainer is not None:
            dataset.epoch = self.trainer.current_epoch
        generator = torch.Generator().manual_seed(self.seed + dataset.epoch)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, generator=generator,
                          num_workers=self.num_workers, drop_last=True, persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.datasets["val"], batch_size=self.batch_size, num_workers=self.num_workers)
