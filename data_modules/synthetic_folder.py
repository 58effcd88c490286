"""A generated synthetic dataset folder: its parameters, writing it once, and reading it back as records.

Each (domain, split, parameters) is written once to ``<root>/<domain>-<split>-<params hash>/`` laid out like a
real dataset (``videos/<name>/frame_<t:05d>.png``, ``masks/<name>/frame_<t:05d>.png``, ``annotations.npz``,
``manifest.json``). It is built in a temporary folder and renamed into place when complete; a changed parameter
gives a new folder. Generation is a pure function of the seed and the parameters (:mod:`data_modules.synthetic_video`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from tassn.hand.skeleton import NUM_JOINTS
from tassn.hand.template import HandTemplate, load_template

from .integrity import damaged_files, digest_files
from .records import FrameRecord, VideoRecord
from .synthetic_video import domain_style, render_video, video_rng

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
#: default videos per split (CPU sizes: the whole 4-stage training fits in ~30 min on 2 cores).
DEFAULT_VIDEOS = {"train": 48, "val": 8, "test": 16}
DEFAULT_FRAMES = 32
DEFAULT_IMAGE_SIZE = 128


def generation_params(
    domain: str, split: str, num_videos: int, frames_per_video: int, image_size: int, seed: int,
    supersample: int, template: HandTemplate,
) -> dict:
    """Everything a generated folder depends on (its hash names the folder)."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLIT_NAMES}")
    for name, value, low in (("num_videos", num_videos, 1), ("frames_per_video", frames_per_video, 1),
                             ("image_size", image_size, 16), ("supersample", supersample, 1)):
        if int(value) < low:
            raise ValueError(f"{name} must be ≥ {low}, got {value}")
    return {
        "generator_version": GENERATOR_VERSION,
        "domain": domain,
        "split": split,
        "num_videos": int(num_videos),
        "frames_per_video": int(frames_per_video),
        "image_size": int(image_size),
        "seed": int(seed),
        "supersample": int(supersample),
        "template": f"{template.name}:{template.hash()}",
        "style": asdict(domain_style(domain)),
    }


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]


def dataset_folder(root: Path | str, params: dict) -> Path:
    """``<root>/<domain>-<split>-<hash>`` for these parameters (it may not exist yet)."""
    return Path(root) / f"{params['domain']}-{params['split']}-{params_hash(params)}"


def is_complete(folder: Path) -> bool:
    """A folder is trusted only with a readable manifest marked complete and its annotation file."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(manifest.get("complete")) and (folder / "annotations.npz").is_file()


def damaged(folder: Path) -> list[Path]:
    """Files of a complete folder that are missing or differ from the checksums its manifest recorded.

    Folders written before checksums were recorded are only checked for completeness.
    """
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    return damaged_files(folder, manifest.get("files", {}))


def describe_paths(paths: list[Path]) -> str:
    """The first three paths and how many more: enough for an error message."""
    return ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def write_png(path: Path, image: np.ndarray) -> None:
    """An RGB or grey image as a PNG; a failed write is an error naming the file."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


