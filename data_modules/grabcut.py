"""GrabCut hand silhouettes from 2D keypoints (the paper's s̄_t), computed once per frame and cached on disk.

The initial GrabCut labelling comes from the keypoints alone (no 3D): outside the keypoints' box (grown by
``box_margin``) is background, the convex hull of the keypoints grown by ``hull_dilation`` is probable foreground,
thin lines along the bones and the palm polygon are sure foreground, and the rest of the box is probable background.
Sizes are fractions of the hand box's longer side so one setting works at any crop size.

Masks are computed at crop resolution and stored as PNGs under
``<data_root>/grabcut/<key hash>/<video>/frame_<index:05d>.png``; the key covers the crop and GrabCut settings, so a
changed setting writes a new folder. Writes go to a temporary file renamed into place; an unreadable or wrongly
sized entry is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from tassn.hand.skeleton import BONES, joint_index

log = logging.getLogger(__name__)

GRABCUT_VERSION = 1
PALM = tuple(joint_index(n) for n in ("wrist", "thumb_mcp", "index_mcp", "middle_mcp", "ring_mcp", "little_mcp"))


@dataclass(frozen=True)
class GrabCutConfig:
    """GrabCut settings; lengths are fractions of the hand box's longer side."""

    iterations: int = 5
    box_margin: float = 0.12  # background starts this far outside the keypoints' box
    hull_dilation: float = 0.08  # probable foreground: keypoints' convex hull grown by this much
    bone_thickness: float = 0.03  # sure foreground: lines along the bones this thick
    palm_shrink: float = 0.7  # sure foreground: the palm polygon shrunk towards its centre by this factor
    seed: int = 0  # OpenCV's RNG seed for the GMM initialisation (GrabCut is deterministic given it)

    def key(self) -> str:
        return json.dumps({"version": GRABCUT_VERSION, **asdict(self)}, sort_keys=True)


