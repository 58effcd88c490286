"""Does a stage learn? A short run of the real stage module on its real data, watched closely.

Builds the stage and its data module from the same experiment files as ``make`` (stage, data, sizes, schedule), then
trains it for ``--steps`` optimiser steps in a plain loop and, every ``--every`` steps, prints and records:
each loss term, each term's gradient norm into the heatmap estimator (which term pulls on the hourglass) and into
the whole network, and the validation split's 2D PCK@5px (and EPE in mm where the split has 3D labels) beside the
mean-pose baseline's EPE on the same split. At the end it draws the predicted and labelled keypoints of a few
validation frames into a PNG. Writes ``<out>/learning_check.json`` and ``<out>/keypoints.png``::

    python benchmarks/learning_check.py --stage pretrain --steps 360 --every 90 [-- --model.init_args.lr=3e-4 …]
    python benchmarks/learning_check.py --stage stage3 --weights runs/…/stage3/checkpoints/last.ckpt --steps 0 \
        --out /tmp/look      # no training: score a trained checkpoint and draw its keypoints

Arguments after ``--`` go to the CLI unchanged (any ``--config`` or ``--key=value`` of ``tassn fit``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mean_pose import mean_training_pose, score  # noqa: E402 (the sibling benchmark's baseline)

STAGE_DATA = {"pretrain": "experiments/data/synthetic_source.yaml"}


def build(stage: str, config: str, data: str | None, extra: list[str]) -> Any:
    """The stage module and data module as ``tassn fit`` would build them (nothing is run)."""
    from tassn.cli import TassnCLI

    files = [f"experiments/{stage}.yaml", data or STAGE_DATA.get(stage, "experiments/data/synthetic.yaml"),
             f"experiments/{config}.yaml"]
    schedule = Path(f"experiments/{config}/{stage}.yaml")
    if schedule.exists():
        files.append(str(schedule))
    args = [a for f in files for a in ("--config", f)] + ["--trainer.logger=false"] + extra
    return TassnCLI(args=args, run=False)


def grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))


def evaluate(model: Any, loader: Any) -> dict[str, float]:
    """The stage's own validation (the clip run recurrently, as at test time) and, as ``pck2d_alone``, 2D PCK of
    the same weights with ``H_t = 0`` on every frame: a gap between the two is what the fed-back heatmaps cost."""
    from tassn.heatmaps import heatmap_peaks, heatmap_to_crop
    from tassn.metrics import PCK2D

    alone = PCK2D(threshold=model.val_metrics.pck2d.threshold_px)
    model.eval()
    with torch.no_grad():
        for batch in loader:
            model._evaluate(batch, model.val_metrics)
            zeros = batch["heatmaps"].new_zeros(batch["heatmaps"].shape)
            heat = model.net.run(batch["frames"], teacher=zeros).heatmaps[:, :, -1].flatten(0, 1)
            kp = heatmap_to_crop(heatmap_peaks(heat)[0], batch["frames"].shape[-1] / heat.shape[-1])
            alone.update(kp, batch["kp2d"].flatten(0, 1), batch["visible"].flatten(0, 1))
    scalars = {k: float(v) for k, v in model.val_metrics.compute()["scalars"].items()}
    scalars["pck2d_alone"] = float(alone.compute())
    model.val_metrics.reset()
    model.train()
    return scalars


def training_videos_loader(dm: Any, count: int) -> Any:
    """The first ``count`` training videos served as validation serves its split (no augmentation, 3D labels): the
    same metrics on data the network was fitted to tell under-fitting (both low) from over-fitting (only val low)."""
    from data_modules.clips import ClipDataset
    from torch.utils.data import DataLoader

    videos = dm.load_videos("train")[:count]
    dataset = ClipDataset(videos, clip_len=dm.clip_len, clip_stride=dm.eval_clip_stride, crop=dm.crop,
                          heatmap_sigma=dm.heatmap_sigma, frame_step=dm.frame_step, serve_3d=True)
    return DataLoader(dataset, batch_size=dm.batch_size, shuffle=False)


def keypoint_png(model: Any, loader: Any, path: Path, frames: int = 6) -> None:
    """Predicted (left) and labelled (right) keypoints on the first frames of a few validation clips."""
    import cv2

    from tassn.heatmaps import heatmap_peaks, heatmap_to_crop
    from tassn.viz import draw_skeleton, frame_to_uint8

    batch = next(iter(loader))
    model.eval()
    with torch.no_grad():
        out = model.net.run(batch["frames"])
    model.train()
    heat = out.heatmaps[:, :, -1]
    kp = heatmap_to_crop(heatmap_peaks(heat)[0], batch["frames"].shape[-1] / heat.shape[-1])
    tiles = []
    for i in range(min(frames, batch["frames"].shape[0])):
        t = batch["frames"].shape[1] - 1  # the last frame of the clip: the one that saw the most feedback
        image = frame_to_uint8(batch["frames"][i, t].numpy())
        image = cv2.resize(image, (192, 192), interpolation=cv2.INTER_NEAREST)
        s = 192 / batch["frames"].shape[-1]
        pred = draw_skeleton(image, (kp[i, t].numpy() + 0.5) * s - 0.5)
        true = draw_skeleton(image, (batch["kp2d"][i, t].numpy() + 0.5) * s - 0.5, batch["visible"][i, t].numpy())
        tiles.append(np.concatenate([pred, true], axis=1))
    sheet = np.concatenate(tiles, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def save_stage_checkpoint(model: Any, stage: str, path: Path) -> None:
    """The weights laid out as ``tassn fit`` writes a stage's checkpoint (state dict and stage), for ``init_from``."""
    from tassn.stages.checkpoints import STAGE_KEY

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), STAGE_KEY: stage}, path)  # plain tensors: loads weights-only


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="pretrain", choices=["pretrain", "stage1", "stage2", "stage3"])
    parser.add_argument("--config", default="cpu", help="sizes overlay experiments/<config>.yaml (+ its schedule)")
    parser.add_argument("--data", default=None, help="data config (default: the stage's own)")
    parser.add_argument("--steps", type=int, default=360)
    parser.add_argument("--every", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-3d", type=Path, help="start the mesh and pose estimators from weights written by "
                        "lifting_check.py --save")
    parser.add_argument("--weights", type=Path, help="start from this trained checkpoint of the same stage (all "
                        "network weights, after any init_from; with --steps 0: score it and draw its keypoints)")
    parser.add_argument("--train-videos", type=int, default=8,
                        help="at the end, also score the first N training videos (0: skip)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning_check"))
    parser.add_argument("--save", type=Path, help="also write the trained weights as a stage checkpoint that a "
                        "later stage's init_from (or another check's --model.init_args.init_from=) reads")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    cli = build(args.stage, args.config, args.data, [f"--seed_everything={args.seed}", *extra])
    model, dm = cli.model, cli.datamodule
    dm.prepare_data()
    dm.setup("fit")
    model.setup("fit")
    if args.weights:
        from tassn.stages.checkpoints import load_net_from_checkpoint

        load_net_from_checkpoint(model.net, args.weights, (args.stage,))
    if args.init_3d:
        weights = torch.load(args.init_3d, map_location="cpu", weights_only=True)
        model.net.mesh.load_state_dict(weights["mesh"])
        model.net.pose.load_state_dict(weights["pose"])
    train_loader, val_loader = dm.train_dataloader(), dm.val_dataloader()
    baseline, baseline_pa = None, None
    if args.stage == "pretrain":  # the source split has 3D in training; other stages' baselines: make ablation
        mean_metrics = score(*mean_training_pose(dm.train_dataloader()), val_loader)["metrics"]
        baseline, baseline_pa = mean_metrics.get("epe_mm"), mean_metrics.get("pa_epe_mm")
    params = [p for p in model.net.parameters() if p.requires_grad]
    hourglass = [p for p in model.net.heatmap.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=model.lr, weight_decay=model.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    captured: dict[str, torch.Tensor] = {}
    model.log_losses = lambda losses, batch_size: captured.update(losses)  # the stage's own loss terms
    model.train()

    records: list[dict[str, Any]] = []
    start = evaluate(model, val_loader)
    print(f"step     0  val {start}  mean-pose EPE {baseline} PA-EPE {baseline_pa}")
    records.append({"step": 0, "val": start})
    step, t0 = 0, time.time()
    while step < args.steps:
        for batch in train_loader:
            captured.clear()
            loss = model.training_step(batch, step)
            step += 1
            watch = step % args.every == 0 or step == args.steps
            if watch:
                terms = {k: float(v.detach()) for k, v in captured.items()}
                pulls = {k: grad_norm(v, hourglass) for k, v in captured.items() if k != "loss" and v.requires_grad}
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            total = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None))
            optimizer.step()
            schedule.step()
            if watch:
                val = evaluate(model, val_loader)
                rec = {"step": step, "seconds": round(time.time() - t0, 1), "losses": terms,
                       "grad_norm_hourglass": pulls, "grad_norm_total": total, "val": val}
                records.append(rec)
                loss_txt = " ".join(f"{k}={v:.3g}" for k, v in terms.items())
                pull_txt = " ".join(f"{k}={v:.3g}" for k, v in pulls.items())
                print(f"step {step:5d} {rec['seconds']:7.0f}s  {loss_txt} | ∇hourglass {pull_txt} | ∇all {total:.3g}"
                      f" | val " + " ".join(f"{k}={v:.3f}" for k, v in val.items())
                      + (f" (mean pose: EPE {baseline:.1f}, PA-EPE {baseline_pa:.1f})" if baseline is not None else ""),
                      flush=True)
            if step >= args.steps:
                break
    fitted = None
    if args.train_videos > 0:
        fitted = evaluate(model, training_videos_loader(dm, args.train_videos))
        print(f"first {args.train_videos} training videos: " + " ".join(f"{k}={v:.3f}" for k, v in fitted.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    keypoint_png(model, val_loader, args.out / "keypoints.png")
    result = {"stage": args.stage, "config": args.config, "cli_args": extra,
              "weights": str(args.weights) if args.weights else None,
              "init_3d": str(args.init_3d) if args.init_3d else None, "steps": args.steps, "seed": args.seed,
              "mean_pose_epe_mm": baseline,
              "mean_pose_pa_epe_mm": baseline_pa, "records": records, "train_videos": fitted}
    (args.out / "learning_check.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.save:
        save_stage_checkpoint(model, args.stage, args.save)
    print(f"wrote {args.out / 'learning_check.json'} and {args.out / 'keypoints.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
