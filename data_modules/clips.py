"""From labelled frames to training clips: crop around the hand, mirror left hands, heatmap targets.

Every dataset hands this module :class:`~data_modules.records.VideoRecord` s; everything after that is the same for
all of them, so crop, mirroring and heatmap conventions live here once.

Conventions
-----------
- Pixel coordinates are OpenCV's: the centre of pixel ``(i, j)`` is at ``x = j, y = i``.
- The crop is a similarity transform ``A`` (3×3, scale + translation) from original to crop pixels, built **per
  frame** from that frame's hand centre and scale (the paper: "the center of the hand is located at the center of
  the cropped images, and the cropped image covers the whole hand"). A per-frame box is the standard choice
  (Ge et al., Cai et al.); it also makes a frame's crop, and so its cached GrabCut silhouette, independent of the
  clip it is sampled in. The crop's apparent motion is part of what the flow network sees.
- Hand centre and scale: the centre of the labelled keypoints' bounding box (or of ``FrameRecord.bbox`` when a
  dataset ships one) and ``margin ×`` its longer side.
- The crop camera: ``K_crop = A · K``. 3D stays in the original camera's millimetres (a 2D similarity of the image
  does not move the camera centre), so projecting ``kp3d`` with ``K_crop`` lands on the crop's ``kp2d``.
- Left hands are mirrored before cropping: ``x → W − 1 − x`` in the image, ``X → −X`` in 3D and
  ``K → M · K · diag(−1, 1, 1)`` so that projection still holds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from tassn.heatmaps import HEATMAP_STRIDE, gaussian_heatmaps, to_heatmap_coords

from .distractors import checked_shapes, draw_distractors
from .records import FrameRecord, VideoRecord

log = logging.getLogger(__name__)


class CorruptFrameError(RuntimeError):
    """An image (or mask) of a frame cannot be read: missing, truncated or not an image."""

    def __init__(self, path: Path | str, what: str = "image"):
        super().__init__(f"cannot read {what} {path}: missing, truncated or not an image file")
        self.path = Path(path)


@dataclass(frozen=True)
class CropConfig:
    """How frames are cropped: output side ``size`` (px) and ``margin`` × the hand box's longer side."""

    size: int = 256
    margin: float = 1.5
    min_side: float = 16.0  # never crop a box smaller than this (px of the original image)

    def __post_init__(self) -> None:
        if self.size < HEATMAP_STRIDE or self.size % HEATMAP_STRIDE:
            raise ValueError(f"crop_size must be a positive multiple of {HEATMAP_STRIDE}, got {self.size}")
        if self.margin <= 0:
            raise ValueError(f"crop_margin must be > 0, got {self.margin}")

    def key(self) -> str:
        """A string that changes whenever a crop would change (part of cache keys)."""
        return f"size={self.size},margin={self.margin:.6g},min_side={self.min_side:.6g}"


# ---------------------------------------------------------------------------------------------------------------
# geometry


def hand_box(
    kp2d: np.ndarray, visible: np.ndarray | None = None, bbox: Sequence[float] | None = None
) -> tuple[float, float, float]:
    """Hand centre ``(cx, cy)`` and longer side of the hand box (px) from ``bbox`` or the labelled keypoints."""
    if bbox is not None:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    else:
        pts = np.asarray(kp2d, dtype=np.float64)
        if visible is not None:
            pts = pts[np.asarray(visible) > 0]
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts) == 0:
            raise ValueError("cannot place a crop: the frame has no labelled keypoints and no bbox")
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
    return 0.5 * (x0 + x1), 0.5 * (y0 + y1), max(x1 - x0, y1 - y0)


def crop_matrix(center: tuple[float, float], side: float, size: int) -> np.ndarray:
    """3×3 map from original to crop pixels: the square of ``side`` px around ``center`` fills ``size × size``.

    Pixel-centre convention: the box's edges ``c ± side/2`` map to the crop's edges ``−0.5`` and ``size − 0.5``.
    """
    s = size / side
    c = (size - 1) / 2.0
    return np.array(
        [[s, 0.0, c - s * center[0]], [0.0, s, c - s * center[1]], [0.0, 0.0, 1.0]], dtype=np.float64
    )


