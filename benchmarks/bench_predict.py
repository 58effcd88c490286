"""Video prediction with the tracking crop against the same model on ground-truth crops.

A tracker fed by its own network can fail on its own (a shrinking crop loses the hand), so its cost is measured
apart from the model's: every synthetic target test video runs through ``tassn predict``'s forward loop
(:func:`tassn.predict.passes.run_forward`) twice with one checkpoint — once with the tracking crop (the default,
starting from the full frame; ``--refine N`` re-fits each frame's box to its own prediction N times) and once with
the training pipeline's crop around the labelled keypoints (square, centred on the keypoints' box, ``--crop-margin``
× its longer side; the default is the synthetic data module's training margin, 1.4, and the tracker uses the same). Both are scored in frame pixels against the labels: mean 2D
error and PCK (fraction of joints within ``--pck-px``). Per video it also records the smallest and largest tracked
crop side, the smallest ratio of tracked to ground-truth side and where the tracker re-initialised. The goal
(docs/results.md): tracked error ≤ 1.2 × the ground-truth-crop error, and no crop collapse (no tracked side under
half the ground-truth crop's on any frame)::

    python benchmarks/bench_predict.py --ckpt runs/synthetic-cpu/stage3/checkpoints/last.ckpt \
        --data data/synthetic/target-test-<hash> [--out benchmarks/results/predict.json] [--refine 1]

``--split val`` scores the target *validation* videos instead (``target-val-*``): settings such as ``--refine`` are
chosen there, and the test split only reports them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: A tracked side under this fraction of the ground-truth crop's side on some frame is a collapse: the hand no
#: longer fits (the training crop leaves it a third of the side as margin).
COLLAPSE_RATIO = 0.5
#: The crop margin the synthetic videos are trained with (``SyntheticDataModule(crop_margin=…)``'s default, which
#: the experiments' configs keep).
TRAINING_MARGIN = 1.4


class GroundTruthCrop:
    """The training crop of every frame, from the labelled keypoints (``data_modules.clips.frame_transform``)."""

    name = "ground-truth"

    def __init__(self, kp2d: np.ndarray, margin: float = TRAINING_MARGIN, min_side: float = 16.0) -> None:
        from tassn.predict.crop_box import CropBox

        self.boxes = [CropBox.from_keypoints(k, margin, min_side) for k in np.asarray(kp2d, np.float64)]

    def box(self, index: int, width: int, height: int) -> Any:
        return self.boxes[index]

    def update(self, index: int, kp2d: np.ndarray, confidence: np.ndarray) -> None:
        """Boxes come from the labels only."""


def find_test_folder(root: Path, split: str = "test") -> Path:
    """The one complete ``target-<split>-*`` folder under ``root`` (a data root), or ``root`` itself."""
    if (root / "annotations.npz").is_file():
        return root
    found = sorted(p for p in root.glob(f"target-{split}-*") if (p / "annotations.npz").is_file())
    if len(found) != 1:
        raise FileNotFoundError(
            f"{root}: expected one synthetic target-{split}-*/ folder with annotations.npz, found "
            f"{[p.name for p in found] or 'none'}; pass --data <folder> (run `make data` to generate it)"
        )
    return found[0]


def score(pred: np.ndarray, truth: np.ndarray, pck_px: float) -> dict[str, float]:
    """Mean 2D error (px) and PCK at ``pck_px`` of ``F×21×2`` predictions against the labels."""
    err = np.linalg.norm(pred - truth, axis=-1)
    return {"error_px": float(err.mean()), "pck": float((err <= pck_px).mean())}


def extent(kp: np.ndarray) -> np.ndarray:
    """The longer side of the keypoints' box, per frame of ``F×21×2``."""
    return (kp.max(axis=-2) - kp.min(axis=-2)).max(axis=-1)