def generate(
    root: Path | str,
    domain: str,
    split: str,
    num_videos: int = DEFAULT_VIDEOS["train"],
    frames_per_video: int = DEFAULT_FRAMES,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    supersample: int = 2,
    template: HandTemplate | str = "procedural",
    progress: bool = True,
) -> Path:
    """Generate one (domain, split) of synthetic videos under ``root`` unless it exists; returns its folder.

    Deterministic: the same arguments give the same frames and labels. The folder appears only when complete.
    """
    tmpl = load_template(template) if isinstance(template, str) else template
    params = generation_params(domain, split, num_videos, frames_per_video, image_size, seed, supersample, tmpl)
    folder = dataset_folder(root, params)
    if is_complete(folder):
        if not (bad := damaged(folder)):
            return folder
        log.warning("synthetic dataset folder %s has %d truncated, changed or missing file(s) (%s); generating it "
                    "again", folder, len(bad), describe_paths(bad))
        shutil.rmtree(folder)
    if folder.exists():
        log.warning("removing incomplete synthetic dataset folder %s (no complete manifest)", folder)
        shutil.rmtree(folder)
    style = domain_style(domain)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        names, kp2d, kp3d, mesh3d, Ks = [], [], [], [], []
        angles, rots, trans, sizes, fingers = [], [], [], [], []
        for i in tqdm(range(num_videos), desc=f"synthetic {domain}/{split}", unit="video", disable=not progress):
            name = f"{domain}_{split}_{i:03d}"
            video = render_video(tmpl, style, video_rng(seed, domain, split, i), frames_per_video, image_size,
                                 supersample)
            for sub, data in (("videos", video.frames), ("masks", video.masks * 255)):
                (tmp / sub / name).mkdir(parents=True)
                for t in range(frames_per_video):
                    write_png(tmp / sub / name / f"frame_{t:05d}.png", data[t])
            names.append(name)
            kp2d.append(video.kp2d.astype(np.float32))
            kp3d.append(video.kp3d.astype(np.float32))
            mesh3d.append(video.mesh3d.astype(np.float16))
            Ks.append(video.K)
            angles.append(video.pose.angles.numpy().astype(np.float32))
            rots.append(video.pose.global_rot.numpy().astype(np.float32))
            trans.append(video.pose.trans.numpy().astype(np.float32))
            sizes.append(float(video.shape.size[0]))
            fingers.append(video.shape.finger_lengths[0].numpy().astype(np.float32))
        np.savez(
            tmp / "annotations.npz",
            names=np.asarray(names), kp2d=np.stack(kp2d), kp3d=np.stack(kp3d), mesh3d=np.stack(mesh3d),
            K=np.stack(Ks), angles=np.stack(angles), global_rot=np.stack(rots), trans=np.stack(trans),
            hand_size=np.asarray(sizes, np.float32), finger_lengths=np.stack(fingers), faces=tmpl.faces.numpy(),
        )
        files = digest_files(tmp, (p for p in tmp.rglob("*") if p.is_file()))
        manifest = {"complete": True, "hash": params_hash(params), **params, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not is_complete(folder):  # another process finished the same folder first: keep theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("synthetic %s/%s: %d videos × %d frames written to %s", domain, split, num_videos, frames_per_video,
             folder)
    return folder


def load_folder(folder: Path | str) -> list[VideoRecord]:
    """The videos of one generated folder as records (exact labels; ``mask_path`` = true silhouettes)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"synthetic dataset folder {folder} does not exist; generate it with "
            f"`python -m data_modules.synthetic --root {folder.parent}` (or `make data`), or let "
            f"SyntheticDataModule(generate=True) create it in prepare_data"
        )
    if not is_complete(folder):
        raise FileNotFoundError(
            f"synthetic dataset folder {folder} is incomplete (expected manifest.json marked complete and "
            f"annotations.npz); delete it and generate again"
        )
    manifest = json.loads((folder / "manifest.json").read_text())
    size = int(manifest["image_size"])
    with np.load(folder / "annotations.npz") as ann:
        names, kp2d, kp3d, mesh3d, Ks = (ann[k] for k in ("names", "kp2d", "kp3d", "mesh3d", "K"))
    videos = []
    for n, name in enumerate(names.tolist()):
        video = VideoRecord(name=name, image_size=(size, size))
        for t in range(kp2d.shape[1]):
            video.frames.append(FrameRecord(
                image_path=folder / "videos" / name / f"frame_{t:05d}.png",
                kp2d=kp2d[n, t].astype(np.float64), K=Ks[n], kp3d=kp3d[n, t].astype(np.float64),
                visible=np.ones(NUM_JOINTS, np.float32), mesh3d=mesh3d[n, t],
                mask_path=folder / "masks" / name / f"frame_{t:05d}.png", index=t,
            ))
        videos.append(video)
    missing = [p for v in videos for f in v.frames for p in (f.image_path, f.mask_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"synthetic dataset folder {folder}: {len(missing)} labelled frame(s) lack their image or mask "
            f"({describe_paths(missing)}); delete the folder and generate it again"
        )
    return videos
