"""Does the forward/backward confidence of ``tassn predict`` rank 3D joint errors? AUROC on the synthetic test videos.

Every synthetic target test video runs through ``tassn predict --video`` (its own code and defaults: the tracking
crop from the full frame, the forward and the reversed pass) on a folder holding only its frames; the labels are
read afterwards, to score (:mod:`video_scoring`). Per joint: the 3D error in mm under EPE's alignment (the ground
truth's root and middle MCP→PIP bone length, frame by frame) and the confidence ``tassn predict`` writes
(``confidence3d``: heatmap peak × forward/backward agreement, :mod:`tassn.predict.confidence`). The wrist is left
out: that alignment puts it on the ground truth, so its error is 0 by construction. Reported: AUROC of
``1 − confidence`` for "joint error > 20 mm", over all joints and per video (undefined where a video's joints are all
on one side of 20 mm), error per confidence bin, a PNG of error against confidence, and the EPE, PA-EPE, ACCEL and
jitter of the predictions. Goal (the issue): AUROC ≥ 0.75::

    python benchmarks/bench_confidence.py --ckpt runs/synthetic-cpu/stage3/checkpoints/last.ckpt \
        [--data data/synthetic] [--limit 4] [--out benchmarks/results/confidence.json] \
        [--png docs/images/confidence_error.png] [--predict-args "--refine 1"]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tassn.hand.skeleton import NUM_JOINTS, ROOT  # noqa: E402
from tassn.predict.confidence import CONFIDENCE3D_KEY  # noqa: E402
from tassn.predict.confidence_eval import (  # noqa: E402
    ERROR_THRESHOLD_MM,
    confidence_auroc,
    error_by_confidence_bin,
    plot_error_vs_confidence,
)
from video_scoring import (  # noqa: E402
    ALIGNMENT,
    VideoScorer,
    add_video_arguments,
    joint_errors_mm,
    load_labels,
    predict,
    run_benchmark,
    stage_frames,
    target_videos,
)

#: The issue's goal for the overall AUROC.
GOAL_AUROC = 0.75


def scored_joints(confidence: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F×21`` confidence and error → the flat values of every joint but the wrist (its error is 0 by alignment)."""
    if confidence.shape != errors.shape or confidence.ndim != 2:
        raise ValueError(f"confidence and errors must both be F×21; got {confidence.shape} and {errors.shape}")
    keep = np.ones(confidence.shape[1], bool)
    keep[ROOT] = False
    return confidence[:, keep].ravel(), errors[:, keep].ravel()


def auroc_or_none(confidence: np.ndarray, errors: np.ndarray, threshold_mm: float) -> tuple[float | None, str | None]:
    """``(AUROC, None)``, or ``(None, why)`` where every joint is on one side of the threshold."""
    try:
        return confidence_auroc(confidence, errors, threshold_mm), None
    except ValueError as err:
        return None, str(err)


def video_confidence(arrays: Any, errors: np.ndarray, threshold_mm: float) -> dict[str, Any]:
    """One video's confidence figures from its predictions and per-joint errors ``F×21``."""
    if CONFIDENCE3D_KEY not in arrays.extra:
        raise ValueError(f"predictions have no {CONFIDENCE3D_KEY!r}: do not pass --no-confidence in --predict-args")
    c, e = scored_joints(np.asarray(arrays.extra[CONFIDENCE3D_KEY], np.float64), errors)
    auroc, why = auroc_or_none(c, e, threshold_mm)
    return {"auroc": auroc, "auroc_undefined": why, "wrong_fraction": float((e > threshold_mm).mean()),
            "confidence_median": float(np.median(c)), "confidence": c, "errors": e}


