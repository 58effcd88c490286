"""Synthetic hand videos: the embedded dataset that lets every stage run without downloads.

The videos of the two domains, ``source`` and ``target``, are drawn and rendered by
:mod:`data_modules.synthetic_video` and written once per (domain, split, parameters) into a dataset folder by
:mod:`data_modules.synthetic_folder`; this module serves them as a DataModule and checks them by eye (a contact
sheet) and by GrabCut's accuracy against the true silhouettes.

CLI (``make data``)::

    python -m data_modules.synthetic --root data/synthetic [--contact-sheet] [--grabcut-iou]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from tassn.hand.skeleton import BONES
from tassn.hand.template import HandTemplate, load_template

from .base import HandClipDataModule
from .clips import CropConfig, crop_frame
from .grabcut import GrabCutConfig, grabcut_silhouette, mask_iou
from .records import VideoRecord
from .synthetic_folder import (
    DEFAULT_FRAMES,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_VIDEOS,
    SPLIT_NAMES,
    damaged,
    dataset_folder,
    describe_paths,
    generate,
    generation_params,
    is_complete,
    load_folder,
    write_png,
)
from .synthetic_video import DOMAINS, Domain, domain_style


class SyntheticDataModule(HandClipDataModule):
    """Clips of the synthetic hand videos of one domain; generated on first use in ``prepare_data``.

    Args:
        root: folder holding the generated datasets (one sub-folder per domain, split and parameters).
        domain: ``source`` (3D labels usable) or ``target`` (train on 2D + silhouettes only).
        num_train_videos, num_val_videos, num_test_videos: videos per split (``predict`` serves the test videos).
        frames_per_video, image_size, data_seed, supersample: generator settings (``data_seed`` fixes the data;
            ``seed`` only the shuffle). See :class:`~data_modules.base.HandClipDataModule` for the rest.
        generate: generate missing folders in ``prepare_data``; otherwise a missing folder is an error.
    """

    def __init__(
        self,
        root: str = "data/synthetic",
        domain: Domain = "target",
        num_train_videos: int = DEFAULT_VIDEOS["train"],
        num_val_videos: int = DEFAULT_VIDEOS["val"],
        num_test_videos: int = DEFAULT_VIDEOS["test"],
        frames_per_video: int = DEFAULT_FRAMES,
        image_size: int = DEFAULT_IMAGE_SIZE,
        data_seed: int = 0,
        supersample: int = 2,
        generate: bool = True,
        template: str = "procedural",
        clip_len: int = 4,
        clip_stride: int = 2,
        eval_clip_stride: int | None = None,
        frame_step: int = 1,
        crop_size: int = 64,
        crop_margin: float = 1.4,
        heatmap_sigma: float = 1.0,
        batch_size: int = 8,
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
        super().__init__(
            clip_len=clip_len, clip_stride=clip_stride, eval_clip_stride=eval_clip_stride, frame_step=frame_step,
            crop_size=crop_size, crop_margin=crop_margin, heatmap_sigma=heatmap_sigma, batch_size=batch_size,
            num_workers=num_workers, pin_memory=pin_memory, serve_3d_in_train=serve_3d_in_train,
            silhouettes=silhouettes, grabcut_iterations=grabcut_iterations, grabcut_dir=grabcut_dir, seed=seed,
            crop_jitter=crop_jitter, crop_scale_jitter=crop_scale_jitter, crop_rotation=crop_rotation,
            colour_jitter=colour_jitter, distractors=distractors, distractor_shapes=distractor_shapes,
        )
        domain_style(domain)
        self.root = Path(root)
        self.domain = domain
        self.num_videos = {"train": num_train_videos, "val": num_val_videos, "test": num_test_videos}
        self.frames_per_video = frames_per_video
        self.image_size = image_size
        self.data_seed = data_seed
        self.supersample = supersample
        self.generate = generate
        self.template_name = template
        self._template: HandTemplate | None = None

    @property
    def data_root(self) -> Path:
        return self.root

    @property
    def template(self) -> HandTemplate:
        if self._template is None:
            self._template = load_template(self.template_name)
        return self._template

    def split_folder(self, split: str) -> Path:
        params = generation_params(self.domain, split, self.num_videos[split], self.frames_per_video,
                                   self.image_size, self.data_seed, self.supersample, self.template)
        return dataset_folder(self.root, params)

    def _splits(self) -> list[str]:
        return [s for s in SPLIT_NAMES if self.num_videos[s] > 0]

    def prepare_dataset(self) -> None:
        for split in self._splits():
            if self.generate:
                generate(self.root, self.domain, split, self.num_videos[split], self.frames_per_video,
                         self.image_size, self.data_seed, self.supersample, self.template)
            elif not is_complete(self.split_folder(split)):
                load_folder(self.split_folder(split))  # raises the explanatory error
            elif bad := damaged(self.split_folder(split)):
                raise FileNotFoundError(
                    f"synthetic dataset folder {self.split_folder(split)} has {len(bad)} truncated, changed or "
                    f"missing file(s) ({describe_paths(bad)}); delete the folder and generate it again (generate=True)"
                )

    def label_key(self) -> str:
        return ",".join(self.split_folder(s).name for s in self._splits())

    def load_videos(self, split: str) -> list[VideoRecord]:
        split = "test" if split == "predict" else split
        if self.num_videos.get(split, 0) <= 0:
            return []
        return load_folder(self.split_folder(split))


# ---------------------------------------------------------------------------------------------------------------
# inspection: contact sheet and GrabCut accuracy

_FINGER_COLOURS = ((255, 64, 64), (255, 200, 0), (64, 220, 64), (0, 180, 255), (200, 80, 255))


def draw_labels(image: np.ndarray, kp2d: np.ndarray, mask: np.ndarray | None = None, scale: float = 1.0,
                mask_colour: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """The RGB image with the skeleton (one colour per finger) and the mask's outline drawn on."""
    out = np.ascontiguousarray(image.copy())
    if mask is not None:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, [(c * scale).astype(np.int32) for c in contours], -1, mask_colour, 1)
    pts = np.asarray(kp2d) * scale + (scale - 1) / 2
    for a, b in BONES:
        colour = _FINGER_COLOURS[(b - 1) // 4]
        cv2.line(out, tuple(np.round(pts[a]).astype(int)), tuple(np.round(pts[b]).astype(int)), colour, 1,
                 cv2.LINE_AA)
    for p in pts:
        cv2.circle(out, tuple(np.round(p).astype(int)), 2, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def contact_sheet(folders: Sequence[Path], out: Path | str, columns: int = 6, crop: CropConfig | None = None,
                  tile: int = 128, palette: bool = True) -> Path:
    """A PNG grid: per folder one row of frames with labels and true outlines (green), one row of hand crops
    with the GrabCut silhouette (red) against the true one (green)."""
    crop = crop or CropConfig(size=64, margin=1.4)
    rows = []
    for folder in folders:
        videos = load_folder(folder)
        picks = [(videos[(k * len(videos)) // columns], (k * 7) % len(videos[0])) for k in range(columns)]
        frames_row, crops_row = [], []
        for video, t in picks:
            rec = video.frames[t]
            img = cv2.cvtColor(cv2.imread(str(rec.image_path)), cv2.COLOR_BGR2RGB)
            mask = (cv2.imread(str(rec.mask_path), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8)
            s = tile / img.shape[0]
            big = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_NEAREST if s >= 1 else cv2.INTER_AREA)
            big = draw_labels(big, rec.kp2d, mask, scale=s)
            cv2.putText(big, video.name.split("_")[0], (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                        cv2.LINE_AA)
            frames_row.append(big)
            c = crop_frame(rec, False, crop, with_3d=False, with_true_mask=True)
            gc = grabcut_silhouette(c.image, c.kp2d)
            cs = tile / crop.size
            cimg = cv2.resize(c.image, (tile, tile), interpolation=cv2.INTER_NEAREST)
            cimg = draw_labels(cimg, c.kp2d, c.true_mask, scale=cs)
            contours, _ = cv2.findContours(gc, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(cimg, [(k * cs).astype(np.int32) for k in contours], -1, (255, 0, 0), 1)
            cv2.putText(cimg, f"IoU {mask_iou(gc, c.true_mask):.2f}", (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (255, 255, 255), 1, cv2.LINE_AA)
            crops_row.append(cimg)
        rows += [np.concatenate(frames_row, 1), np.concatenate(crops_row, 1)]
    sheet = np.concatenate(rows, 0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if palette:  # a 256-colour PNG is a quarter of the size: fit for committing to the docs
        from PIL import Image  # Pillow comes with matplotlib

        Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    else:
        write_png(out, sheet)
    return out


def grabcut_iou(folder: Path | str, crop: CropConfig | None = None, cfg: GrabCutConfig | None = None,
                max_frames: int | None = None, progress: bool = False) -> np.ndarray:
    """IoU of the GrabCut silhouette against the true one for every frame of a generated folder (crop-sized)."""
    crop = crop or CropConfig(size=64, margin=1.4)
    frames = [f for v in load_folder(folder) for f in v.frames][:max_frames]
    ious = []
    for rec in tqdm(frames, desc="GrabCut IoU", disable=not progress):
        c = crop_frame(rec, False, crop, with_3d=False, with_true_mask=True)
        ious.append(mask_iou(grabcut_silhouette(c.image, c.kp2d, c.visible, cfg), c.true_mask))
    return np.asarray(ious)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_modules.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="data/synthetic", help="where the datasets are written")
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS)
    parser.add_argument("--splits", nargs="+", default=list(SPLIT_NAMES), choices=SPLIT_NAMES)
    parser.add_argument("--num-train-videos", type=int, default=DEFAULT_VIDEOS["train"])
    parser.add_argument("--num-val-videos", type=int, default=DEFAULT_VIDEOS["val"])
    parser.add_argument("--num-test-videos", type=int, default=DEFAULT_VIDEOS["test"])
    parser.add_argument("--frames-per-video", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    parser.add_argument("--supersample", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="data seed (SyntheticDataModule.data_seed)")
    parser.add_argument("--template", default="procedural")
    parser.add_argument("--contact-sheet", nargs="?", const="docs/images/synthetic_contact_sheet.png", default=None,
                        metavar="PNG", help="also write a contact sheet (default path %(const)s)")
    parser.add_argument("--grabcut-iou", action="store_true",
                        help="print the GrabCut silhouettes' IoU against the true masks (train split)")
    parser.add_argument("--crop-size", type=int, default=64, help="crop size for --grabcut-iou/--contact-sheet")
    parser.add_argument("--crop-margin", type=float, default=1.4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    template = load_template(args.template)
    counts = {"train": args.num_train_videos, "val": args.num_val_videos, "test": args.num_test_videos}
    folders: dict[tuple[str, str], Path] = {}
    for domain in args.domains:
        for split in args.splits:
            if counts[split] > 0:
                folders[domain, split] = generate(args.root, domain, split, counts[split], args.frames_per_video,
                                                  args.image_size, args.seed, args.supersample, template)
                print(f"{domain}/{split}: {folders[domain, split]}")
    crop = CropConfig(size=args.crop_size, margin=args.crop_margin)
    if args.grabcut_iou:
        for domain in args.domains:
            split = "train" if (domain, "train") in folders else args.splits[0]
            ious = grabcut_iou(folders[domain, split], crop, progress=True)
            print(f"GrabCut IoU {domain}/{split} ({len(ious)} frames, crop {crop.size}px): mean {ious.mean():.3f}, "
                  f"median {np.median(ious):.3f}, 10th percentile {np.percentile(ious, 10):.3f}")
    if args.contact_sheet:
        picks = [folders[d, s] for d in args.domains for s in ("train",) if (d, s) in folders]
        print("contact sheet:", contact_sheet(picks, args.contact_sheet, crop=crop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
