"""One procedural hand video of a domain: the domain's statistics, the motion and the rendering.

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

All randomness of a video comes from one generator (:func:`video_rng`), so a video is a pure function of the seed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, RotationSpline

from tassn.hand.kinematics import (
    HandPose,
    HandShape,
    PoseRanges,
    clamp_angles,
    forward_kinematics,
    random_pose,
)
from tassn.hand.skeleton import FINGERS
from tassn.hand.template import HandTemplate

from .clips import project
from .scene import busy_background, shade, skin_albedo, smooth_background
from .zbuffer import rasterize, vertex_normals

Domain = Literal["source", "target"]
DOMAINS: tuple[str, ...] = ("source", "target")


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


def domain_style(domain: str) -> DomainStyle:
    """The statistics of ``domain``; an unknown name is an error naming the known ones."""
    if domain not in STYLES:
        raise ValueError(f"unknown synthetic domain {domain!r}; expected one of {DOMAINS}")
    return STYLES[domain]


def video_rng(seed: int, domain: str, split: str, index: int) -> np.random.Generator:
    """The generator of video ``index`` of a (domain, split): independent of every other video's."""
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
