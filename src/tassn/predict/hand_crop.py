"""Where the hand is in each frame: square crop boxes and the providers that choose them.

The network sees an ``S×S`` crop around the hand, as in training. Four providers are offered, none of which
downloads anything:

- ``box``: one user box ``(x0, y0, x1, y1)`` in frame pixels for every frame (a hand that stays in place);
- ``keypoints``: per-frame 2D keypoints or boxes from a file (``.npy``/``.npz``/``.csv``; e.g. another
  detector's output, or the ``keypoints2d.csv`` of an earlier run); frames the file leaves out reuse the
  nearest frame it has;
- ``track``: the box follows the previous frame's own 2D prediction within bounds and is re-initialised when the
  prediction is lost (:mod:`tassn.predict.tracking`); it starts from the user box, or from the full frame;
- ``full``: the largest centred square of every frame (a video already framed on the hand).

The boxes themselves are :class:`~tassn.predict.crop_box.CropBox` (frame pixels, OpenCV pixel centres).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .crop_box import MIN_KEYPOINTS, CropBox
from .tracking import TrackingCrop

CROP_MODES: tuple[str, ...] = ("auto", "box", "keypoints", "track", "full")

@runtime_checkable
class CropProvider(Protocol):
    """Chooses the crop box of each frame; ``update`` feeds back the frame's prediction (frame pixels)."""

    name: str

    def box(self, index: int, width: int, height: int) -> CropBox: ...

    def update(self, index: int, kp2d: np.ndarray, confidence: np.ndarray) -> None: ...


class FixedBoxCrop:
    """The same user box for every frame."""

    name = "box"

    def __init__(self, box: CropBox) -> None:
        self._box = box

    def box(self, index: int, width: int, height: int) -> CropBox:
        return self._box

    def update(self, index: int, kp2d: np.ndarray, confidence: np.ndarray) -> None:
        """Nothing to learn from predictions."""


class CentredSquareCrop:
    """The largest centred square of every frame."""

    name = "full"

    def box(self, index: int, width: int, height: int) -> CropBox:
        return CropBox.centred_square(width, height)

    def update(self, index: int, kp2d: np.ndarray, confidence: np.ndarray) -> None:
        """Nothing to learn from predictions."""