def run_video(frames: Path, kp2d: np.ndarray, stepper: Any, pck_px: float, track: dict[str, Any],
              start: str = "full", margin: float = TRAINING_MARGIN, locator: Any = None,
              detector: Any = None) -> dict[str, Any]:
    """Both crops on one video: scores, tracked crop sides and re-initialisations. ``start``: the tracker's first
    box is the full frame (``full``, the default of ``tassn predict``) or the first frame's ground-truth crop (``gt``,
    as a user's ``--bbox``), which separates finding the hand from following it. ``locator``: a second network that
    places the tracking crop (``tassn predict --tracker-ckpt``); ``detector``: the hand detector whose boxes a first
    frame's search starts from (``--detector-ckpt``); the ground-truth crop uses neither."""
    from tassn.predict.passes import run_forward
    from tassn.predict.tracking import TrackingCrop
    from tassn.predict.video_io import FrameSource

    row: dict[str, Any] = {"video": frames.name, "frames": len(kp2d)}
    truth = GroundTruthCrop(kp2d, margin)
    initial = truth.boxes[0] if start == "gt" else None
    for name, provider in (("tracked", TrackingCrop(initial=initial, margin=margin, **track)), ("gt_crop", truth)):
        source = FrameSource(frames)
        result, boxes = run_forward(source, provider, stepper, None, False, None, progress=False,
                                    locator=locator if name == "tracked" else None,
                                    detector=detector if name == "tracked" else None)
        pred = np.stack([b.to_frame(k, stepper.crop_size) for b, k in zip(boxes, result.kp_crop, strict=True)])
        for key, value in score(pred, kp2d[: len(pred)], pck_px).items():
            row[f"{name}_{key}"] = value
        if name == "gt_crop":  # how large the network draws the hand on the training crop (extent_scale)
            row["extent_ratios"] = (extent(pred) / extent(kp2d[: len(pred)])).tolist()
        if name == "tracked":
            sides = np.array([b.size for b in boxes])
            ratio = sides / np.array([b.size for b in truth.boxes[: len(sides)]])
            row |= {"min_side": float(sides.min()), "max_side": float(sides.max()), "floor": provider.floor,
                    "min_side_ratio": float(ratio.min()), "max_side_ratio": float(ratio.max()),
                    "reinitialised_at": provider.reinitialised, "searched_at": provider.searches,
                    "redetected_at": provider.redetected,
                    "median_peak": float(np.median(np.stack(result.confidence)))}
    row["ratio"] = row["tracked_error_px"] / max(row["gt_crop_error_px"], 1e-9)
    row["collapsed"] = bool(row["min_side_ratio"] < COLLAPSE_RATIO)
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Frame-weighted means over the videos and the goal's verdict."""
    weights = np.array([r["frames"] for r in rows], np.float64)
    mean = {k: float(np.average([r[k] for r in rows], weights=weights))
            for k in ("tracked_error_px", "gt_crop_error_px", "tracked_pck", "gt_crop_pck")}
    ratio = mean["tracked_error_px"] / max(mean["gt_crop_error_px"], 1e-9)
    return mean | {"ratio": ratio, "min_side": min(r["min_side"] for r in rows),
                   "min_side_ratio": min(r["min_side_ratio"] for r in rows),
                   "max_side": max(r["max_side"] for r in rows),
                   "extent_scale": float(np.median(np.concatenate([r.get("extent_ratios", [np.nan]) for r in rows]))),
                   "collapsed_videos": sum(r["collapsed"] for r in rows),
                   "goal_met": bool(ratio <= 1.2 and not any(r["collapsed"] for r in rows))}


def table(rows: list[dict[str, Any]], summary: dict[str, Any], pck_px: float) -> str:
    head = (f"{'video':<18}{'tracked px':>11}{'GT-crop px':>11}{'ratio':>7}{'PCK@' + format(pck_px, 'g'):>9}"
            f"{'GT PCK':>8}{'min side':>9}{'max side':>9}{'min/GT':>7}{'reinit':>7}")
    lines = [head, "-" * len(head)]
    for r in [*rows, {"video": "all (mean)", **summary, "reinitialised_at": None}]:
        reinit = "" if r["reinitialised_at"] is None else str(len(r["reinitialised_at"]))
        lines.append(f"{r['video']:<18}{r['tracked_error_px']:>11.2f}{r['gt_crop_error_px']:>11.2f}{r['ratio']:>7.2f}"
                     f"{r['tracked_pck']:>9.3f}{r['gt_crop_pck']:>8.3f}{r['min_side']:>9.1f}{r['max_side']:>9.1f}"
                     f"{r['min_side_ratio']:>7.2f}{reinit:>7}")
    return "\n".join(lines)