def initial_mask(
    shape: tuple[int, int], kp2d: np.ndarray, visible: np.ndarray | None, cfg: GrabCutConfig
) -> np.ndarray:
    """The GrabCut labelling (``cv2.GC_*`` values, H×W uint8) seeded from the keypoints."""
    h, w = shape
    vis = np.ones(len(kp2d), bool) if visible is None else np.asarray(visible) > 0
    pts = np.asarray(kp2d, dtype=np.float64)
    vis &= np.isfinite(pts).all(axis=1)
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    if vis.sum() < 3:
        return mask
    p = pts[vis]
    (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
    side = max(x1 - x0, y1 - y0, 1.0)
    m = cfg.box_margin * side
    bx0, by0 = int(np.floor(max(x0 - m, 0))), int(np.floor(max(y0 - m, 0)))
    bx1, by1 = int(np.ceil(min(x1 + m, w - 1))), int(np.ceil(min(y1 + m, h - 1)))
    mask[by0 : by1 + 1, bx0 : bx1 + 1] = cv2.GC_PR_BGD

    hull = cv2.convexHull(np.round(p).astype(np.int32))
    fg = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(fg, hull, 1)
    r = max(int(round(cfg.hull_dilation * side)), 1)
    fg = cv2.dilate(fg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    mask[(fg > 0) & (mask == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD

    sure = np.zeros((h, w), np.uint8)
    thick = max(int(round(cfg.bone_thickness * side)), 1)
    for a, b in BONES:
        if vis[a] and vis[b]:
            pa = tuple(int(v) for v in np.round(pts[a]))
            pb = tuple(int(v) for v in np.round(pts[b]))
            cv2.line(sure, pa, pb, 1, thickness=thick)
    palm = [j for j in PALM if vis[j]]
    if len(palm) >= 3:
        pp = pts[palm]
        centre = pp.mean(axis=0)
        shrunk = centre + cfg.palm_shrink * (pp - centre)
        cv2.fillConvexPoly(sure, cv2.convexHull(np.round(shrunk).astype(np.int32)), 1)
    mask[sure > 0] = cv2.GC_FGD
    return mask


def grabcut_silhouette(
    image_rgb: np.ndarray, kp2d: np.ndarray, visible: np.ndarray | None = None, cfg: GrabCutConfig | None = None
) -> np.ndarray:
    """Hand silhouette (H×W uint8 in {0, 1}) of an RGB image by GrabCut seeded from its 2D keypoints.

    Falls back to the seed's foreground (hull + bones) when GrabCut cannot run (e.g. no background pixels).
    """
    cfg = cfg or GrabCutConfig()
    mask = initial_mask(image_rgb.shape[:2], kp2d, visible, cfg)
    seed_fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD))
    has_bg = np.isin(mask, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
    if not seed_fg.any() or not has_bg:
        return seed_fg.astype(np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(cfg.seed)
    try:
        cv2.grabCut(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd, cfg.iterations,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error as err:  # degenerate colour models on tiny or flat crops
        log.debug("GrabCut failed (%s); using the keypoint seed", err)
        return seed_fg.astype(np.uint8)
    return np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two binary masks (1.0 when both are empty)."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _safe_relpath(name: str) -> Path:
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"video name {name!r} cannot be used as a cache folder name")
    return rel


def write_png_atomic(path: Path, image: np.ndarray) -> None:
    """Write a PNG through a temporary file in the same folder and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        if not cv2.imwrite(tmp, image):
            raise OSError(f"cannot write {tmp}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class GrabCutCache:
    """Read-or-compute store of GrabCut silhouettes at crop resolution.

    root: the cache folder (``<data_root>/grabcut``); key: everything that changes a mask (crop and GrabCut
    settings, the dataset's label options). ``computed`` counts masks computed by this object (tests, logs).
    """

    def __init__(self, root: Path | str, key: str, cfg: GrabCutConfig | None = None):
        self.cfg = cfg or GrabCutConfig()
        full_key = f"{key}|{self.cfg.key()}"
        digest = hashlib.sha256(full_key.encode()).hexdigest()[:12]
        self.dir = Path(root) / digest
        self.key = full_key
        self.computed = 0

    def path(self, video: str, index: int) -> Path:
        return self.dir / _safe_relpath(video) / f"frame_{index:05d}.png"

    def _write_key(self) -> None:
        keyfile = self.dir / "key.json"
        if not keyfile.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = keyfile.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"key": self.key}, indent=1))
            os.replace(tmp, keyfile)

    def load(self, video: str, index: int, size: tuple[int, int]) -> np.ndarray | None:
        """The cached mask, or None when it is missing, unreadable or not ``size`` (H, W).

        The load is the check: libpng verifies each chunk's CRC and refuses a file cut short, so a truncated or
        damaged entry reads as None and is recomputed, never used.
        """
        p = self.path(video, index)
        if not p.is_file():
            return None
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if m is None or m.shape != tuple(size):
            log.warning("GrabCut cache entry %s is truncated, corrupted or of the wrong size (expected %s); "
                        "recomputing it", p, tuple(size))
            return None
        return (m > 127).astype(np.uint8)

    def get(
        self, video: str, index: int, image_rgb: np.ndarray, kp2d: np.ndarray, visible: np.ndarray | None
    ) -> np.ndarray:
        """The mask of frame ``index`` of ``video`` for this crop: from the cache, else computed and stored."""
        cached = self.load(video, index, image_rgb.shape[:2])
        return cached if cached is not None else self.compute(video, index, image_rgb, kp2d, visible)

    def compute(
        self, video: str, index: int, image_rgb: np.ndarray, kp2d: np.ndarray, visible: np.ndarray | None
    ) -> np.ndarray:
        """Run GrabCut on frame ``index`` of ``video`` and store the mask (replacing any cached entry)."""
        mask = grabcut_silhouette(image_rgb, kp2d, visible, self.cfg)
        self._write_key()
        write_png_atomic(self.path(video, index), mask * 255)
        self.computed += 1
        return mask