class KeypointFileCrop:
    """Per-frame boxes from a keypoint (or box) file.

    Accepted files: ``.npy`` holding ``F×K×2`` keypoints, ``F×K×3`` keypoints with a confidence (≤ 0 or NaN =
    missing), or ``F×4`` boxes ``(x0, y0, x1, y1)``; ``.npz`` with one of those under ``kp2d``, ``keypoints`` or
    ``boxes``; ``.csv`` with a header, a ``frame`` column (optional; row order otherwise) and ``<name>_x``,
    ``<name>_y`` (optionally ``<name>_conf``) columns — the ``keypoints2d.csv`` a run writes. Row ``i`` is
    frame ``i``; missing frames take the box of the nearest frame that has one.
    """

    name = "keypoints"

    def __init__(self, path: str | Path, margin: float = 1.5, min_size: float = 16.0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"keypoint file {self.path} does not exist")
        self.margin = margin
        self.min_size = min_size
        self.boxes = self._fill_missing(self._load_boxes())

    def box(self, index: int, width: int, height: int) -> CropBox:
        if index >= len(self.boxes):
            raise ValueError(
                f"keypoint file {self.path} has {len(self.boxes)} frames but the video has a frame {index}; "
                "expected one row per video frame"
            )
        return CropBox(*self.boxes[index])

    def update(self, index: int, kp2d: np.ndarray, confidence: np.ndarray) -> None:
        """Boxes come from the file only."""

    # --- loading -------------------------------------------------------------------------------------------
    def _load_boxes(self) -> np.ndarray:
        """``F×3`` ``(cx, cy, size)`` with NaN rows where the file has no usable data for a frame."""
        suffix = self.path.suffix.lower()
        if suffix == ".npy":
            array = np.load(self.path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(self.path, allow_pickle=False) as data:
                key = next((k for k in ("kp2d", "keypoints", "boxes") if k in data.files), None)
                if key is None:
                    raise ValueError(
                        f"keypoint file {self.path} has arrays {data.files}; expected one named kp2d, keypoints "
                        "or boxes"
                    )
                array = data[key]
        elif suffix == ".csv":
            return self._boxes_from_csv()
        else:
            raise ValueError(f"keypoint file {self.path} must be .npy, .npz or .csv, got {suffix or 'no suffix'}")
        return self._boxes_from_array(np.asarray(array, dtype=np.float64))

    def _boxes_from_array(self, array: np.ndarray) -> np.ndarray:
        if array.ndim == 2 and array.shape[1] == 4:
            boxes = np.full((len(array), 3), np.nan)
            for i, (x0, y0, x1, y1) in enumerate(array):
                if np.isfinite([x0, y0, x1, y1]).all() and x1 > x0 and y1 > y0:
                    boxes[i] = CropBox.from_corners(x0, y0, x1, y1, self.margin).as_array()
            return boxes
        if array.ndim == 3 and array.shape[2] in (2, 3):
            conf = array[..., 2] if array.shape[2] == 3 else np.ones(array.shape[:2])
            return self._boxes_from_keypoints(array[..., :2], conf)
        raise ValueError(
            f"keypoint file {self.path} holds an array of shape {array.shape}; expected F×K×2, F×K×3 or F×4"
        )

    def _boxes_from_keypoints(self, kp: np.ndarray, conf: np.ndarray) -> np.ndarray:
        boxes = np.full((len(kp), 3), np.nan)
        for i in range(len(kp)):
            good = np.isfinite(kp[i]).all(axis=1) & (np.nan_to_num(conf[i], nan=0.0) > 0)
            if good.sum() >= MIN_KEYPOINTS:
                boxes[i] = CropBox.from_keypoints(kp[i][good], self.margin, self.min_size).as_array()
        return boxes

    def _boxes_from_csv(self) -> np.ndarray:
        with self.path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if len(rows) < 2:
            raise ValueError(f"keypoint file {self.path} has no data rows; expected a header and one row per frame")
        header = [h.strip() for h in rows[0]]
        names = [h[:-2] for h in header if h.endswith("_x") and f"{h[:-2]}_y" in header]
        if len(names) < MIN_KEYPOINTS:
            raise ValueError(
                f"keypoint file {self.path} has {len(names)} <name>_x/<name>_y column pairs; expected at least "
                f"{MIN_KEYPOINTS} (e.g. wrist_x, wrist_y, …)"
            )
        col = {h: i for i, h in enumerate(header)}
        try:
            data = np.array([[float(v) if v.strip() else np.nan for v in row] for row in rows[1:] if row],
                            dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"keypoint file {self.path} has a non-numeric value: {err}") from err
        if data.ndim != 2 or data.shape[1] != len(header):
            raise ValueError(f"keypoint file {self.path}: every row must have {len(header)} values")
        kp = np.stack([data[:, [col[f"{n}_x"], col[f"{n}_y"]]] for n in names], axis=1)
        conf = np.stack(
            [data[:, col[f"{n}_conf"]] if f"{n}_conf" in col else np.ones(len(data)) for n in names], axis=1
        )
        boxes_by_row = self._boxes_from_keypoints(kp, conf)
        if "frame" not in col:
            return boxes_by_row
        frames = data[:, col["frame"]]
        if not np.isfinite(frames).all() or (frames < 0).any() or (frames != np.round(frames)).any():
            raise ValueError(f"keypoint file {self.path}: the frame column must hold non-negative integers")
        boxes = np.full((int(frames.max()) + 1, 3), np.nan)
        boxes[frames.astype(np.int64)] = boxes_by_row
        return boxes

    def _fill_missing(self, boxes: np.ndarray) -> np.ndarray:
        valid = np.isfinite(boxes).all(axis=1)
        if not valid.any():
            raise ValueError(
                f"keypoint file {self.path} has no frame with at least {MIN_KEYPOINTS} usable keypoints or a "
                "valid box"
            )
        known = np.flatnonzero(valid)
        nearest = known[np.abs(np.arange(len(boxes))[:, None] - known[None, :]).argmin(axis=1)]
        return boxes[nearest]


def make_crop_provider(
    crop: str = "auto",
    box: tuple[float, float, float, float] | None = None,
    keypoints_file: str | Path | None = None,
    margin: float = 1.5,
    smoothing: float = 0.5,
    track_options: Mapping[str, Any] | None = None,
) -> CropProvider:
    """Build the provider a user asked for.

    ``auto`` picks ``keypoints`` when a file is given and ``track`` otherwise (seeded by ``box`` when given).
    ``margin`` scales keypoint squares (file and tracking); a user box is used as given (made square).
    ``track_options`` are further :class:`~tassn.predict.tracking.TrackingCrop` arguments (bounds, re-initialisation).
    """
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    user_box = CropBox.from_corners(*box) if box is not None else None
    if crop == "auto":
        crop = "keypoints" if keypoints_file is not None else "track"
    if crop == "keypoints":
        if keypoints_file is None:
            raise ValueError("crop='keypoints' needs a keypoints_file")
        return KeypointFileCrop(keypoints_file, margin=margin)
    if crop == "full":
        return CentredSquareCrop()
    if crop == "box":
        if user_box is None:
            raise ValueError("crop='box' needs a box (x0, y0, x1, y1) in frame pixels")
        return FixedBoxCrop(user_box)
    return TrackingCrop(initial=user_box, margin=margin, smoothing=smoothing, **dict(track_options or {}))


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` (top-left corner, width, height in frame pixels) → corners ``(x0, y0, x1, y1)``."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--bbox {text!r}: expected four numbers x,y,w,h (top-left corner, width, height)") from None
    if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
        raise ValueError(f"--bbox {text!r}: expected a finite x,y and a positive width and height")
    return x, y, x + w, y + h
