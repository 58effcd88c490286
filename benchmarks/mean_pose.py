"""The mean-pose baseline: every frame predicted as the mean pose of the synthetic source's training videos.

A model that has learnt nothing about the image scores this, so every results row is read against it. The 3D
pose is the mean of the source training poses, root-relative and scale-normalised (the networks' output space);
the 2D keypoints are the mean source training keypoints in crop pixels. Both are scored by the metric code of
``tassn test`` (:class:`~tassn.stages.evaluation.EvaluationMetrics`): EPE and AUCs under the root and
reference-bone alignment, ST-/PA-EPE, 2D PCK, and ACCEL and jitter over whole videos. Writes
``test_results.json`` in the format ``tassn test`` writes, so the ablation report reads it like any other row::

    python benchmarks/mean_pose.py --out runs/ablation/seed-0/synthetic-cpu/eval-mean_pose \
        [--data experiments/data/synthetic.yaml] [--config cpu] [-- --data.init_args.root=…]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch


def data_module(stage: str, data: str, config: str, extra: list[str]) -> Any:
    """The data module ``tassn fit`` builds for ``stage`` with these files (prepared, set up for fit and test)."""
    from tassn.cli import TassnCLI

    files = [f"experiments/{stage}.yaml", data, f"experiments/{config}.yaml"]
    if Path(f"experiments/{config}/{stage}.yaml").exists():
        files.append(f"experiments/{config}/{stage}.yaml")
    cli = TassnCLI(args=[a for f in files for a in ("--config", f)] + ["--trainer.logger=false", *extra], run=False)
    dm = cli.datamodule
    dm.prepare_data()
    return dm


def mean_training_pose(batches: Iterable[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean normalised 3D pose ``21×3`` and mean 2D keypoints ``21×2`` (crop px) over every training frame."""
    from tassn.hand.normalize import normalize_3d

    poses, points, seen = [], [], []
    for batch in batches:
        poses.append(normalize_3d(batch["kp3d"])[0].flatten(0, 1))
        points.append(batch["kp2d"].flatten(0, 1))
        seen.append(batch["visible"].flatten(0, 1))
    if not poses:
        raise ValueError("the source training split is empty")
    visible = torch.cat(seen).to(torch.float64).unsqueeze(-1)
    kp2d = (torch.cat(points).to(torch.float64) * visible).sum(0) / visible.sum(0).clamp_min(1)
    return torch.cat(poses).mean(0), kp2d.float()


def score(pose: torch.Tensor, kp2d: torch.Tensor, batches: Iterable[Mapping[str, Any]],
          pck2d_threshold: float = 5.0) -> dict[str, Any]:
    """The constant prediction ``(pose, kp2d)`` on every frame of ``batches``, scored by ``tassn test``'s own
    :class:`~tassn.stages.evaluation.EvaluationMetrics`: EPE, AUCs, ST-/PA-EPE, 2D PCK, the PCK curve and, over
    whole videos, ACCEL and jitter. The pose is constant in the normalised space only: the EPE alignment gives it
    each frame's ground-truth root and reference-bone length, so its jitter is that of the ground truth's root and
    scale, and its ACCEL is the acceleration of the ground truth's root-relative, scale-normalised motion (equal to
    the ground truth's own jitter where root and scale stay still)."""
    from tassn.stages.evaluation import EvaluationMetrics

    metrics = EvaluationMetrics(pck2d_threshold=pck2d_threshold)
    for batch in batches:
        frames = batch["visible"].shape[:2]  # B×T
        metrics.update_keypoints2d(kp2d.expand(frames.numel(), *kp2d.shape), batch)
        metrics.update_pose(pose.expand(*frames, *pose.shape), batch)
    result = metrics.compute()
    return {"metrics": {k: float(v) for k, v in result["scalars"].items()}, "pck_curve": result["curve"]}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for test_results.json")
    parser.add_argument("--data", default="experiments/data/synthetic.yaml", help="the target data config")
    parser.add_argument("--config", default="cpu", help="sizes overlay experiments/<config>.yaml")
    parser.add_argument("--source", default="experiments/data/synthetic_source.yaml", help="the source data config")
    args = parser.parse_args(argv)

    source = data_module("pretrain", args.source, args.config, [])
    source.setup("fit")
    pose, kp2d = mean_training_pose(source.train_dataloader())
    target = data_module("stage3", args.data, args.config, extra)
    target.setup("test")
    result = score(pose, kp2d, target.test_dataloader())
    payload = {"stage": "mean_pose", "variant": "mean pose (source training)", "dataset": args.data,
               "checkpoint": None, **result, "pck_curve_png": None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "test_results.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"mean-pose baseline on the test split: {result['metrics']} → {args.out / 'test_results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
