"""The LightningDataModule every dataset shares: clips, crops, heatmaps and cached GrabCut silhouettes.

A dataset subclasses :class:`HandClipDataModule` and implements :meth:`~HandClipDataModule.load_videos` (its files →
:class:`~data_modules.records.VideoRecord` s, in canonical joint order, per split) and :attr:`data_root` (where
the GrabCut cache goes, beside the data). It may override :meth:`prepare_dataset` (generate/check files, rank 0
only) and :meth:`label_key` (its label options that change the 2D keypoints, e.g. the palm → wrist rule, so that
cached silhouettes follow them).
"""

from __future__ import annotations

import hashlib
import logging
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .clips import ClipDataset, CorruptFrameError, CropConfig, CroppedFrame, crop_frame, read_image
from .grabcut import GrabCutCache, GrabCutConfig
from .records import FrameRecord, VideoRecord

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "predict")


def deterministic_split(names: Sequence[str], fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split names into (kept, held out) with about ``fraction`` held out, a pure function of names and seed.

    Each name is ranked by a hash of (seed, name), so adding a video does not reshuffle the others.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    ranked = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    n_out = round(fraction * len(ranked))
    held = set(ranked[:n_out])
    return [n for n in names if n not in held], [n for n in names if n in held]


class CachedSilhouettes:
    """``(video, frame, cropped) → mask`` through a :class:`GrabCutCache` (a class, not a closure: picklable)."""

    def __init__(self, cache: GrabCutCache):
        self.cache = cache

    def __call__(self, video: VideoRecord, frame: FrameRecord, cropped: CroppedFrame):
        return self.cache.get(video.name, frame.index, cropped.image, cropped.kp2d, cropped.visible)


class HandClipDataModule(L.LightningDataModule):
    """Serves clips of hand videos as the batches of docs/interfaces.md ("Batches").

    Args:
        clip_len: frames per clip (the paper's n).
        clip_stride: frames between the starts of consecutive training clips.
        eval_clip_stride: the same for val/test/predict (default: ``clip_len``, non-overlapping clips).
        frame_step: take every ``frame_step``-th frame of a video (for slow, high-frame-rate videos).
        crop_size: side of the square crop in px (multiple of 4; heatmaps are ``crop_size / 4``).
        crop_margin: crop side = margin × the longer side of the hand box.
        heatmap_sigma: std of the Gaussian heatmap targets in heatmap pixels.
        batch_size, num_workers, pin_memory: as for ``torch.utils.data.DataLoader``.
        serve_3d_in_train: serve 3D labels in training batches (only for the synthetic source domain's
            pre-training; the target domain's training never reads 3D). Val/test/predict always serve 3D when the
            dataset has it.
        silhouettes: add GrabCut ``silhouettes`` to batches (computed once in ``prepare_data``).
        grabcut_iterations: GrabCut iterations per frame.
        grabcut_dir: the GrabCut cache folder (default ``<data_root>/grabcut``; set it when the data is read-only).
        seed: seed of the training-clip shuffle.
        crop_jitter, crop_scale_jitter: training crops only, off (0) by default: move each training clip's crops by
            up to ``crop_jitter`` × the crop side and scale them by up to ``1 + crop_scale_jitter`` (either way),
            so that the network learns where the hand is in a crop that is not centred on it (see
            :class:`~data_modules.clips.ClipDataset`). Val/test crops stay centred.
        crop_rotation, colour_jitter: training clips only, off by default: turn each clip's crops by up to
            ``crop_rotation`` degrees (2D-label training only) and change its colours once per clip
            (:class:`~data_modules.clips.ClipDataset`).
        distractors: training clips only, off (0) by default: up to this many skin-coloured sticks drawn beside the
            hand per clip, hard negatives for a network that reads the backdrop's sticks as fingers
            (:mod:`data_modules.distractors`; the tracker's training, ``experiments/tracker.yaml``);
            ``distractor_shapes`` says which shapes (``stick``, ``disc``), each drawn at random among them.
    """

    def __init__(
        self,
        clip_len: int = 8,
        clip_stride: int = 4,
        eval_clip_stride: int | None = None,
        frame_step: int = 1,
        crop_size: int = 256,
        crop_margin: float = 1.5,
        heatmap_sigma: float = 2.0,
        batch_size: int = 4,
        num_workers: int = 0,
        pin_memory: bool = False,
        serve_3d_in_train: bool = False,
        silhouettes: bool = True,
        grabcut_iterations: int = 5,
        grabcut_dir: str | None = None,
        seed: int = 0,
        crop_jitter: float = 0.0,
        crop_scale_jitter: float = 0.0,
        crop_rotation: float = 0.0,
        colour_jitter: float = 0.0,
        distractors: int = 0,
        distractor_shapes: Sequence[str] = ("stick",),
    ):
        super().__init__()
        if clip_len < 1 or clip_stride < 1 or frame_step < 1:
            raise ValueError(
                f"clip_len, clip_stride and frame_step must be ≥ 1, got {clip_len}, {clip_stride}, {frame_step}"
            )
        if heatmap_sigma <= 0:
            raise ValueError(f"heatmap_sigma must be > 0, got {heatmap_sigma}")
        self.clip_len = clip_len
        self.clip_stride = clip_stride
        self.eval_clip_stride = eval_clip_stride or clip_len
        self.frame_step = frame_step
        self.crop = CropConfig(size=crop_size, margin=crop_margin)
        self.heatmap_sigma = heatmap_sigma
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.serve_3d_in_train = serve_3d_in_train
        self.use_silhouettes = silhouettes
        self.grabcut_cfg = GrabCutConfig(iterations=grabcut_iterations)
        self.grabcut_dir = grabcut_dir
        self.seed = seed
        self.crop_jitter = crop_jitter
        self.crop_scale_jitter = crop_scale_jitter
        self.crop_rotation = crop_rotation
        self.colour_jitter = colour_jitter
        self.distractors = distractors
        self.distractor_shapes = tuple(distractor_shapes)
        self.datasets: dict[str, ClipDataset] = {}
        # Recorded in every checkpoint (``datamodule_hyper_parameters``): ``tassn predict`` and ``tassn adapt`` crop
        # and draw targets the way the network was trained unless told otherwise.
        self.save_hyperparameters(
            {"crop_size": crop_size, "crop_margin": crop_margin, "heatmap_sigma": heatmap_sigma}, logger=False
        )

    # ----------------------------------------------------------------------------------------- dataset hooks
    @property
    @abstractmethod
    def data_root(self) -> Path:
        """The dataset's folder; the GrabCut cache lives in ``<data_root>/grabcut`` unless ``grabcut_dir``."""
        raise NotImplementedError(f"{type(self).__name__} must define data_root")

    @abstractmethod
    def load_videos(self, split: str) -> list[VideoRecord]:
        """The videos of ``split`` (train/val/test/predict); ``[]`` when the dataset has no such split."""
        raise NotImplementedError(f"{type(self).__name__} must define load_videos")

    def prepare_dataset(self) -> None:
        """Generate or check the dataset's files (called once, on rank 0, before silhouettes)."""

    def label_key(self) -> str:
        """The dataset's options that change its 2D keypoints (part of the GrabCut cache key)."""
        return ""

    # ------------------------------------------------------------------------------------------- silhouettes
    def grabcut_cache(self) -> GrabCutCache:
        root = Path(self.grabcut_dir) if self.grabcut_dir else Path(self.data_root) / "grabcut"
        key = f"{type(self).__name__}|{self.label_key()}|{self.crop.key()}"
        return GrabCutCache(root, key, self.grabcut_cfg)

    def prepare_silhouettes(self, splits: Sequence[str] = ("train", "val", "test")) -> int:
        """Compute (or find cached) the GrabCut silhouette of every frame of ``splits``; returns how many were new.

        Unreadable frames are logged with their path and left out (their clips are skipped when served).
        """
        cache = self.grabcut_cache()
        size = (self.crop.size, self.crop.size)
        unique = {(v.name, f.index): (v, f) for split in splits for v in self.load_videos(split) for f in v.frames}
        frames = list(unique.values())  # a video in several splits (val = test) is computed once
        todo = [(v, f) for v, f in frames if cache.load(v.name, f.index, size) is None]
        bad = 0
        # a bar only for frames that need GrabCut: a run whose cache is complete prints nothing
        for video, frame in tqdm(todo, desc=f"GrabCut silhouettes ({cache.dir.name})", unit="frame",
                                 disable=not todo):
            try:
                cropped = crop_frame(frame, video.mirror, self.crop, image=read_image(frame.image_path),
                                     with_3d=False)
            except CorruptFrameError as err:
                bad += 1
                log.warning("%s", err)
                continue
            cache.compute(video.name, frame.index, cropped.image, cropped.kp2d, cropped.visible)
        if bad:
            log.warning("%d unreadable frame(s) found while computing silhouettes; their clips will be skipped", bad)
        log.info("GrabCut silhouettes: %d computed, %d cached, cache %s", cache.computed,
                 len(frames) - len(todo), cache.dir)
        return cache.computed

    # ------------------------------------------------------------------------------------------- Lightning
    def prepare_data(self) -> None:
        self.prepare_dataset()
        if self.use_silhouettes:
            self.prepare_silhouettes()

    def make_dataset(self, split: str) -> ClipDataset:
        """The :class:`ClipDataset` of ``split`` with this module's settings."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        train = split == "train"
        return ClipDataset(
            self.load_videos(split),
            clip_len=self.clip_len,
            clip_stride=self.clip_stride if train else self.eval_clip_stride,
            crop=self.crop,
            heatmap_sigma=self.heatmap_sigma,
            frame_step=self.frame_step,
            serve_3d=self.serve_3d_in_train if train else True,
            silhouettes=CachedSilhouettes(self.grabcut_cache()) if self.use_silhouettes else None,
            crop_jitter=self.crop_jitter if train else 0.0,
            crop_scale_jitter=self.crop_scale_jitter if train else 0.0,
            crop_rotation=self.crop_rotation if train else 0.0,
            colour_jitter=self.colour_jitter if train else 0.0,
            distractors=self.distractors if train else 0,
            distractor_shapes=self.distractor_shapes,
        )

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
            None: ("train", "val", "test"),
        }[stage]
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self.make_dataset(split)
                log.info("%s: %d clips from %d videos", split, len(self.datasets[split]),
                         len(self.datasets[split].videos))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test", "predict": "predict"}[split])
        ds = self.datasets[split]
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(ds) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)
