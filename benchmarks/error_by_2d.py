"""Where a 3D estimator fails: each test frame's 3D error against the 2D error of the heatmaps it reads.

Two checkpoints evaluated on the same target test frames (ground-truth crops, as ``tassn test``), frame by frame:
the 2D error of the heatmap peaks (crop px, visible joints), the EPE and the PA-EPE of the pose (mm, the metrics'
own alignments). Frames are binned by the *first* checkpoint's 2D error (quantiles), so both models are compared
on the same frames; per bin it prints both models' mean 2D error, EPE and PA-EPE and their PA-EPE difference.
The question it answers: does the second model lose on the frames whose 2D is poor (its 3D estimator commits to
what it reads) or everywhere (it generalises worse)::

    python benchmarks/error_by_2d.py runs/ablation/seed-0/synthetic-cpu/stage2/checkpoints/last.ckpt \\
        runs/ablation-art/seed-0/synthetic-cpu/stage2/checkpoints/last.ckpt --names recipe articulated
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mean_pose import data_module


def visible_mean(err: torch.Tensor, visible: torch.Tensor) -> np.ndarray:
    """Per-frame mean of ``err N×21`` over the visible joints."""
    return ((err * visible).sum(-1) / visible.sum(-1).clamp_min(1)).numpy()


@torch.no_grad()
def per_frame_errors(ckpt: str, batches: Any) -> dict[str, np.ndarray]:
    """``{"err2d_px", "epe_mm", "pa_epe_mm"}``, one value per test frame (visible joints averaged)."""
    from tassn.heatmaps import heatmap_peaks, heatmap_to_crop
    from tassn.metrics import align_to_ground_truth, similarity_align
    from tassn.predict.model import load_model

    net = load_model(ckpt, allowed_stages=["pretrain", "stage1", "stage2", "stage3"], device="cpu").net
    out: dict[str, list[np.ndarray]] = {"err2d_px": [], "epe_mm": [], "pa_epe_mm": []}
    for batch in batches:
        result = net.run(batch["frames"])
        heat = result.heatmaps[:, :, -1].flatten(0, 1)
        kp2d = heatmap_to_crop(heatmap_peaks(heat)[0], batch["frames"].shape[-1] / heat.shape[-1])
        visible = batch["visible"].flatten(0, 1).double()
        target = batch["kp3d"].flatten(0, 1).double()
        aligned = align_to_ground_truth(result.pose.flatten(0, 1), target)
        procrustes = similarity_align(aligned, target)
        out["err2d_px"].append(visible_mean((kp2d.double() - batch["kp2d"].flatten(0, 1).double()).norm(dim=-1),
                                            visible))
        out["epe_mm"].append(visible_mean((aligned - target).norm(dim=-1), visible))
        out["pa_epe_mm"].append(visible_mean((procrustes - target).norm(dim=-1), visible))
    return {k: np.concatenate(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpts", nargs=2, help="two checkpoints; frames are binned by the first one's 2D error")
    parser.add_argument("--names", nargs=2, default=["first", "second"])
    parser.add_argument("--data", default="experiments/data/synthetic.yaml")
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--bins", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/error_by_2d.json")
    args = parser.parse_args(argv)

    dm = data_module("stage3", args.data, args.config, [])
    dm.setup("test")
    errors = [per_frame_errors(c, dm.test_dataloader()) for c in args.ckpts]
    if len(errors[0]["err2d_px"]) != len(errors[1]["err2d_px"]):
        raise SystemExit("error_by_2d: the two checkpoints saw different numbers of frames")
    edges = np.quantile(errors[0]["err2d_px"], np.linspace(0, 1, args.bins + 1))
    index = np.clip(np.searchsorted(edges, errors[0]["err2d_px"], side="right") - 1, 0, args.bins - 1)
    a, b = args.names
    print(f"{'2D error bin (' + a + ', px)':<24}{'frames':>7}" + "".join(
        f"{n + ' ' + k:>16}" for n in (a, b) for k in ("2D px", "EPE", "PA-EPE")) + f"{'ΔPA-EPE':>10}")
    rows = []
    for i in range(args.bins):
        mask = index == i
        row = {"bin": [float(edges[i]), float(edges[i + 1])], "frames": int(mask.sum())}
        for name, err in zip(args.names, errors, strict=True):
            row[name] = {k: float(v[mask].mean()) for k, v in err.items()}
        row["delta_pa_epe_mm"] = row[b]["pa_epe_mm"] - row[a]["pa_epe_mm"]
        rows.append(row)
        print(f"{f'{edges[i]:.1f}–{edges[i + 1]:.1f}':<24}{row['frames']:>7}" + "".join(
            f"{row[n][k]:>16.2f}" for n in (a, b) for k in ("err2d_px", "epe_mm", "pa_epe_mm"))
            + f"{row['delta_pa_epe_mm']:>10.2f}")
    overall = {n: {k: float(v.mean()) for k, v in e.items()} for n, e in zip(args.names, errors, strict=True)}
    corr = {n: float(np.corrcoef(e["err2d_px"], e["pa_epe_mm"])[0, 1]) for n, e in zip(args.names, errors, strict=True)}
    print("all frames: " + "; ".join(f"{n} 2D {o['err2d_px']:.2f} px, EPE {o['epe_mm']:.1f}, PA-EPE "
                                      f"{o['pa_epe_mm']:.1f} mm, corr(2D, PA-EPE) {corr[n]:.2f}"
                                      for n, o in overall.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoints": dict(zip(args.names, args.ckpts, strict=True)), "bins": rows,
                               "overall": overall, "corr_2d_pa_epe": corr}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
