"""A crop that follows the hand from the previous frame's prediction, and cannot collapse.

A tracker fed by its own network closes a loop: a weak or confused prediction bunches its keypoints together, the
next crop shrinks around them, the hand leaves the smaller crop and the keypoints bunch further — on main the crop
went from 128 px to 16 px in 31 frames. These rules break that loop:

- **bounded change**: the side of frame t+1's box is within ``[side_t / max_scale_step, side_t · max_scale_step]``,
  and with a locator network the box the model predicts on (:meth:`TrackingCrop.settle`) stays within the same
  factor of the frame's tracked box;
- **a floor**: the side never goes below ``floor_fraction × min(first side, frame's shorter side)``, so a tiny box is
  impossible whatever the predictions (the first box is the user's ``--bbox`` or the full frame);
- **a smoothed centre and log-side** (exponential, ``smoothing`` = weight of the old box for the centre,
  ``scale_smoothing`` for the side, in updates and re-fits alike; None: ``smoothing`` in updates, none in re-fits),
  so one bad frame moves the box only part way;
- **a palm cap** (optional, off by default): a box measured from keypoints is at most ``palm_cap`` × the palm
  joints' square (the wrist and the fingers' bases, with the same margin), so a fingertip drawn on a finger-like
  shape beside the hand (the target videos' skin-coloured clutter) does not stretch the box to take in more of it;
  it also cuts the box of a wide-open hand (docs/results.md, "Video prediction");
- **re-detection** (with a whole-frame hand detector, ``tassn predict --detector-ckpt``): a first frame's search
  starts from the detector's box instead of a grid of candidates, and on every other frame a tracked box that
  overlaps the frame's detection by less than ``redetect_iou`` (IoU) is replaced by it — a start box, free of the
  settled box's step bound (:meth:`TrackingCrop.check_detection`); a tracker that reads clutter as part of the hand
  grows its box a few per cent a frame with a steady confidence, a drift the other rules cannot see;
- **re-initialisation**: a frame is *lost* when its confidence (the median heatmap peak of its joints) is under
  ``reinit_confidence`` or fewer than ``MIN_KEYPOINTS`` joints are confident; a lost frame keeps the box, and
  ``patience`` lost frames in a row put the first box back, from which the hand is found again.

**Test-time refinement** (``refine`` = N ≥ 1): each frame is first predicted on its tracked box, the box is re-fit to
that frame's own keypoints by the same rule as a ground-truth crop (the keypoints' square, ``margin`` × its longer
side), and the frame is predicted again on the re-fit box — N times; the last prediction is the frame's answer and
feeds the next frame's box. A re-fit box obeys the same bounds (side within ``max_scale_step`` of the box it
replaces, floor, ceiling, centre in the frame), and a lost frame is not re-fit. This corrects a box that is off the
hand *within* the frame instead of one frame later, as far as the network's keypoints measure where the hand is in
its crop (docs/results.md, "Video prediction": with the CPU recipe's checkpoints they follow the crop more than the
hand, so the gain is small); each iteration costs one more network step per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..hand.skeleton import NUM_JOINTS, PALM_JOINTS
from .crop_box import MIN_KEYPOINTS, CropBox

#: A trial prediction on a box of the current frame: keypoints ``K×2`` in frame pixels and their confidence ``K``.
TrialPredictor = Callable[[CropBox], tuple[np.ndarray, np.ndarray]]

#: Re-fits per frame of ``tassn predict --video``; chosen with ``benchmarks/bench_predict.py --split val``
#: (docs/results.md, "Video prediction").
DEFAULT_REFINE = 1
#: Re-fits per candidate box when searching the first frame for the hand (0: start on the first box as it is), and
#: the candidate squares' sides as fractions of the frame's shorter side; chosen the same way.
DEFAULT_SEARCH = 6
DEFAULT_SEARCH_SCALES = (0.5, 0.75)
#: Weight of the previous side in each side update and re-fit (the centre keeps ``smoothing``): the CPU recipe's
#: network draws the hand at nearly one size in every crop, so a side read from its keypoints carries little scale
#: signal and much noise, and a box that takes it at face value drifts to the floor; chosen the same way.
DEFAULT_SCALE_SMOOTHING = 0.8
#: With a locator network (``--tracker-ckpt``): after the box is settled on the locator's keypoints, the locator
#: reads the settled box again and the box is settled on that reading, this many times, before the model predicts
#: on it. The locator is most accurate on a crop centred on the hand, so one more reading places the box better;
#: chosen the same way (docs/results.md, "Video prediction": 1 against 0 and 2, every seed's validation videos).
DEFAULT_SETTLE = 1
#: Which quantile of a trial's joint peaks compares the search's candidate boxes: the median of the 21. The minimum
#: (0: a box that cuts part of the hand off leaves some joints faint) picked better first boxes for one checkpoint on
#: validation and worse for others, and once settled on the full frame (docs/results.md); the median stays.
DEFAULT_COMPARE_QUANTILE = 0.5
#: The largest ratio of a measured box's side to its palm joints' square (both with the margin), or None: no cap.
#: On the target training labels the keypoints' square is 1.41 / 1.84 / 2.00 / 2.26 × the palm's at the 5th / 50th
#: / 75th / 95th percentile, so a cap binds on stretched readings and on the most open hands alike. A cap of 2
#: tracked 8 validation videos better (1.26× against 1.41× the ground-truth-crop error over three seeds), and 32
#: better too (1.23× against 1.28×) but with one more box collapsed on an open hand (docs/results.md, "Video
#: prediction"): off.
DEFAULT_PALM_CAP: float | None = None
#: With a hand detector (``--detector-ckpt``): a tracked box that overlaps the frame's detection by less than this IoU
#: is replaced by the detection (None: the detector gives first boxes only); chosen with ``bench_predict.py --split
#: val`` (docs/results.md, "Video prediction").
DEFAULT_REDETECT_IOU: float | None = 0.65


def _peak_quantile(confidence: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the finite joint peaks of one prediction; 0 when none is finite."""
    finite = np.asarray(confidence, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.quantile(finite, quantile)) if finite.size else 0.0


