"""What a checkpoint's keypoints say about where the hand is in its crop: the measurement behind the tracking results.

A crop that follows the hand can only be as good as the evidence the network's keypoints give about the hand's
position and size *in the crop*. On every frame of the synthetic target videos (recurrence carried along the
ground-truth crops, as in ``bench_predict.py``) this script also predicts on trial crops of the same frame — the
ground-truth crop scaled by ``--scales`` and moved by ``--shift`` of its side — without letting them enter the
recurrence, and reports per trial crop: the predicted hand extent over the true one (1 at every scale for a network
that measures the hand; proportional to the scale for one that draws a fixed-size hand in every crop), the predicted
centre's offset from the true one in hand extents (0 for a network that finds the hand; the box's own shift for one
that puts the hand at the crop centre), the mean 2D error (frame px) and the median heatmap peak (the tracker's
confidence). Last, how often the highest median peak among the trial crops is the ground-truth crop's (chance:
one in the number of trials)::

    python benchmarks/crop_response.py --ckpt runs/synthetic-cpu/stage3/checkpoints/last.ckpt \\
        --data data/synthetic --split val [--max-videos 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench_predict import TRAINING_MARGIN, find_test_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--split", choices=("test", "val"), default="val")
    parser.add_argument("--max-videos", type=int, default=3)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.7, 1.0, 1.5])
    parser.add_argument("--shift", type=float, default=0.15, help="trial shift, fraction of the crop side")
    parser.add_argument("--crop-margin", type=float, default=TRAINING_MARGIN)
    parser.add_argument("--out", default="benchmarks/results/crop_response.json")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from tassn.predict.crop_box import CropBox
    from tassn.predict.model import load_model
    from tassn.predict.passes import Stepper
    from tassn.predict.video_io import FrameSource
    from tassn.stages.checkpoints import CheckpointMismatchError

    try:
        folder = find_test_folder(Path(args.data), args.split)
        model = load_model(args.ckpt, allowed_stages=["stage3", "stage2", "pretrain", "stage1"], device=args.device)
    except (FileNotFoundError, CheckpointMismatchError) as err:
        print(f"crop_response: error: {err}", file=sys.stderr)
        return 2
    with np.load(folder / "annotations.npz") as ann:
        names, kp2d = list(ann["names"])[: args.max_videos], ann["kp2d"][: args.max_videos].astype(np.float64)
    stepper, s = Stepper(model), model.net.image_size
    trials = [(k, 0.0, 0.0) for k in args.scales] + [(1.0, args.shift, 0.0), (1.0, 0.0, args.shift)]
    rows: dict[tuple[float, float, float], list[list[float]]] = {t: [] for t in trials}
    best = []
    for name, video in zip(names, kp2d, strict=True):
        stepper.restart()
        for frame, truth in zip(FrameSource(folder / "videos" / str(name)), video, strict=False):
            lo, hi = truth.min(axis=0), truth.max(axis=0)
            centre, extent = (lo + hi) / 2, float((hi - lo).max())
            peaks = []
            for scale, dx, dy in trials:
                side = args.crop_margin * extent * scale
                box = CropBox(centre[0] + dx * side, centre[1] + dy * side, side)
                kp, conf, _, _ = stepper(box.cut(frame, s), commit=False)
                pred = box.to_frame(kp, s)
                plo, phi = pred.min(axis=0), pred.max(axis=0)
                offset = ((plo + phi) / 2 - centre) / extent
                rows[(scale, dx, dy)].append([float((phi - plo).max()) / extent, *offset,
                                              float(np.linalg.norm(pred - truth, axis=1).mean()), float(np.median(conf))])
                peaks.append(float(np.median(conf)))
            best.append(int(np.argmax(peaks)) == trials.index((1.0, 0.0, 0.0)))
            stepper(CropBox(centre[0], centre[1], args.crop_margin * extent).cut(frame, s))
    table = []
    print(f"{'scale':>6}{'shift x':>8}{'shift y':>8}{'extent ratio':>13}{'centre dx':>10}{'centre dy':>10}"
          f"{'error px':>9}{'peak':>7}")
    for (scale, dx, dy), values in rows.items():
        m = np.mean(values, axis=0)
        table.append({"scale": scale, "shift_x": dx, "shift_y": dy, "extent_ratio": m[0], "centre_dx": m[1],
                      "centre_dy": m[2], "error_px": m[3], "median_peak": m[4]})
        print(f"{scale:>6.2f}{dx:>8.2f}{dy:>8.2f}{m[0]:>13.3f}{m[1]:>10.3f}{m[2]:>10.3f}{m[3]:>9.2f}{m[4]:>7.3f}")
    hit = float(np.mean(best))
    print(f"highest median peak on the ground-truth crop: {hit:.2f} of the frames (chance {1 / len(trials):.2f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": args.ckpt, "data": str(folder), "crop_margin": args.crop_margin,
                               "frames": len(best), "trials": table, "peak_picks_gt_crop": hit}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
