"""Skin-coloured sticks and discs drawn beside the hand: hard negatives for a heatmap network that confuses them with
the hand.

The target domain's backdrops carry thin sticks of every colour; where one is skin-coloured and lies next to the
hand, a heatmap network trained on tight crops puts fingertip joints on it (docs/results.md, "Video prediction").
Such frames are rare in the training crops, so the network seldom pays for the mistake. Drawing a few sticks of the
hand's own colour, finger-wide, ending near the fingers but never crossing the hand, makes every training clip show
the confusion with its answer: the labels do not move, so a heatmap on a stick is penalised by L_h like any other
false peak. Discs stand for the backdrop's skin-coloured blobs, against which the hand's outline is lost and a
tracker reads the hand as larger than it is (docs/results.md, "Video prediction": test_012); like the sticks they
stay clear of the hand (measured for the tracker and not kept there: sticks alone tracked better on 32 validation
videos).
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
DISC_RADIUS_RANGE = (0.15, 0.45)  # relative to the hand's extent: from a knuckle's size to half the hand
#: The shapes :func:`draw_distractors` draws.
SHAPES = ("stick", "disc")


def _point_segment_distances(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances from points ``p`` to segments ``ab`` (all ``N×2``, or ``2`` broadcast against ``N×2``)."""
    ab = b - a
    u = np.clip(np.sum((p - a) * ab, axis=-1) / np.maximum(np.sum(ab * ab, axis=-1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + u[..., None] * ab), axis=-1)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def segment_distances(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest distance (px) between the segment ``pq`` and each segment ``a[i] b[i]`` (``N×2``): 0 where they cross."""
    crossing = ((_cross(q - p, a - p) * _cross(q - p, b - p) < 0)
                & (_cross(b - a, p - a) * _cross(b - a, q - a) < 0))
    ends = np.minimum.reduce([_point_segment_distances(p, a, b), _point_segment_distances(q, a, b),
                              _point_segment_distances(a, p, q), _point_segment_distances(b, p, q)])
    return np.where(crossing, 0.0, ends)


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


def _stick_mask(bones: list[tuple[np.ndarray, np.ndarray]], starts: np.ndarray, ends: np.ndarray, extent: float,
                size: int, rng: np.random.Generator) -> np.ndarray | None:
    """A finger-wide stick's mask, its near end close to a bone of the first frame and clear of every bone; None
    when no clear place is found."""
    for _ in range(TRIES_PER_STICK):
        width = rng.uniform(*WIDTH_RANGE) * extent
        clearance = width / 2.0 + FINGER_HALF_WIDTH * extent
        a, b = bones[rng.integers(len(bones))]
        anchor = a + rng.uniform() * (b - a)
        direction = rng.normal(size=2)
        direction /= max(float(np.linalg.norm(direction)), 1e-9)
        near = anchor + direction * (clearance + rng.uniform(*GAP_RANGE) * extent)
        heading = rng.uniform(-np.pi / 2, np.pi / 2) + np.arctan2(direction[1], direction[0])
        far = near + np.array([np.cos(heading), np.sin(heading)]) * rng.uniform(*LENGTH_RANGE) * extent
        if segment_distances(near, far, starts, ends).min() >= clearance:
            mask = np.zeros((size, size), np.uint8)
            cv2.line(mask, tuple(int(v) for v in np.rint(near)), tuple(int(v) for v in np.rint(far)), 255,
                     max(1, int(round(width))), lineType=cv2.LINE_AA)
            return mask
    return None


def _disc_mask(bones: list[tuple[np.ndarray, np.ndarray]], starts: np.ndarray, ends: np.ndarray, extent: float,
               size: int, rng: np.random.Generator) -> np.ndarray | None:
    """A disc's mask, its rim close to a bone of the first frame and clear of every bone; None when no clear place
    is found."""
    for _ in range(TRIES_PER_STICK):
        radius = rng.uniform(*DISC_RADIUS_RANGE) * extent
        clearance = radius + FINGER_HALF_WIDTH * extent
        a, b = bones[rng.integers(len(bones))]
        direction = rng.normal(size=2)
        direction /= max(float(np.linalg.norm(direction)), 1e-9)
        centre = a + rng.uniform() * (b - a) + direction * (clearance + rng.uniform(*GAP_RANGE) * extent)
        if _point_segment_distances(centre, starts, ends).min() >= clearance:
            mask = np.zeros((size, size), np.uint8)
            cv2.circle(mask, tuple(int(v) for v in np.rint(centre)), max(1, int(round(radius))), 255, -1,
                       lineType=cv2.LINE_AA)
            return mask
    return None


_MASKS = {"stick": _stick_mask, "disc": _disc_mask}


def checked_shapes(shapes: Sequence[str]) -> tuple[str, ...]:
    """``shapes`` as a tuple, or a ValueError naming the known ones when it is empty or holds another name."""
    if not shapes or any(s not in SHAPES for s in shapes):
        raise ValueError(f"distractor_shapes must be among {SHAPES}, got {list(shapes)}")
    return tuple(shapes)


def draw_distractors(
    images: Sequence[np.ndarray], kp2d: Sequence[np.ndarray], visible: Sequence[np.ndarray], count: int,
    rng: np.random.Generator, shapes: Sequence[str] = ("stick",),
) -> list[np.ndarray]:
    """The clip's crops (``S×S×3`` uint8) with ``count`` skin-coloured shapes drawn next to the hand, each one of
    ``shapes`` (:data:`SHAPES`) at random.

    One set of shapes for the whole clip (the backdrop moves slowly), kept clear of the hand's bones in every frame
    of it, so the hand itself is never covered and its labels stay true. A shape that finds no clear place in
    :data:`TRIES_PER_STICK` draws is left out; a clip whose hand shows no visible bone is returned unchanged. With
    sticks only, the random draws are those of the sticks-only version before discs existed.
    """
    shapes = checked_shapes(shapes)
    out = [im.copy() for im in images]
    colour = skin_colour(images[0], kp2d[0], visible[0])
    bones = [_bones(k, v) for k, v in zip(kp2d, visible, strict=True)]
    if colour is None or count <= 0 or not bones[0]:
        return out
    starts = np.stack([p for frame in bones for p, _ in frame])  # every frame's bones, for one test per shape
    ends = np.stack([q for frame in bones for _, q in frame])
    points = np.concatenate([starts, ends])
    extent = float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 1.0))
    size = images[0].shape[0]
    for _ in range(count):
        shape = shapes[0] if len(shapes) == 1 else shapes[int(rng.integers(len(shapes)))]
        mask = _MASKS[shape](bones[0], starts, ends, extent, size, rng)
        if mask is None:
            continue
        tint = (colour * rng.uniform(0.75, 1.25) + rng.normal(scale=8.0, size=3)).astype(np.float32)
        rows, cols = np.nonzero(mask)
        if not len(rows):
            continue
        box = np.s_[rows.min():rows.max() + 1, cols.min():cols.max() + 1]  # blend where the shape is, not everywhere
        alpha = mask[box].astype(np.float32)[..., None] / 255.0
        for im in out:
            grain = rng.normal(scale=6.0, size=alpha.shape[:2] + (3,)).astype(np.float32)
            blended = im[box].astype(np.float32) * (1.0 - alpha) + (tint + grain) * alpha
            im[box] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out