def scale_smoothing(option: str | None, default: float) -> float | None:
    """``--scale-smoothing``: None → ``default``, ``none`` → None (TrackingCrop's side smoothed as the centre)."""
    if option is None:
        return default
    return None if option.strip().lower() == "none" else float(option)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="checkpoint of a trained stage (stage3, stage2 or pretrain)")
    parser.add_argument("--data", default="data/synthetic",
                        help="a synthetic target-test-* folder, or the data root holding one (default data/synthetic)")
    parser.add_argument("--out", default="benchmarks/results/predict.json", help="JSON written here")
    parser.add_argument("--max-videos", type=int, help="only the first N videos")
    parser.add_argument("--pck-px", type=float, default=5.0, help="PCK threshold in frame pixels (default 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--start", choices=("full", "gt"), default="full",
                        help="the tracker's first box: the full frame (default) or the first ground-truth crop")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="which target-<split>-* folder of a data root to score (default test; choose settings on val)")
    parser.add_argument("--refine", type=int, default=None,
                        help="tracking: re-fit each frame's box to its own prediction this many times (default: tassn predict's)")
    parser.add_argument("--search", type=int, default=None,
                        help="tracking: re-fits per candidate box when searching the first frame for the hand "
                        "(TrackingCrop search; default: tassn predict's)")
    parser.add_argument("--extent-scale", type=float, default=1.0,
                        help="tracking: the checkpoint's predicted / true hand extent (TrackingCrop extent_scale); "
                        "every run prints the median measured on its ground-truth crops (default 1)")
    parser.add_argument("--scale-smoothing", default=None,
                        help="tracking: weight of the previous side in each side update and re-fit (TrackingCrop "
                        "scale_smoothing; default: tassn predict's; 'none': the side smoothed as the centre in "
                        "updates and not in re-fits, the tracker before this option)")
    parser.add_argument("--compare-quantile", type=float, default=None,
                        help="tracking: quantile of a candidate's joint peaks that compares the first-frame search's "
                        "boxes (TrackingCrop compare_quantile; default: tassn predict's, the median)")
    parser.add_argument("--search-scales", type=float, nargs="+", default=None,
                        help="tracking: sides of the first-frame search's candidate squares, fractions of the frame's "
                        "shorter side (TrackingCrop search_scales; default: tassn predict's)")
    parser.add_argument("--settle", type=int, default=None,
                        help="tracking with --tracker-ckpt: locator readings of each settled box, each settled again "
                        "(TrackingCrop settle_passes; default: tassn predict's)")
    parser.add_argument("--palm-cap", type=float, default=None,
                        help="tracking: largest box side / the palm joints' square (TrackingCrop palm_cap; 0: no cap; "
                        "default: tassn predict's)")
    parser.add_argument("--crop-margin", type=float, default=TRAINING_MARGIN,
                        help=f"crop side / keypoints' extent, for the ground-truth crop and the tracker (default "
                        f"{TRAINING_MARGIN}, the synthetic training margin)")
    parser.add_argument("--detector-ckpt", metavar="CKPT",
                        help="a hand detector (make train-detector's) whose boxes a first frame's search starts from "
                        "(default: the tracker's grid of candidate squares)")
    parser.add_argument("--detector-top-k", type=int, default=None,
                        help="boxes per frame the search starts from (default: tassn predict's)")
    parser.add_argument("--redetect-iou", type=float, default=None,
                        help="with --detector-ckpt: a tracked box overlapping the frame's detection by less than this "
                        "IoU is replaced by it (0: never; default: tassn predict's)")
    parser.add_argument("--tracker-ckpt",
                        help="a second checkpoint whose keypoints place the tracking crop (tassn predict "
                        "--tracker-ckpt; make train-tracker writes one); default: the checkpoint tracks itself")
    parser.add_argument("--stages", nargs="+", default=["stage3", "stage2", "pretrain", "stage1"],
                        help="checkpoint stages accepted (stage 1's heatmaps are enough for 2D; default: all)")
    args = parser.parse_args(argv)

    from tassn.predict.detector import DEFAULT_DETECTOR_TOP_K, HandDetector
    from tassn.predict.model import TRACKER_STAGES, load_model
    from tassn.predict.passes import Stepper
    from tassn.stages.checkpoints import CheckpointMismatchError

    try:
        folder = find_test_folder(Path(args.data), args.split)
        model = load_model(args.ckpt, allowed_stages=args.stages, device=args.device)
        tracker = None if args.tracker_ckpt is None else load_model(args.tracker_ckpt, allowed_stages=TRACKER_STAGES,
                                                                    device=args.device)
        detector = None if args.detector_ckpt is None else HandDetector.load(
            args.detector_ckpt, args.device, DEFAULT_DETECTOR_TOP_K if args.detector_top_k is None else args.detector_top_k)
    except (FileNotFoundError, CheckpointMismatchError) as err:
        print(f"bench_predict: error: {err}", file=sys.stderr)
        return 2
    with np.load(folder / "annotations.npz") as ann:
        names, kp2d = list(ann["names"]), ann["kp2d"].astype(np.float64)
    if args.max_videos is not None:
        names, kp2d = names[: args.max_videos], kp2d[: args.max_videos]
    stepper = Stepper(model)
    locator = None if tracker is None else Stepper(tracker)
    from tassn.predict.tracking import (
        DEFAULT_COMPARE_QUANTILE,
        DEFAULT_PALM_CAP,
        DEFAULT_REDETECT_IOU,
        DEFAULT_REFINE,
        DEFAULT_SCALE_SMOOTHING,
        DEFAULT_SEARCH,
        DEFAULT_SEARCH_SCALES,
        DEFAULT_SETTLE,
    )

    refine = DEFAULT_REFINE if args.refine is None else args.refine
    search = DEFAULT_SEARCH if args.search is None else args.search
    settle = DEFAULT_SETTLE if args.settle is None else args.settle
    palm_cap = DEFAULT_PALM_CAP if args.palm_cap is None else (args.palm_cap or None)
    track: dict[str, Any] = {"refine": refine, "search": search, "extent_scale": args.extent_scale,
                             "settle_passes": settle, "palm_cap": palm_cap,
                             "redetect_iou": DEFAULT_REDETECT_IOU if args.redetect_iou is None else (args.redetect_iou or None),
                             "search_scales": DEFAULT_SEARCH_SCALES if args.search_scales is None
                             else tuple(args.search_scales),
                             "scale_smoothing": scale_smoothing(args.scale_smoothing, DEFAULT_SCALE_SMOOTHING),
                             "compare_quantile": DEFAULT_COMPARE_QUANTILE if args.compare_quantile is None
                             else args.compare_quantile}
    started = time.perf_counter()
    rows = [run_video(folder / "videos" / str(name), kp, stepper, args.pck_px, track, args.start, args.crop_margin,
                      locator, detector)
            for name, kp in zip(names, kp2d, strict=True)]
    summary = summarise(rows)
    print(table(rows, summary, args.pck_px))
    print(f"tracking crop placed by: {args.tracker_ckpt or 'the checkpoint itself'}; first box: {args.start}; "
          f"search starts: {'the detector ' + args.detector_ckpt if detector else 'the grid of candidates'}")
    print(f"median predicted / true hand extent on the ground-truth crops: {summary['extent_scale']:.3f} "
          "(--extent-scale)")
    print(f"goal (tracked ≤ 1.2 × GT-crop error, no collapse): {'met' if summary['goal_met'] else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(Path(args.ckpt)), "stage": model.stage,
              "tracker_checkpoint": None if args.tracker_ckpt is None else str(Path(args.tracker_ckpt)),
              "detector_checkpoint": None if detector is None else str(detector.path),
              "detector_top_k": None if detector is None else detector.top_k,
              "data": str(folder), "pck_px": args.pck_px,
              "crop_size": stepper.crop_size, "crop_margin": args.crop_margin,
              "tracker": f"TrackingCrop defaults, refine={refine}, search={search}, "
                         f"search_scales={list(track['search_scales'])}, settle={settle}, "
                         f"extent_scale={args.extent_scale}, palm_cap={palm_cap}, redetect_iou={track['redetect_iou']}, "
                         f"scale_smoothing={track['scale_smoothing']}, compare_quantile={track['compare_quantile']}, "
                         f"first box: {args.start}",
              "seconds": time.perf_counter() - started, "summary": summary, "videos": rows}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