class TrackingCrop:
    """Follows the hand with the previous frame's predicted 2D keypoints, within bounds (module doc).

    ``reinitialised`` lists the frames whose box is the first box again because the frames before were lost;
    ``floor`` is the smallest side a box may have (known once the first frame's size is).
    """

    name = "track"

    def __init__(
        self,
        initial: CropBox | None = None,
        margin: float = 1.5,
        smoothing: float = 0.5,
        max_scale_step: float = 1.25,
        floor_fraction: float = 0.25,
        min_confidence: float = 0.05,
        reinit_confidence: float = 0.1,
        patience: int = 3,
        refine: int = DEFAULT_REFINE,
        extent_scale: float = 1.0,
        search: int = DEFAULT_SEARCH,
        search_scales: Sequence[float] = DEFAULT_SEARCH_SCALES,
        scale_smoothing: float | None = DEFAULT_SCALE_SMOOTHING,
        compare_quantile: float = DEFAULT_COMPARE_QUANTILE,
        settle_passes: int = DEFAULT_SETTLE,
        palm_cap: float | None = DEFAULT_PALM_CAP,
        redetect_iou: float | None = DEFAULT_REDETECT_IOU,
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"track smoothing must be in [0, 1), got {smoothing}")
        if scale_smoothing is not None and not 0.0 <= scale_smoothing < 1.0:
            raise ValueError(f"track scale smoothing must be in [0, 1), got {scale_smoothing}")
        if not margin > 0:
            raise ValueError(f"crop margin must be positive, got {margin}")
        if not max_scale_step > 1.0:
            raise ValueError(f"max_scale_step (largest side change per frame) must be > 1, got {max_scale_step}")
        if not 0.0 < floor_fraction <= 1.0:
            raise ValueError(f"floor_fraction must be in (0, 1], got {floor_fraction}")
        if patience < 1:
            raise ValueError(f"patience (lost frames before re-initialising) must be at least 1, got {patience}")
        if not extent_scale > 0:
            raise ValueError(f"extent_scale (predicted / true hand extent) must be positive, got {extent_scale}")
        if not 0.0 <= compare_quantile <= 1.0:
            raise ValueError(f"compare_quantile (of the joints' peaks) must be in [0, 1], got {compare_quantile}")
        if settle_passes < 0:
            raise ValueError(f"settle_passes (locator readings of a settled box) must be ≥ 0, got {settle_passes}")
        if palm_cap is not None and not palm_cap >= 1.0:
            raise ValueError(f"palm_cap (largest box side / palm square side) must be ≥ 1 or None, got {palm_cap}")
        if redetect_iou is not None and not 0.0 < redetect_iou <= 1.0:
            raise ValueError(f"redetect_iou (overlap under which a detection replaces the box) must be in (0, 1] or "
                             f"None, got {redetect_iou}")
        if refine < 0:
            raise ValueError(f"refine (re-fits of a frame's box to its own prediction) must be ≥ 0, got {refine}")
        self.initial = initial
        self.margin = margin
        self.smoothing = smoothing
        self.scale_smoothing = scale_smoothing
        self.max_scale_step = max_scale_step
        self.floor_fraction = floor_fraction
        self.min_confidence = min_confidence
        self.reinit_confidence = reinit_confidence
        self.patience = patience
        if search < 0:
            raise ValueError(f"search (re-fits per candidate box on a first frame) must be ≥ 0, got {search}")
        if not all(0.0 < f <= 1.0 for f in search_scales):
            raise ValueError(f"search_scales are fractions of the frame's shorter side in (0, 1], got {search_scales}")
        self.refine = refine
        self.settle_passes = settle_passes
        self.compare_quantile = compare_quantile
        self.extent_scale = extent_scale
        self.palm_cap = palm_cap
        self.redetect_iou = redetect_iou
        self.redetected: list[int] = []
        self.search = search
        self.search_scales = tuple(float(f) for f in search_scales)
        self.first: CropBox | None = None
        self.floor = 0.0
        self.ceiling = np.inf
        self.reinitialised: list[int] = []
        self._size: tuple[int, int] | None = None
        self._current: CropBox | None = None
        self._previous: CropBox | None = None  # the box the previous frame was predicted on
        self._lost = 0
        self._searching = False  # the current box is a start box the next frame may search from
        self.searches: list[int] = []

    def _start(self, width: int, height: int) -> None:
        """Fix the first box, the floor and the ceiling from the first frame's size."""
        self._size = (width, height)
        first = self.initial or CropBox.centred_square(width, height)
        self.ceiling = float(max(width, height))
        self.floor = self.floor_fraction * min(first.size, float(min(width, height)))
        self.first = self._bounded(first)
        self._current, self._previous = self.first, None
        self._searching = self.search > 0 and self.initial is None

    def _bounded(self, box: CropBox) -> CropBox:
        """The centre inside the frame, the side within ``[floor, ceiling]``."""
        assert self._size is not None  # set by _start
        width, height = self._size
        return CropBox(float(np.clip(box.cx, 0, width - 1)), float(np.clip(box.cy, 0, height - 1)),
                       float(np.clip(box.size, self.floor, max(self.ceiling, self.floor))))

    def box(self, index: int, width: int, height: int) -> CropBox:
        if self._current is None or self._size != (width, height):
            self._start(width, height)
        assert self._current is not None
        return self._current

    def needs_search(self, index: int) -> bool:
        """Whether frame ``index`` starts from the first box and should search for the hand (module doc)."""
        return self._searching

    def candidates(self) -> list[CropBox]:
        """The start boxes of a search: the first box and a 3×3 grid of squares per ``search_scales``."""
        assert self._size is not None and self.first is not None  # set by _start
        width, height = self._size
        boxes = [self.first]
        for fraction in self.search_scales:
            side = fraction * min(width, height)
            for i in range(3):
                for j in range(3):
                    boxes.append(self._bounded(CropBox(side / 2 + (width - side) * i / 2,
                                                       side / 2 + (height - side) * j / 2, side)))
        return boxes

    def settle(self, box: CropBox, kp2d: np.ndarray, confidence: np.ndarray,
               anchor: CropBox | None = None) -> CropBox | None:
        """The box re-fit to keypoints predicted on ``box`` (floor, ceiling and the frame hold), or None when the
        prediction is lost. With ``anchor`` its side stays within ``max_scale_step`` of the anchor's (the frame's
        tracked box, :meth:`settle_anchor`); without, it is free, as the first frame's search needs."""
        kp2d, confidence = np.asarray(kp2d, np.float64), np.asarray(confidence, np.float64)
        good = self._confident(kp2d, confidence)
        if good is None:
            return None
        measured = self._measure(kp2d, good)
        if anchor is not None:
            lo, hi = anchor.size / self.max_scale_step, anchor.size * self.max_scale_step
            measured = CropBox(measured.cx, measured.cy, float(np.clip(measured.size, lo, hi)))
        return self._bounded(measured)

    def settle_anchor(self) -> CropBox | None:
        """The box a settled box's side stays within a step of: the frame's tracked box, or None on a start frame
        (the first frame, or the first after re-initialisation), where the box is free to find the hand's size.
        Without it one confused reading moved the box a locator predicts on from 60 to 32 px and back within three
        frames (docs/results.md, "Video prediction")."""
        return None if self._previous is None else self._current

    def search_box(self, index: int, predict: TrialPredictor, starts: Sequence[CropBox] | None = None) -> CropBox:
        """Search frame ``index`` for the hand (module doc) with trial predictions; the found box becomes the
        frame's box (and the anchor its first re-fit is bounded by). ``starts``: the boxes to search from (a hand
        detector's, :mod:`tassn.predict.detector`) instead of :meth:`candidates`."""
        best: tuple[float, CropBox] | None = None
        for box in [self._bounded(b) for b in starts] if starts else self.candidates():
            kp2d, confidence = predict(box)
            for _ in range(self.search):
                settled = self.settle(box, kp2d, confidence)
                if settled is None:
                    break
                box = settled
                kp2d, confidence = predict(box)
            score = self.trial_score(confidence)
            if best is None or score > best[0]:
                best = (score, box)
        assert best is not None  # candidates() holds the first box at least
        self._current, self._previous, self._searching = best[1], None, False
        self.searches.append(index)
        return best[1]

    def check_detection(self, index: int, detected: CropBox) -> bool:
        """With ``redetect_iou``: when frame ``index``'s tracked box overlaps a hand detector's box of the frame by
        less than ``redetect_iou`` (IoU), the detected box becomes the frame's box, a start box free of the step
        bound (as after a re-initialisation); returns whether it did. A tracker that reads clutter as part of the
        hand grows its box a step at a time while its confidence holds, which no bound on one step can stop."""
        if self.redetect_iou is None or self._current is None or self._current.iou(detected) >= self.redetect_iou:
            return False
        self._current, self._previous = self._bounded(detected), None
        self.redetected.append(index)
        return True

    def keep(self, index: int, box: CropBox) -> None:
        """Frame ``index`` stays on ``box`` (a re-fit that read the hand less surely is dropped)."""
        self._current = box

    @staticmethod
    def frame_confidence(confidence: np.ndarray) -> float:
        """A frame's confidence: the median heatmap peak over its joints (0 when none is finite)."""
        return _peak_quantile(confidence, 0.5)

    def trial_score(self, confidence: np.ndarray) -> float:
        """How surely a search candidate holds the hand: the ``compare_quantile`` of its joints' heatmap peaks (0 when
        none is finite). The re-fit guard keeps :meth:`frame_confidence` (the median)."""
        return _peak_quantile(confidence, self.compare_quantile)

    def _confident(self, kp2d: np.ndarray, confidence: np.ndarray) -> np.ndarray | None:
        """The mask of a frame's confident, finite keypoints, or None when the frame is lost."""
        good = np.isfinite(kp2d).all(axis=1) & (np.nan_to_num(confidence, nan=0.0) >= self.min_confidence)
        if self.frame_confidence(confidence) < self.reinit_confidence or good.sum() < MIN_KEYPOINTS:
            return None
        return good

    def _measure(self, kp2d: np.ndarray, good: np.ndarray) -> CropBox:
        """The box of the confident keypoints (``good`` of ``K×2``): their square, ``margin / extent_scale`` × the
        longer side, at most ``palm_cap`` × the palm joints' square where all of them are confident."""
        scale = self.margin / self.extent_scale
        box = CropBox.from_keypoints(kp2d[good], scale, min_size=self.floor)
        palm = list(PALM_JOINTS)
        if self.palm_cap is None or len(kp2d) != NUM_JOINTS or not good[palm].all():
            return box
        cap = self.palm_cap * CropBox.from_keypoints(kp2d[palm], scale, min_size=0.0).size
        return box if box.size <= cap else CropBox(box.cx, box.cy, max(cap, self.floor))

    def refit(self, index: int, kp2d: np.ndarray, confidence: np.ndarray) -> CropBox | None:
        """Re-fit frame ``index``'s box to the keypoints (frame pixels) just predicted on it; returns the new box,
        which becomes the frame's box, or None when the frame is lost (its box and prediction stand).

        The re-fit box is the keypoints' square with ``margin`` (over ``extent_scale``); its side stays within
        ``max_scale_step`` of the previous frame's box (of the tracked box on a first frame), within the floor and the ceiling, and its
        centre in the frame: the bounds of :meth:`update` hold for the boxes the frames are predicted on.
        """
        if self._current is None:
            raise RuntimeError("TrackingCrop.refit before the first box: call box() for the frame first")
        kp2d, confidence = np.asarray(kp2d, np.float64), np.asarray(confidence, np.float64)
        good = self._confident(kp2d, confidence)
        if good is None:
            return None
        anchor = self._previous if self._previous is not None else self._current
        measured = self._measure(kp2d, good)
        size = self._blend_side(anchor.size, measured.size, 0.0 if self.scale_smoothing is None else self.scale_smoothing)
        self._current = self._bounded(CropBox(measured.cx, measured.cy, size))
        return self._current

    def update(self, index: int, kp2d: np.ndarray, confidence: np.ndarray) -> None:
        """Move the box towards frame ``index``'s keypoints (frame pixels) for frame ``index + 1``."""
        if self._current is None:
            raise RuntimeError("TrackingCrop.update before the first box: call box() for the frame first")
        kp2d, confidence = np.asarray(kp2d, np.float64), np.asarray(confidence, np.float64)
        good = self._confident(kp2d, confidence)
        self._previous = self._current
        if good is None:
            self._lost += 1
            if self._lost >= self.patience:
                assert self.first is not None
                self._current, self._lost, self._previous = self.first, 0, None
                self.reinitialised.append(index + 1)
                self._searching = self.search > 0 and self.initial is None
            return
        self._lost = 0
        self._searching = False
        measured = self._measure(kp2d, good)
        old, a = self._current, self.smoothing
        size = self._blend_side(old.size, measured.size, a if self.scale_smoothing is None else self.scale_smoothing)
        self._current = self._bounded(CropBox(a * old.cx + (1 - a) * measured.cx, a * old.cy + (1 - a) * measured.cy, size))

    def _blend_side(self, old: float, measured: float, weight: float) -> float:
        """The new side: ``weight`` of the old side's log and the rest of the measured one's, within
        ``max_scale_step`` of the old side."""
        log_step = np.log(self.max_scale_step)
        log_size = weight * np.log(old) + (1 - weight) * np.log(measured)
        return float(np.exp(np.clip(log_size, np.log(old) - log_step, np.log(old) + log_step)))

    def summary(self) -> dict[str, float | list[int]]:
        """What a run records about its tracking: the floor and the frames where the box was re-initialised."""
        return {"floor": self.floor, "max_scale_step": self.max_scale_step, "reinit_confidence": self.reinit_confidence,
                "patience": self.patience, "refine": self.refine, "search": self.search,
                "search_scales": list(self.search_scales), "searched_at": list(self.searches),
                "extent_scale": self.extent_scale, "scale_smoothing": self.scale_smoothing,
                "compare_quantile": self.compare_quantile, "settle_passes": self.settle_passes,
                "palm_cap": self.palm_cap, "redetect_iou": self.redetect_iou, "redetected_at": list(self.redetected),
                "reinitialised_at": list(self.reinitialised)}
