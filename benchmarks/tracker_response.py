"""How a tracker network reads a badly sized box: the ground-truth crop scaled by f, read once, settled.

The tracking crop (``tassn predict --tracker-ckpt``) re-fits each frame's box to the tracker's keypoints. Whether
that pulls a wrong box back depends on the tracker's reading of a box that is too small or too large: for every
labelled frame (every ``--every``-th) of the synthetic target videos, the ground-truth crop (the training margin ×
the keypoints' longer side, as ``bench_predict.py``) is scaled by each factor f about its centre, the tracker reads
it once from a fresh recurrence, and the box is settled on that reading by :meth:`TrackingCrop.settle`. A tracker
that restores the scale returns a side near 1 × the ground truth's whatever f; one blind to scale returns f. Prints
per video and over all the mean settled side / ground-truth side per f, and the mean centre offset at f = 1 (in
ground-truth sides); writes JSON::

    python benchmarks/tracker_response.py --tracker-ckpt runs/synthetic-cpu/tracker/checkpoints/last.ckpt --split val
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench_predict import TRAINING_MARGIN, GroundTruthCrop, find_test_folder

FACTORS = (0.6, 0.8, 1.0, 1.25, 1.5, 1.8, 2.2)


def video_response(frames: list[np.ndarray], kp2d: np.ndarray, locator, factors, every: int, margin: float):
    """Per factor, the mean settled side / ground-truth side over the video's sampled frames, and the mean centre
    offset / ground-truth side at f = 1 (frames whose reading is lost are left out)."""
    from tassn.predict.crop_box import CropBox
    from tassn.predict.passes import _trial_keypoints
    from tassn.predict.tracking import TrackingCrop

    height, width = frames[0].shape[:2]
    truth = GroundTruthCrop(kp2d, margin)
    settler = TrackingCrop(margin=margin)
    settler.box(0, width, height)
    settler.floor = 1.0  # read the tracker's own scale, not the tracking floor
    sides: dict[float, list[float]] = {f: [] for f in factors}
    offsets: list[float] = []
    for t in range(0, len(frames), every):
        gt = truth.boxes[t]
        for f in factors:
            locator.restart()
            box = CropBox(gt.cx, gt.cy, gt.size * f)
            settled = settler.settle(box, *_trial_keypoints(locator, frames[t], box, mirror=False))
            if settled is None:
                continue
            sides[f].append(settled.size / gt.size)
            if f == 1.0:
                offsets.append(float(np.hypot(settled.cx - gt.cx, settled.cy - gt.cy) / gt.size))
    return ({str(f): float(np.mean(v)) if v else None for f, v in sides.items()},
            float(np.mean(offsets)) if offsets else None, {f: v for f, v in sides.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracker-ckpt", required=True, help="the tracker (make train-tracker) or any 2D checkpoint")
    parser.add_argument("--data", default="data/synthetic", help="a target-<split>-* folder or the data root")
    parser.add_argument("--split", choices=("test", "val"), default="val")
    parser.add_argument("--every", type=int, default=4, help="every N-th frame of each video (default 4)")
    parser.add_argument("--factors", type=float, nargs="+", default=list(FACTORS))
    parser.add_argument("--crop-margin", type=float, default=TRAINING_MARGIN)
    parser.add_argument("--out", default="benchmarks/results/tracker_response.json")
    args = parser.parse_args(argv)
    if 1.0 not in args.factors:
        args.factors.append(1.0)

    from tassn.predict.model import TRACKER_STAGES, load_model
    from tassn.predict.passes import Stepper
    from tassn.predict.video_io import FrameSource
    from tassn.stages.checkpoints import CheckpointMismatchError

    try:
        folder = find_test_folder(Path(args.data), args.split)
        locator = Stepper(load_model(args.tracker_ckpt, allowed_stages=TRACKER_STAGES, device="cpu"))
    except (FileNotFoundError, CheckpointMismatchError) as err:
        print(f"tracker_response: error: {err}", file=sys.stderr)
        return 2
    with np.load(folder / "annotations.npz") as ann:
        names, kp2d = list(ann["names"]), ann["kp2d"].astype(np.float64)
    rows, pooled = [], {f: [] for f in args.factors}
    header = "| video | " + " | ".join(f"f = {f:g}" for f in args.factors) + " | centre offset at f = 1 |"
    print(header + "\n|" + "---|" * (len(args.factors) + 2))
    for name, kp in zip(names, kp2d, strict=True):
        frames = list(FrameSource(folder / "videos" / str(name)))
        means, offset, raw = video_response(frames, kp, locator, args.factors, args.every, args.crop_margin)
        for f in args.factors:
            pooled[f] += raw[f]
        rows.append({"video": str(name), "settled_side_ratio": means, "centre_offset": offset})
        cells = " | ".join("–" if means[str(f)] is None else f"{means[str(f)]:.2f}" for f in args.factors)
        print(f"| {name} | {cells} | {'–' if offset is None else f'{offset:.3f}'} |", flush=True)
    overall = {str(f): float(np.mean(v)) if v else None for f, v in pooled.items()}
    print("| all | " + " | ".join("–" if overall[str(f)] is None else f"{overall[str(f)]:.2f}" for f in args.factors)
          + " | |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tracker_checkpoint": args.tracker_ckpt, "data": str(folder), "every": args.every,
                               "factors": args.factors, "videos": rows, "all": overall}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
