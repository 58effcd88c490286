"""Synthetic hand videos: the embedded dataset that lets every stage run without downloads.

A posed template hand (:mod:`tassn.hand`) moves smoothly through random keyframes (finger flexion/abduction, thumb,
wrist rotation, translation and depth; cubic splines for angles and position, a rotation spline for orientation)
in front of a perspective camera, and is rendered with a z-buffer (:mod:`data_modules.zbuffer`) and Lambert
shading over a textured background (:mod:`data_modules.scene`). Every frame has exact labels: 2D keypoints (px),
3D keypoints and mesh vertices (mm, camera frame) and the true silhouette.

Two domains come from the same generator with different statistics (:data:`STYLES`):

- ``source``: lighter skin tones, soft studio backdrops, frontal light, slower motion and less finger spread
  variation. Its 3D labels may be used (pre-training). Like the large synthetic set behind Ge et al.'s model that
  it stands in for, it covers every viewpoint, depth, hand size and joint range of the target, so the gap that
  TASSN closes is appearance and pose statistics, not poses the prior has never seen.
- ``target``: darker skin tones, cluttered backdrops, oblique tinted light and sensor noise, a slowly panning
  camera, faster motion. Training may use only its 2D keypoints and GrabCut silhouettes; its 3D is for
  evaluation.

Each (domain, split, parameters) is written once to ``<root>/<domain>-<split>-<params hash>/`` laid out like a
real dataset (``videos/<name>/frame_<t:05d>.png``, ``masks/<name>/frame_<t:05d>.png``, ``annotations.npz``,
``manifest.json``). It is built in a temporary folder and renamed into place when complete; a changed parameter
gives a new folder. Generation is a pure function of the seed and the parameters.

CLI (``make data``)::

    python -m data_modules.synthetic --root data/synthetic [--contact-sheet] [--grabcut-iou]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, RotationSpline
from tqdm.auto import tqdm

from tassn.hand.kinematics import (
    HandPose,
    HandShape,
    PoseRanges,
    clamp_angles,
    forward_kinematics,
    random_pose,
)
from tassn.hand.skeleton import BONES, FINGERS, NUM_JOINTS
from tassn.hand.template import HandTemplate, load_template

from .base import HandClipDataModule
from .clips import CropConfig, crop_frame, project
from .grabcut import GrabCutConfig, grabcut_silhouette, mask_iou
from .integrity import damaged_files, digest_files
from .records import FrameRecord, VideoRecord
from .scene import busy_background, shade, skin_albedo, smooth_background
from .zbuffer import rasterize, vertex_normals

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
Domain = Literal["source", "target"]
DOMAINS: tuple[str, ...] = ("source", "target")
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
#: default videos per split (CPU sizes: the whole 4-stage training fits in ~30 min on 2 cores).
DEFAULT_VIDEOS = {"train": 48, "val": 8, "test": 16}
DEFAULT_FRAMES = 32
DEFAULT_IMAGE_SIZE = 128


@dataclass(frozen=True)
class DomainStyle:
    """The statistics one domain is drawn from (angles in degrees, lengths in mm, sizes as image fractions)."""

    hand_size: tuple[float, float]  # uniform scale (1 = 187 mm wrist → middle tip)
    finger_jitter: float  # std of per-finger length factors
    angle_scale: float  # fraction of the anatomical joint ranges sampled at keyframes
    keyframe_gap: tuple[int, int]  # frames between keyframes (smaller = faster motion)
    yaw: float  # per-video orientation about the vertical axis (0 = palm to camera), ± degrees
    pitch: float
    roll: float  # in-plane rotation, ± degrees
    wobble: float  # extra random rotation per keyframe, degrees
    depth: tuple[float, float]  # hand-centre depth range (mm)
    spread: float  # hand centre within ± spread × image size of the image centre
    focal: tuple[float, float]  # focal length / image size
    skin_tones: tuple[tuple[float, float, float], ...]  # RGB anchors, mixed pairwise
    skin_variation: float
    background: Literal["smooth", "busy"]
    light_angle: tuple[float, float]  # light direction's angle from the viewing axis
    ambient: tuple[float, float]
    light_tint: float
    light_intensity: tuple[float, float]
    noise_std: tuple[float, float]  # sensor noise, grey levels
    camera_pan: float  # background drift over a video, fraction of image size


STYLES: dict[str, DomainStyle] = {
    "source": DomainStyle(
        hand_size=(0.92, 1.12), finger_jitter=0.03, angle_scale=0.9, keyframe_gap=(8, 12),
        yaw=100.0, pitch=35.0, roll=50.0, wobble=25.0, depth=(340.0, 600.0), spread=0.15, focal=(1.05, 1.25),
        skin_tones=((0.93, 0.77, 0.66), (0.87, 0.68, 0.56), (0.80, 0.60, 0.48)), skin_variation=0.05,
        background="smooth", light_angle=(0.0, 35.0), ambient=(0.35, 0.55), light_tint=0.0,
        light_intensity=(0.95, 1.15), noise_std=(0.0, 1.0), camera_pan=0.0,
    ),
    "target": DomainStyle(
        hand_size=(0.95, 1.12), finger_jitter=0.05, angle_scale=0.85, keyframe_gap=(6, 9),
        yaw=100.0, pitch=35.0, roll=50.0, wobble=25.0, depth=(340.0, 600.0), spread=0.15, focal=(1.05, 1.25),
        skin_tones=((0.74, 0.53, 0.39), (0.58, 0.40, 0.28), (0.42, 0.28, 0.20), (0.66, 0.45, 0.36)),
        skin_variation=0.08, background="busy", light_angle=(25.0, 65.0), ambient=(0.18, 0.40), light_tint=0.25,
        light_intensity=(0.85, 1.3), noise_std=(2.0, 5.0), camera_pan=0.05,
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# parameters, folders and the manifest


def _style(domain: str) -> DomainStyle:
    if domain not in STYLES:
        raise ValueError(f"unknown synthetic domain {domain!r}; expected one of {DOMAINS}")
    return STYLES[domain]


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
        "style": asdict(_style(domain)),
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


def _describe(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


# ---------------------------------------------------------------------------------------------------------------
# motion


def _rng(seed: int, domain: str, split: str, index: int) -> np.random.Generator:
    entropy = [int(seed), zlib.crc32(domain.encode()), zlib.crc32(split.encode()), int(index)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def intrinsics(rng: np.random.Generator, style: DomainStyle, size: int) -> np.ndarray:
    f = rng.uniform(*style.focal) * size
    c = (size - 1) / 2.0
    return np.array([[f, 0.0, c + rng.uniform(-1, 1)], [0.0, f * rng.uniform(0.99, 1.01), c + rng.uniform(-1, 1)],
                     [0.0, 0.0, 1.0]])


def sample_motion(
    rng: np.random.Generator, style: DomainStyle, frames: int, K: np.ndarray, size: int
) -> tuple[HandPose, HandShape]:
    """A smooth ``frames``-long pose sequence: random keyframes joined by splines, hand centre kept in view."""
    times = [0]
    while times[-1] < frames - 1:
        times.append(times[-1] + int(rng.integers(style.keyframe_gap[0], style.keyframe_gap[1] + 1)))
    times_arr = np.asarray(times, dtype=np.float64)
    n = len(times)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    keys = random_pose(n, gen, PoseRanges(angle_scale=style.angle_scale, max_global_rot=np.radians(style.wobble)))
    base = Rotation.from_euler(
        "zxy", [rng.uniform(-style.roll, style.roll), rng.uniform(-style.pitch, style.pitch),
                rng.uniform(-style.yaw, style.yaw)], degrees=True)
    key_rots = Rotation.from_rotvec(keys.global_rot.double().numpy()) * base
    t = np.arange(frames, dtype=np.float64)
    angles = CubicSpline(times_arr, keys.angles.double().numpy().reshape(n, -1), bc_type="natural")(t)
    angles_t = clamp_angles(torch.from_numpy(angles.reshape(frames, -1, 3)))
    rotvec = torch.from_numpy(RotationSpline(times_arr, key_rots)(t).as_rotvec())

    size_scale = rng.uniform(*style.hand_size)
    fingers = np.clip(1.0 + style.finger_jitter * rng.normal(size=len(FINGERS)), 0.85, 1.15)
    shape = HandShape(torch.tensor([size_scale], dtype=torch.float64), torch.tensor(fingers[None], dtype=torch.float64))

    # hand-centre path in (u, v, depth), then the wrist translation that puts the joints' mean there
    centre = (size - 1) / 2.0 + style.spread * size * rng.uniform(-1, 1, (n, 2))
    depth = rng.uniform(*style.depth, (n, 1))
    uvz = CubicSpline(times_arr, np.concatenate([centre, depth], 1), bc_type="natural")(t)
    uvz[:, 2] = np.clip(uvz[:, 2], style.depth[0] * 0.9, style.depth[1] * 1.1)
    target = np.stack([(uvz[:, 0] - K[0, 2]) * uvz[:, 2] / K[0, 0], (uvz[:, 1] - K[1, 2]) * uvz[:, 2] / K[1, 1],
                       uvz[:, 2]], 1)
    zero = HandPose(angles_t, rotvec, torch.zeros(frames, 3, dtype=torch.float64))
    offset = forward_kinematics(zero, shape)[0].mean(dim=1)
    return HandPose(angles_t, rotvec, torch.from_numpy(target) - offset), shape


# ---------------------------------------------------------------------------------------------------------------
# rendering


@dataclass
class RenderedVideo:
    frames: np.ndarray  # T×H×W×3 uint8 RGB
    masks: np.ndarray  # T×H×W uint8 {0, 1}
    kp2d: np.ndarray  # T×21×2 px
    kp3d: np.ndarray  # T×21×3 mm
    mesh3d: np.ndarray  # T×V×3 mm
    K: np.ndarray  # 3×3
    pose: HandPose
    shape: HandShape


def render_video(
    template: HandTemplate, style: DomainStyle, rng: np.random.Generator, frames: int, size: int, supersample: int = 2
) -> RenderedVideo:
    """Sample and render one video (all randomness from ``rng``)."""
    K = intrinsics(rng, style, size)
    pose, shape = sample_motion(rng, style, frames, K, size)
    with torch.no_grad():
        verts, joints = template.pose(pose, shape)
    verts_np, joints_np = verts.numpy(), joints.numpy()
    faces = template.faces.numpy()

    # appearance, fixed per video
    tones = np.asarray(style.skin_tones)
    i, j = rng.choice(len(tones), 2)
    tone = tones[i] + rng.uniform() * (tones[j] - tones[i])
    rest = template.vertices.double().numpy()
    albedo = skin_albedo(rng, tone, rest, vertex_normals(rest, faces), style.skin_variation)
    elev, azim = np.radians(rng.uniform(*style.light_angle)), rng.uniform(0, 2 * np.pi)
    light_dir = np.array([np.sin(elev) * np.cos(azim), np.sin(elev) * np.sin(azim), np.cos(elev)])
    tint = 1.0 + style.light_tint * rng.uniform(-1, 1, 3)
    light_colour = rng.uniform(*style.light_intensity) * tint / tint.mean()
    ambient = rng.uniform(*style.ambient)
    noise_std = rng.uniform(*style.noise_std)

    ss = supersample
    big = size * ss
    pan = int(np.ceil(style.camera_pan * big))
    canvas = (smooth_background if style.background == "smooth" else busy_background)(rng, big + 2 * pan, big + 2 * pan)
    path = CubicSpline([0, max(frames - 1, 1)], rng.uniform(-pan, pan, (2, 2)))(np.arange(frames)) if pan else None
    K_ss = np.array([[ss, 0, (ss - 1) / 2], [0, ss, (ss - 1) / 2], [0, 0, 1.0]]) @ K
    noise_rng = np.random.default_rng(rng.integers(2**62))

    out_frames = np.empty((frames, size, size, 3), np.uint8)
    out_masks = np.empty((frames, size, size), np.uint8)
    for t in range(frames):
        v = verts_np[t]
        pts = np.concatenate([project(K_ss, v), v[:, 2:3]], 1)
        frags = rasterize(pts, faces, big, big)
        rgb = shade(frags, faces, v, vertex_normals(v, faces), albedo, light_dir, light_colour, ambient)
        if pan:
            ox, oy = (np.round(path[t]) + pan).astype(int)
            bg = canvas[oy : oy + big, ox : ox + big]
        else:
            bg = canvas
        img = np.where(frags.mask[..., None], rgb, bg).astype(np.float32)
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        cover = cv2.resize(frags.mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        img = img * 255.0 + noise_rng.normal(0.0, noise_std, img.shape)
        out_frames[t] = np.clip(np.round(img), 0, 255).astype(np.uint8)
        out_masks[t] = (cover >= 0.5).astype(np.uint8)
    return RenderedVideo(out_frames, out_masks, project(K, joints_np), joints_np, verts_np, K, pose, shape)


# ---------------------------------------------------------------------------------------------------------------
# writing and reading a dataset folder


def _write_png(path: Path, image: np.ndarray) -> None:
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
                    "again", folder, len(bad), _describe(bad))
        shutil.rmtree(folder)
    if folder.exists():
        log.warning("removing incomplete synthetic dataset folder %s (no complete manifest)", folder)
        shutil.rmtree(folder)
    style = _style(domain)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        names, kp2d, kp3d, mesh3d, Ks = [], [], [], [], []
        angles, rots, trans, sizes, fingers = [], [], [], [], []
        for i in tqdm(range(num_videos), desc=f"synthetic {domain}/{split}", unit="video", disable=not progress):
            name = f"{domain}_{split}_{i:03d}"
            video = render_video(tmpl, style, _rng(seed, domain, split, i), frames_per_video, image_size,
                                 supersample)
            for sub, data in (("videos", video.frames), ("masks", video.masks * 255)):
                (tmp / sub / name).mkdir(parents=True)
                for t in range(frames_per_video):
                    _write_png(tmp / sub / name / f"frame_{t:05d}.png", data[t])
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
            f"({_describe(missing)}); delete the folder and generate it again"
        )
    return videos


# ---------------------------------------------------------------------------------------------------------------
# the LightningDataModule


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
    ):
        super().__init__(
            clip_len=clip_len, clip_stride=clip_stride, eval_clip_stride=eval_clip_stride, frame_step=frame_step,
            crop_size=crop_size, crop_margin=crop_margin, heatmap_sigma=heatmap_sigma, batch_size=batch_size,
            num_workers=num_workers, pin_memory=pin_memory, serve_3d_in_train=serve_3d_in_train,
            silhouettes=silhouettes, grabcut_iterations=grabcut_iterations, grabcut_dir=grabcut_dir, seed=seed,
            crop_jitter=crop_jitter, crop_scale_jitter=crop_scale_jitter,
        )
        _style(domain)
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
                    f"missing file(s) ({_describe(bad)}); delete the folder and generate it again (generate=True)"
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
        _write_png(out, sheet)
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