def pooled(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The flat confidence and errors of every scored joint of every video."""
    return np.concatenate([r["confidence"] for r in rows]), np.concatenate([r["errors"] for r in rows])


def auroc_within_joints(c: np.ndarray, e: np.ndarray, threshold_mm: float, joints: int = NUM_JOINTS - 1) -> float | None:
    """The mean over the scored joints of each one's own AUROC (flat ``F×joints`` values, frames of every video
    pooled): how well the confidence ranks the frames of one joint, which a per-joint factor (the chain prior)
    cannot change. Joints on one side of the threshold in every frame are left out."""
    if c.size % joints:
        raise ValueError(f"{c.size} confidence values do not split into frames of {joints} joints")
    per_joint = [auroc_or_none(cj, ej, threshold_mm)[0]
                 for cj, ej in zip(c.reshape(-1, joints).T, e.reshape(-1, joints).T, strict=True)]
    defined = [a for a in per_joint if a is not None]
    return float(np.mean(defined)) if defined else None


def summarise(rows: list[dict[str, Any]], threshold_mm: float, bins: int, joints: int = NUM_JOINTS - 1) -> dict[str, Any]:
    """Pooled AUROC and bins over every scored joint of ``rows`` (which keep their flat ``confidence``/``errors``,
    ``joints`` per frame)."""
    c, e = pooled(rows)
    auroc, why = auroc_or_none(c, e, threshold_mm)
    defined = [r["auroc"] for r in rows if r["auroc"] is not None]
    return {"auroc": auroc, "auroc_undefined": why, "joints": int(c.size),
            "wrong_fraction": float((e > threshold_mm).mean()),
            "auroc_per_video_mean": float(np.mean(defined)) if defined else None,
            "auroc_within_joint_mean": auroc_within_joints(c, e, threshold_mm, joints),
            "videos_with_auroc": len(defined), "goal_auroc": GOAL_AUROC,
            "goal_met": bool(auroc is not None and auroc >= GOAL_AUROC),
            "bins": error_by_confidence_bin(c, e, bins, threshold_mm)}


def table(rows: list[dict[str, Any]], summary: dict[str, Any], scores: dict[str, Any]) -> str:
    def cell(value: float | None, digits: int) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    head = f"{'video':<18}{'frames':>7}{'EPE mm':>8}{'PA-EPE':>8}{'ACCEL':>7}{'> 20 mm':>9}{'conf med':>9}{'AUROC':>7}{'s':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['video']:<18}{r['frames']:>7d}{r['epe_mm']:>8.1f}{r['pa_epe_mm']:>8.1f}"
                     f"{cell(r['accel_mm'], 2):>7}{r['wrong_fraction']:>9.3f}{r['confidence_median']:>9.3f}"
                     f"{cell(r['auroc'], 3):>7}{r['seconds']:>6.1f}")
    lines.append(f"{'all (pooled)':<18}{scores['frames']:>7d}{scores['epe_mm']:>8.1f}{scores['pa_epe_mm']:>8.1f}"
                 f"{cell(scores['accel_mm'], 2):>7}{summary['wrong_fraction']:>9.3f}{'':>9}"
                 f"{cell(summary['auroc'], 3):>7}")
    return "\n".join(lines)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder, names = target_videos(args.data, args.split, args.limit)
    options = shlex.split(args.predict_args)
    scorer, rows = VideoScorer(args.pck_px), []
    for name in names:
        frames = stage_frames(folder / "videos" / name, work / name / "frames")
        started = time.perf_counter()
        arrays = predict(frames, args.ckpt, work / name / "predict", options, args.device)
        seconds = time.perf_counter() - started
        labels = load_labels(folder, name)  # only now, to score
        row = scorer.add(name, arrays, labels)
        row |= video_confidence(arrays, joint_errors_mm(arrays.kp3d, labels.kp3d), args.threshold_mm)
        rows.append(row | {"seconds": seconds})
        auroc = "undefined" if row["auroc"] is None else f"{row['auroc']:.3f}"
        print(f"{name}: AUROC {auroc}, {seconds:.1f} s", flush=True)
    summary = summarise(rows, args.threshold_mm, args.bins)
    scores = scorer.total()
    print(table(rows, summary, scores))
    auroc = summary["auroc"]
    measured = f"{auroc:.3f}" if auroc is not None else f"undefined ({summary['auroc_undefined']})"
    print(f"AUROC (joint error > {args.threshold_mm:g} mm, all joints but the wrist): {measured}; goal ≥ "
          f"{GOAL_AUROC}: {'met' if summary['goal_met'] else 'NOT met'}")
    within = summary["auroc_within_joint_mean"]
    print(f"AUROC within each joint (mean over the 20 joints; ranks frames, not joint types): "
          f"{'undefined' if within is None else f'{within:.3f}'}")
    plot_error_vs_confidence(
        *pooled(rows), args.png, args.threshold_mm, args.bins, title=f"{len(rows)} synthetic {args.split} videos, {Path(args.ckpt).name}",
    )
    for r in rows:
        del r["confidence"], r["errors"]
    return {"checkpoint": str(args.ckpt), "data": str(folder), "split": args.split,
            "prediction": "tassn predict --video <frames> " + " ".join(["--no-overlay", "--mesh-format none", *options]),
            "alignment": ALIGNMENT, "threshold_mm": args.threshold_mm, "pck_px": args.pck_px,
            "joints": "all but the wrist (its aligned error is 0)",
            "summary": summary, "scores": scores, "videos": rows, "png": str(args.png)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_video_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/confidence.json"), help="JSON written here")
    parser.add_argument("--png", type=Path, default=Path("docs/images/confidence_error.png"),
                        help="plot of error against confidence written here")
    parser.add_argument("--threshold-mm", type=float, default=ERROR_THRESHOLD_MM,
                        help=f"a joint above this 3D error is wrong (default {ERROR_THRESHOLD_MM:g})")
    parser.add_argument("--bins", type=int, default=10, help="confidence bins (quantiles) of the plot and JSON")
    parser.add_argument("--pck-px", type=float, default=5.0, help="2D PCK threshold in frame pixels (default 5)")
    parser.add_argument("--predict-args", default="", help='more tassn predict options, e.g. "--refine 1"')
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, … (default auto)")
    parser.add_argument("--work", type=Path,
                        help="keep each video's frames and predictions here (default: a temporary folder)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run_benchmark("bench_confidence", "make bench-confidence", args, run)
    if report is None:
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}, {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
