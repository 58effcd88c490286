"""What can the temporal consistency terms buy? Forward, reversed and averaged predictions, and the hand's size.

L_c^p and L_c^m pull each frame's forward and reversed-order predictions together. This scores trained
checkpoints (stage 2 or stage 3) on a split three ways — the clip run forward (what every table reports), run
reversed, and the mean of the two directions' outputs — which bounds what agreement alone can add, and measures the
predicted hand's size (mean distance of the 21 joints to the wrist, in reference-bone units) against the ground
truth's. A squared difference between two predictions falls with the square of their size, so a consistency term
can lower itself by shrinking the hand; the ``rescaled`` EPE multiplies the poses by the one factor that brings the
mean size to the ground truth's (a diagnostic that reads the labels, not a method). Writes ``<out>``::

    python benchmarks/direction_check.py runs/ablation/seed-0/synthetic-cpu/stage{2,3-no_lc,3}/checkpoints/last.ckpt

Validation by default; ``--split test`` only to explain a table already made, never to choose.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_check import build  # noqa: E402 (the sibling benchmark's stage builder)

REPORTED = ("epe_mm", "st_epe_mm", "pa_epe_mm", "pck2d", "accel_mm")


def hand_size(pose: torch.Tensor) -> torch.Tensor:
    """Mean joint distance to the wrist (joint 0) of poses ``…×21×3``, per pose."""
    return (pose - pose[..., :1, :]).norm(dim=-1).mean(dim=-1)


def score_checkpoint(ckpt: Path, split: str, config: str) -> dict[str, Any]:
    from tassn.hand.normalize import reference_bone_length
    from tassn.nets.pme import PMEOutput

    cli = build("stage3", config, None, [f"--model.init_args.init_from={ckpt}"])
    model, dm = cli.model, cli.datamodule
    dm.setup("fit" if split == "val" else "test")
    model.setup("fit")
    model.eval()
    loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
    runs: list[tuple[dict[str, PMEOutput], Any]] = []
    with torch.no_grad():
        for batch in loader:
            fwd, rev = model.net.run(batch["frames"]), model.net.run(batch["frames"], reverse=True)
            mean = PMEOutput(*((a + b) / 2 for a, b in zip(fwd, rev, strict=True)))
            runs.append(({"forward": fwd, "reversed": rev, "mean of both": mean}, batch))
    predicted = torch.cat([hand_size(outs["forward"].pose).flatten() for outs, _ in runs]).mean()
    truth = torch.cat([
        hand_size(b["kp3d"] / reference_bone_length(b["kp3d"])[..., None, None]).flatten() for _, b in runs
    ]).mean()
    factor = float(truth / predicted)
    rows: dict[str, dict[str, float]] = {}
    for name, scale in (("forward", 1.0), ("reversed", 1.0), ("mean of both", 1.0), ("forward rescaled", factor)):
        metrics = copy.deepcopy(model.val_metrics)
        source = name.replace(" rescaled", "")
        for outs, batch in runs:
            out = outs[source]
            metrics.update(out._replace(pose=out.pose * scale), batch)
        scalars = metrics.compute()["scalars"]
        rows[name] = {k: round(float(scalars[k]), 3) for k in REPORTED if k in scalars}
    return {"checkpoint": str(ckpt), "split": split, "hand_size": round(float(predicted), 4),
            "hand_size_truth": round(float(truth), 4), "rescale_factor": round(factor, 4), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--config", default="cpu", help="sizes overlay experiments/<config>.yaml")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/direction_check.json"))
    args = parser.parse_args(argv)
    missing = [str(c) for c in args.checkpoints if not c.is_file()]
    if missing:
        parser.error(f"no such checkpoint: {', '.join(missing)}")
    torch.set_num_threads(1)
    results = [score_checkpoint(c, args.split, args.config) for c in args.checkpoints]
    print(f"| checkpoint ({args.split}) | predictions | EPE | ST-EPE | PA-EPE | 2D PCK@5px | ACCEL | hand size / truth |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        name = "/".join(Path(r["checkpoint"]).parts[-5:-2])
        for row, m in r["rows"].items():
            size = f"{r['hand_size']:.3f} / {r['hand_size_truth']:.3f}" if row == "forward" else ""
            print(f"| {name} | {row} | {m['epe_mm']:.2f} | {m['st_epe_mm']:.2f} | {m['pa_epe_mm']:.2f} | "
                  f"{m['pck2d']:.3f} | {m['accel_mm']:.2f} | {size} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