def mirror_matrix(width: int) -> np.ndarray:
    """3×3 map of a horizontal flip of an image ``width`` px wide: ``x → width − 1 − x``."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


MIRROR_3D = np.diag([-1.0, 1.0, 1.0])


def transform_points(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3×3 affine ``A`` to ``…×2`` points."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ A[:2, :2].T + A[:2, 2]


def mirror_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics that project mirrored 3D (``X → −X``) onto the mirrored image: ``M · K · diag(−1, 1, 1)``."""
    return mirror_matrix(width) @ np.asarray(K, dtype=np.float64) @ MIRROR_3D


def project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Pinhole projection of ``…×3`` camera points (mm) to ``…×2`` pixels."""
    X = np.asarray(X, dtype=np.float64)
    uvw = X @ np.asarray(K, dtype=np.float64).T
    return uvw[..., :2] / uvw[..., 2:3]


def warp_image(
    image: np.ndarray, A: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """Crop/resize ``image`` with the 3×3 map ``A`` to ``size × size``; zero outside the image.

    When ``A`` shrinks the image the source is low-pass filtered first (Gaussian, σ = ½·√(1/s² − 1)) so small CPU
    crops do not alias.
    """
    s = float(np.sqrt(abs(np.linalg.det(A[:2, :2]))))
    if s < 1.0 and interpolation != cv2.INTER_NEAREST:
        sigma = 0.5 * np.sqrt(1.0 / (s * s) - 1.0)
        if sigma > 0.3:
            image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return cv2.warpAffine(
        image, A[:2].astype(np.float64), (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


# ---------------------------------------------------------------------------------------------------------------
# one frame


def read_image(path: Path | str) -> np.ndarray:
    """RGB uint8 H×W×3; raises :class:`CorruptFrameError` with the path when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.size == 0:
        raise CorruptFrameError(path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path | str) -> np.ndarray:
    """Binary mask uint8 {0, 1} from a grey PNG; raises :class:`CorruptFrameError` with the path."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None or mask.size == 0:
        raise CorruptFrameError(path, "mask")
    return (mask > 127).astype(np.uint8)


@dataclass
class CroppedFrame:
    """A frame after mirroring and cropping; arrays as in the batch contract, without batch/time dims."""

    image: np.ndarray  # S×S×3 uint8 RGB
    kp2d: np.ndarray  # 21×2 crop px
    K: np.ndarray  # 3×3 crop intrinsics
    visible: np.ndarray  # 21
    A: np.ndarray  # 3×3 original (after mirroring) → crop px
    mirrored: bool
    kp3d: np.ndarray | None = None  # 21×3 mm, mirrored when the hand is
    mesh3d: np.ndarray | None = None  # V×3 mm
    true_mask: np.ndarray | None = None  # S×S uint8 {0, 1}


def frame_transform(frame: FrameRecord, mirror: bool, width: int, crop: CropConfig) -> tuple[np.ndarray, np.ndarray]:
    """The map original → crop pixels (mirror included) and the mirrored 2D keypoints, for one frame."""
    kp2d = np.asarray(frame.kp2d, dtype=np.float64)
    bbox = frame.bbox
    M = mirror_matrix(width) if mirror else np.eye(3)
    if mirror:
        kp2d = transform_points(M, kp2d)
        if bbox is not None:
            x0, y0, x1, y1 = bbox
            bbox = (width - 1 - x1, y0, width - 1 - x0, y1)
    cx, cy, side = hand_box(kp2d, frame.visible, bbox)
    side = max(side * crop.margin, crop.min_side)
    return crop_matrix((cx, cy), side, crop.size) @ M, kp2d


def crop_frame(
    frame: FrameRecord,
    mirror: bool,
    crop: CropConfig,
    image: np.ndarray | None = None,
    with_3d: bool = True,
    with_true_mask: bool = False,
) -> CroppedFrame:
    """Read (unless ``image`` RGB is given), mirror and crop one frame with all its labels."""
    if image is None:
        image = read_image(frame.image_path)
    height, width = image.shape[:2]
    A, _ = frame_transform(frame, mirror, width, crop)
    K = np.asarray(frame.K, dtype=np.float64)
    kp2d_crop = transform_points(A, frame.kp2d)
    visible = (
        np.ones(len(kp2d_crop), dtype=np.float32)
        if frame.visible is None
        else (np.asarray(frame.visible) > 0).astype(np.float32)
    )
    out = CroppedFrame(
        image=warp_image(image, A, crop.size),
        kp2d=kp2d_crop,
        K=A @ K @ MIRROR_3D if mirror else A @ K,  # = crop · (M · K · diag(−1, 1, 1)) since A = crop · M
        visible=visible,
        A=A,
        mirrored=mirror,
    )
    if with_3d and frame.kp3d is not None:
        kp3d = np.asarray(frame.kp3d, dtype=np.float64)
        out.kp3d = kp3d @ MIRROR_3D if mirror else kp3d
    if with_3d and frame.mesh3d is not None:
        mesh = np.asarray(frame.mesh3d, dtype=np.float64)
        out.mesh3d = mesh @ MIRROR_3D if mirror else mesh
    if with_true_mask and frame.mask_path is not None:
        mask = read_mask(frame.mask_path) * 255
        out.true_mask = (warp_image(mask, A, crop.size) > 127).astype(np.uint8)
    return out


def jitter_matrix(crop_size: int, shift: tuple[float, float], scale: float, angle: float = 0.0) -> np.ndarray:
    """3×3 map from a crop to the crop of the same frame whose box is moved by ``shift`` (fractions of the box's
    side, x and y), whose side is ``scale`` × the box's and which is turned by ``angle`` (radians, about the moved
    box's centre; positive turns the image content clockwise on screen, y pointing down): the hand lands
    off-centre, larger or smaller, at another roll."""
    c = (crop_size - 1) / 2.0
    k = 1.0 / scale
    cos, sin = k * np.cos(angle), k * np.sin(angle)
    ox, oy = c + shift[0] * crop_size, c + shift[1] * crop_size
    return np.array(
        [[cos, -sin, c - cos * ox + sin * oy], [sin, cos, c - sin * ox - cos * oy], [0.0, 0.0, 1.0]],
        dtype=np.float64,
    )


def colour_jittered(frames: torch.Tensor, strength: float) -> torch.Tensor:
    """``T×3×H×W`` frames in [0, 1] with one clip-wide photometric change drawn from torch's random state: contrast
    and per-channel gains in ``[1 − strength, 1 + strength]``, a brightness offset in ``±strength / 2`` — skin tone,
    white balance and exposure vary from video to video, not from frame to frame."""
    u = torch.rand(5, dtype=torch.float64) * 2.0 - 1.0
    contrast = 1.0 + strength * float(u[0])
    gains = (1.0 + strength * u[1:4]).to(frames.dtype).view(1, 3, 1, 1)
    brightness = 0.5 * strength * float(u[4])
    mean = frames.mean(dim=(1, 2, 3), keepdim=True)
    return ((frames - mean) * contrast + mean + brightness).mul(gains).clamp_(0.0, 1.0)


def jitter_cropped(cropped: CroppedFrame, image: np.ndarray, J: np.ndarray, size: int) -> CroppedFrame:
    """``cropped`` re-cut from the original ``image`` through ``J · A`` (:func:`jitter_matrix`): image, 2D
    keypoints, crop camera and true mask move with the crop; 3D labels are unchanged (the camera is the same)."""
    A = J @ cropped.A
    true_mask = None
    if cropped.true_mask is not None:
        true_mask = (warp_image(cropped.true_mask * 255, J, size, cv2.INTER_NEAREST) > 127).astype(np.uint8)
    return CroppedFrame(
        image=warp_image(image, A, size), kp2d=transform_points(J, cropped.kp2d), K=J @ cropped.K,
        visible=cropped.visible, A=A, mirrored=cropped.mirrored, kp3d=cropped.kp3d, mesh3d=cropped.mesh3d,
        true_mask=true_mask,
    )


# ---------------------------------------------------------------------------------------------------------------
# clips

SilhouetteFn = Callable[[VideoRecord, FrameRecord, CroppedFrame], np.ndarray]


def clip_starts(num_frames: int, clip_len: int, stride: int, frame_step: int = 1) -> list[int]:
    """First frame of every clip of ``clip_len`` frames ``frame_step`` apart, starts ``stride`` apart."""
    if clip_len < 1 or stride < 1 or frame_step < 1:
        raise ValueError(f"clip_len, stride and frame_step must be ≥ 1, got {clip_len}, {stride}, {frame_step}")
    span = (clip_len - 1) * frame_step + 1
    return list(range(0, num_frames - span + 1, stride))


def gapless_starts(indices: Sequence[int], clip_len: int, stride: int, frame_step: int = 1) -> list[int]:
    """:func:`clip_starts` of a video whose frames carry ``indices``, leaving out clips that span a gap.

    A gap is two neighbouring records whose frame numbers are not consecutive (a frame missing from the
    dataset): a clip across it would show the networks a jump as if it were one frame of motion.
    """
    span = (clip_len - 1) * frame_step + 1
    idx = np.asarray(indices, dtype=np.int64)
    breaks = np.concatenate([[0], np.cumsum(np.diff(idx) != 1)]) if len(idx) else idx
    return [s for s in clip_starts(len(idx), clip_len, stride, frame_step) if breaks[s] == breaks[s + span - 1]]


def frame_gaps(video: VideoRecord) -> list[tuple[int, int]]:
    """``(before, after)`` frame numbers of every gap in ``video``."""
    idx = [f.index for f in video.frames]
    return [(a, b) for a, b in zip(idx, idx[1:], strict=False) if b - a != 1]


class ClipDataset(Dataset):
    """Clips of ``clip_len`` consecutive frames of the given videos, served as dicts of the batch contract.

    serve_3d: add ``kp3d`` (and ``mesh3d``/``true_silhouettes`` where the records have them); off for splits whose
    3D must not be seen in training. silhouettes: ``(video, frame, cropped) → S×S`` mask (the GrabCut cache);
    ``None`` leaves the key out.

    A clip with an unreadable frame is skipped: the next readable clip is served in its place and a warning names
    the file and the running count of skipped clips. Frames are never silently replaced by zeros.

    crop_jitter, crop_scale_jitter (0: off, the default): each clip's crops are moved by a shift drawn uniformly in
    ``±crop_jitter`` of the box's side (x and y) and scaled by a factor drawn log-uniformly in
    ``[1/(1 + crop_scale_jitter), 1 + crop_scale_jitter]``, one draw per clip (a tracking crop's error lasts several
    frames), from torch's random state (``seed_everything`` and the loader's worker seeding). Labels and the
    crop camera move with the crop; silhouettes are the cached ones of the centred crop warped the same way.

    crop_rotation (degrees, 0: off): each clip's crops are also turned by an angle drawn uniformly in
    ``±crop_rotation`` about their centre, the 2D labels with them. Only for training on 2D labels: a turned image
    needs its 3D labels turned about the camera ray through the crop, which this pipeline does not do, so serving 3D
    with it is an error. colour_jitter (0: off): one photometric change per clip (:func:`colour_jittered`).

    distractors (0: off): up to this many skin-coloured sticks drawn beside the hand in each clip's crops, the count
    drawn uniformly from 0 to it per clip (:func:`~data_modules.distractors.draw_distractors`): hard negatives for a
    network that reads a stick of the backdrop as a finger. The labels do not move. distractor_shapes: which shapes
    they are, each drawn at random among them (``stick``, ``disc``: a skin-coloured blob beside the hand).
    """

    def __init__(
        self,
        videos: Sequence[VideoRecord],
        clip_len: int,
        clip_stride: int,
        crop: CropConfig,
        heatmap_sigma: float = 2.0,
        frame_step: int = 1,
        serve_3d: bool = False,
        silhouettes: SilhouetteFn | None = None,
        max_skips: int = 32,
        crop_jitter: float = 0.0,
        crop_scale_jitter: float = 0.0,
        crop_rotation: float = 0.0,
        colour_jitter: float = 0.0,
        distractors: int = 0,
        distractor_shapes: Sequence[str] = ("stick",),
    ):
        if not 0.0 <= crop_jitter < 0.5:
            raise ValueError(f"crop_jitter (shift, fraction of the crop side) must be in [0, 0.5), got {crop_jitter}")
        if not 0.0 <= crop_scale_jitter < 1.0:
            raise ValueError(f"crop_scale_jitter must be in [0, 1), got {crop_scale_jitter}")
        if not 0.0 <= crop_rotation <= 180.0:
            raise ValueError(f"crop_rotation (largest roll, degrees) must be in [0, 180], got {crop_rotation}")
        if crop_rotation > 0.0 and serve_3d:
            raise ValueError("crop_rotation turns the 2D labels only: it is for training on 2D labels (stage 1, the "
                             "tracker), not with 3D labels served (serve_3d / the pre-training's serve_3d_in_train)")
        if not 0.0 <= colour_jitter < 1.0:
            raise ValueError(f"colour_jitter must be in [0, 1), got {colour_jitter}")
        if distractors < 0:
            raise ValueError(f"distractors (most sticks drawn per clip) must be ≥ 0, got {distractors}")
        self.crop_jitter = crop_jitter
        self.crop_scale_jitter = crop_scale_jitter
        self.crop_rotation = crop_rotation
        self.colour_jitter = colour_jitter
        self.distractors = distractors
        self.distractor_shapes = checked_shapes(distractor_shapes)
        self.videos = list(videos)
        self.clip_len = clip_len
        self.frame_step = frame_step
        self.crop = crop
        self.heatmap_sigma = heatmap_sigma
        self.serve_3d = serve_3d
        self.silhouettes = silhouettes
        self.max_skips = max_skips
        starts = [gapless_starts([f.index for f in v.frames], clip_len, clip_stride, frame_step)
                  for v in self.videos]
        self.index: list[tuple[int, int]] = [(v, s) for v, ss in enumerate(starts) for s in ss]
        for video in self.videos:
            if gaps := frame_gaps(video):
                log.warning("video %s skips frame numbers at %s: no clip spans these gaps", video.name,
                            ", ".join(f"{a}→{b}" for a, b in gaps[:5]) + (" …" if len(gaps) > 5 else ""))
        short = [v.name for v, ss in zip(self.videos, starts, strict=True) if not ss]
        if short:
            log.warning("%d video(s) without %d consecutive frames (too short, or split by gaps) are unused: %s",
                        len(short), clip_len, ", ".join(short[:5]) + (" …" if len(short) > 5 else ""))
        self.bad: set[int] = set()
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.index)

    def clip_frames(self, i: int) -> tuple[VideoRecord, list[FrameRecord]]:
        v, start = self.index[i]
        video = self.videos[v]
        idx = range(start, start + self.clip_len * self.frame_step, self.frame_step)
        return video, [video.frames[t] for t in idx]

    def __getitem__(self, i: int) -> dict:
        for k in range(min(self.max_skips, len(self))):
            j = (i + k) % len(self)
            if j in self.bad:
                continue
            try:
                return self.load_clip(j)
            except CorruptFrameError as err:
                self.bad.add(j)
                self.skipped += 1
                video, _ = self.clip_frames(j)
                log.warning("skipping clip %d of video %s: %s (%d clip(s) skipped so far)", j, video.name, err,
                            self.skipped)
        raise RuntimeError(f"no readable clip among {self.max_skips} clips from index {i}; see the warnings above")

    def draw_jitter(self) -> np.ndarray | None:
        """One clip's crop jitter (:func:`jitter_matrix`), or None when jitter is off."""
        if self.crop_jitter == 0.0 and self.crop_scale_jitter == 0.0 and self.crop_rotation == 0.0:
            return None
        u = torch.rand(3, dtype=torch.float64).numpy() * 2.0 - 1.0  # uniform in [-1, 1)
        shift = (float(u[0] * self.crop_jitter), float(u[1] * self.crop_jitter))
        scale = float(np.exp(u[2] * np.log1p(self.crop_scale_jitter)))
        if self.crop_rotation == 0.0:  # the draws of jitter without rotation stay what they were
            return jitter_matrix(self.crop.size, shift, scale)
        angle = float(np.deg2rad(self.crop_rotation) * (torch.rand(1, dtype=torch.float64).item() * 2.0 - 1.0))
        return jitter_matrix(self.crop.size, shift, scale, angle)

    def with_distractors(self, cropped: list[CroppedFrame]) -> list[CroppedFrame]:
        """``cropped`` with one clip's draw of :attr:`distractors` sticks, from torch's random state."""
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        count = int(rng.integers(0, self.distractors + 1))
        images = draw_distractors([c.image for c in cropped], [c.kp2d for c in cropped],
                                  [c.visible for c in cropped], count, rng, self.distractor_shapes)
        return [dataclasses.replace(c, image=im) for c, im in zip(cropped, images, strict=True)]

    def load_clip(self, i: int) -> dict:
        """The clip at ``i`` as a dict of tensors ``T×…`` (raises :class:`CorruptFrameError`)."""
        video, frames = self.clip_frames(i)
        with_true = self.serve_3d and all(f.mask_path is not None for f in frames)
        J = self.draw_jitter()
        images = [read_image(f.image_path) for f in frames] if J is not None else [None] * len(frames)
        centred = [crop_frame(f, video.mirror, self.crop, image=im, with_3d=self.serve_3d, with_true_mask=with_true)
                   for f, im in zip(frames, images, strict=True)]
        cropped = centred if J is None else [jitter_cropped(c, im, J, self.crop.size)
                                             for c, im in zip(centred, images, strict=True)]
        if self.distractors > 0:
            cropped = self.with_distractors(cropped)
        kp2d = torch.from_numpy(np.stack([c.kp2d for c in cropped])).float()
        visible = torch.from_numpy(np.stack([c.visible for c in cropped])).float()
        hm_size = self.crop.size // HEATMAP_STRIDE
        frames_t = torch.from_numpy(np.stack([c.image for c in cropped])).permute(0, 3, 1, 2).float() / 255.0
        item: dict = {
            "frames": colour_jittered(frames_t, self.colour_jitter) if self.colour_jitter > 0.0 else frames_t,
            "kp2d": kp2d,
            "heatmaps": gaussian_heatmaps(to_heatmap_coords(kp2d), hm_size, self.heatmap_sigma, visible),
            "K": torch.from_numpy(np.stack([c.K for c in cropped])).float(),
            "visible": visible,
            "video": video.name,
            "frame_index": torch.tensor([f.index for f in frames], dtype=torch.int64),
        }
        if self.silhouettes is not None:
            sil = np.stack([self.silhouettes(video, f, c) for f, c in zip(frames, centred, strict=True)])
            if J is not None:
                sil = np.stack([warp_image(m, J, self.crop.size, cv2.INTER_NEAREST) for m in sil])
            item["silhouettes"] = torch.from_numpy(sil).float()[:, None]
        if self.serve_3d and all(c.kp3d is not None for c in cropped):
            item["kp3d"] = torch.from_numpy(np.stack([c.kp3d for c in cropped])).float()
        if self.serve_3d and all(c.mesh3d is not None for c in cropped):
            item["mesh3d"] = torch.from_numpy(np.stack([c.mesh3d for c in cropped])).float()
        if with_true:
            item["true_silhouettes"] = torch.from_numpy(np.stack([c.true_mask for c in cropped])).float()[:, None]
        return item
