"""Skin-coloured sticks drawn beside the hand: hard negatives for a heatmap network that confuses them with fingers.

The target domain's backdrops carry thin sticks of every colour; where one is skin-coloured and lies next to the
hand, a heatmap network trained on tight crops puts fingertip joints on it (docs/results.md, "Video prediction").
Such frames are rare in the training crops, so the network seldom pays for the mistake. Drawing a few sticks of the
hand's own colour, finger-wide, ending near the fingers but never crossing the hand, makes every training clip show
the confusion with its answer: the labels do not move, so a heatmap on a stick is penalised by L_h like any other
false peak.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from tassn.hand.skeleton import BONES

# Stick shape relative to the hand's extent (the longer side of its keypoints' box in the crop): a finger is
# about a tenth of it wide, and the backdrop's sticks are long, so only their ends are near the hand.
WIDTH_RANGE = (0.06, 0.14)
LENGTH_RANGE = (0.3, 1.2)
GAP_RANGE = (0.03, 0.3)  # from the stick's near end to the nearest bone, beyond the finger's half-width
FINGER_HALF_WIDTH = 0.06
TRIES_PER_STICK = 20


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    u = float(np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + u * ab)))


def _cross(u: np.ndarray, v: np.ndarray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def _segment_distance(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Smallest distance between the segments ``pq`` and ``ab`` (px): 0 where they cross."""
    d1, d2 = _cross(q - p, a - p), _cross(q - p, b - p)
    d3, d4 = _cross(b - a, p - a), _cross(b - a, q - a)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return 0.0
    return min(_point_segment_distance(p, a, b), _point_segment_distance(q, a, b),
               _point_segment_distance(a, p, q), _point_segment_distance(b, p, q))


def _bones(kp2d: np.ndarray, visible: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(kp2d[a], kp2d[b]) for a, b in BONES if visible[a] > 0 and visible[b] > 0]


def skin_colour(image: np.ndarray, kp2d: np.ndarray, visible: np.ndarray) -> np.ndarray | None:
    """Median RGB (0–255) of the image at the midpoints of the hand's visible bones; None when none is in the image."""
    h, w = image.shape[:2]
    samples = []
    for a, b in _bones(kp2d, visible):
        x, y = np.rint((a + b) / 2.0).astype(int)
        if 0 <= x < w and 0 <= y < h:
            samples.append(image[y, x].astype(np.float64))
    return np.median(np.stack(samples), axis=0) if samples else None


def draw_distractors(
    images: Sequence[np.ndarray], kp2d: Sequence[np.ndarray], visible: Sequence[np.ndarray], count: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """The clip's crops (``S×S×3`` uint8) with ``count`` skin-coloured sticks drawn next to the hand.

    One set of sticks for the whole clip (the backdrop moves slowly), kept clear of the hand's bones in every frame
    of it, so the hand itself is never covered and its labels stay true. A stick that finds no clear place in
    :data:`TRIES_PER_STICK` draws is left out; a clip whose hand shows no visible bone is returned unchanged.
    """
    out = [im.copy() for im in images]
    colour = skin_colour(images[0], kp2d[0], visible[0])
    bones = [_bones(k, v) for k, v in zip(kp2d, visible, strict=True)]
    if colour is None or count <= 0 or not bones[0]:
        return out
    points = np.concatenate([np.stack([p for bone in frame for p in bone]) for frame in bones if frame])
    extent = float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 1.0))
    size = images[0].shape[0]
    for _ in range(count):
        for _ in range(TRIES_PER_STICK):
            width = rng.uniform(*WIDTH_RANGE) * extent
            clearance = width / 2.0 + FINGER_HALF_WIDTH * extent
            a, b = bones[0][rng.integers(len(bones[0]))]
            anchor = a + rng.uniform() * (b - a)
            direction = rng.normal(size=2)
            direction /= max(float(np.linalg.norm(direction)), 1e-9)
            near = anchor + direction * (clearance + rng.uniform(*GAP_RANGE) * extent)
            heading = rng.uniform(-np.pi / 2, np.pi / 2) + np.arctan2(direction[1], direction[0])
            far = near + np.array([np.cos(heading), np.sin(heading)]) * rng.uniform(*LENGTH_RANGE) * extent
            if all(_segment_distance(near, far, p, q) >= clearance for frame in bones for p, q in frame):
                break
        else:
            continue
        tint = colour * rng.uniform(0.75, 1.25) + rng.normal(scale=8.0, size=3)
        thickness = max(1, int(round(width)))
        for im in out:
            stick = np.zeros((size, size), np.uint8)
            cv2.line(stick, tuple(int(v) for v in np.rint(near)), tuple(int(v) for v in np.rint(far)), 255,
                     thickness, lineType=cv2.LINE_AA)
            alpha = stick.astype(np.float32)[..., None] / 255.0
            grain = rng.normal(scale=6.0, size=im.shape).astype(np.float32)
            blended = im.astype(np.float32) * (1.0 - alpha) + (tint.astype(np.float32) + grain) * alpha
            im[...] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out
