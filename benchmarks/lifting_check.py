"""Can the 3D estimators fit finger articulation at all? The mesh and pose estimators trained from perfect 2D.

The pre-training's models get the hand's global rotation and its 2D joints right but score a Procrustes-aligned
error (PA-EPE) barely under the mean pose's, on the training videos as well as on validation. This separates the
two suspects: it trains the PME's mesh estimator and pose estimator alone, as the pre-training does (its 3D terms
and weights, its optimiser and step size, cosine decay), but reading the **ground-truth heatmaps** of each frame
instead of the hourglass's (and zero hourglass features unless ``--features``), on the synthetic source training
videos. If they fit articulation from perfect 2D, what holds the pipeline back is the 2D it is given; if they do
not, it is the 3D estimators or their training. Prints and writes EPE, ST-EPE and PA-EPE on the validation videos
and on the first training videos, beside the mean pose's::

    python benchmarks/lifting_check.py --steps 960 [-- --model.init_args.net.init_args.mesh_keypoint_input=true]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_check import build, training_videos_loader  # noqa: E402 (sibling benchmark)
from mean_pose import mean_training_pose, score  # noqa: E402

ALIGNMENTS = {"epe_mm": "root_bone", "st_epe_mm": "scale_translation", "pa_epe_mm": "procrustes"}


def lift(net: Any, batch: Mapping[str, torch.Tensor], from_mesh: bool = False) -> tuple[Any, torch.Tensor]:
    """Mesh and pose of every frame from its ground-truth heatmaps (hourglass features zero); with ``from_mesh``
    the pose estimator reads the ground-truth mesh instead (is the mesh → pose step itself exact?)."""
    if isinstance(net, KeypointLifter):
        return None, net(batch)
    if from_mesh:
        from tassn.hand.normalize import normalize_3d

        mesh, _, _ = normalize_3d(batch["mesh3d"].flatten(0, 1), batch["kp3d"].flatten(0, 1))
        return mesh, net.pose(mesh)
    heat = batch["heatmaps"].flatten(0, 1)
    features = heat.new_zeros(heat.shape[0], net.mesh.encoder.feature_conv.in_channels, *heat.shape[-2:])
    mesh = net.mesh(heat, features, None)
    return mesh, net.pose(mesh)


class KeypointLifter(torch.nn.Module):
    """For scale: a plain lifting network, ground-truth 2D keypoints (crop, in [-1, 1]) → the 21 joints, two
    hidden layers of 512 with ReLU. Same data, loss and optimiser as the estimators beside it."""

    def __init__(self, joints: int = 21, hidden: int = 512):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(2 * joints, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, 3 * joints),
        )

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        kp = batch["kp2d"].flatten(0, 1) / batch["frames"].shape[-1] * 2 - 1
        return self.layers(kp.flatten(1)).view(kp.shape[0], -1, 3)


def evaluate(net: Any, loader: Any, from_mesh: bool = False, regressor: Any = None) -> dict[str, float]:
    """EPE, ST-EPE and PA-EPE (mm) of the lifted poses over a loader's frames; with ``regressor`` (a hand
    template) also the PA-EPE of the joints its regressor reads off the predicted mesh (``mesh_pa_epe_mm``): is
    the articulation in the mesh and lost by the pose estimator, or never in the mesh?"""
    from tassn.metrics import PoseMetrics3D

    metrics = {name: PoseMetrics3D(alignment=alignment) for name, alignment in ALIGNMENTS.items()}
    mesh_metric = PoseMetrics3D(alignment="procrustes")
    net.eval()
    with torch.no_grad():
        for batch in loader:
            mesh, pose = lift(net, batch, from_mesh)
            target = batch["kp3d"].flatten(0, 1)
            for metric in metrics.values():
                metric.update(pose, target)
            if regressor is not None and mesh is not None:
                mesh_metric.update(regressor.regress_joints(mesh), target)
    net.train()
    out = {name: round(float(metric.compute()["epe_mm"]), 2) for name, metric in metrics.items()}
    if regressor is not None and not from_mesh and not isinstance(net, KeypointLifter):
        out["mesh_pa_epe_mm"] = round(float(mesh_metric.compute()["epe_mm"]), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=960)
    parser.add_argument("--every", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-videos", type=int, default=8)
    parser.add_argument("--from-mesh", action="store_true",
                        help="train and score the pose estimator alone, on the ground-truth meshes")
    parser.add_argument("--save", type=Path, help="write the trained mesh and pose estimators' weights here "
                        "(for learning_check.py --init-3d)")
    parser.add_argument("--keypoint-lifter", action="store_true",
                        help="for scale: a plain lifting network from the ground-truth 2D keypoints instead")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lifting_check.json"))
    args = parser.parse_args(argv)

    from tassn.hand.normalize import normalize_3d
    from tassn.losses import squared_error

    torch.manual_seed(args.seed)
    cli = build("pretrain", "cpu", None, [f"--seed_everything={args.seed}", *extra])
    model, dm = cli.model, cli.datamodule
    dm.prepare_data()
    dm.setup("fit")
    net = KeypointLifter() if args.keypoint_lifter else model.net
    train_loader, val_loader = dm.train_dataloader(), dm.val_dataloader()
    fitted_loader = training_videos_loader(dm, args.train_videos)
    mean_val = score(*mean_training_pose(dm.train_dataloader()), val_loader)["metrics"]
    baseline = {k: round(float(mean_val[k]), 2) for k in ALIGNMENTS if k in mean_val}
    if args.keypoint_lifter:
        params = list(net.parameters())
    else:
        params = [p for m in ((net.pose,) if args.from_mesh else (net.mesh, net.pose)) for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=model.lr, weight_decay=model.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    print(f"mean pose (val): {baseline}", flush=True)
    from tassn.hand.template import load_template

    template = load_template("procedural")  # the CPU recipe's hand; its joint regressor reads joints off a mesh
    regressor = template if template.num_vertices == model.net.hierarchy.num_template_vertices else None

    records: list[dict[str, Any]] = []
    step = 0
    while step < args.steps:
        for batch in train_loader:
            mesh, pose = lift(net, batch, args.from_mesh)
            pose_gt, _, _ = normalize_3d(batch["kp3d"].flatten(0, 1))
            mesh_gt, _, _ = normalize_3d(batch["mesh3d"].flatten(0, 1), batch["kp3d"].flatten(0, 1))
            loss_pose = squared_error(pose, pose_gt)
            loss_mesh = squared_error(mesh, mesh_gt) if mesh is not None else torch.zeros(())
            loss = model.lambda_pose * loss_pose + (0.0 if mesh is None or args.from_mesh else model.lambda_mesh) * loss_mesh
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % args.every == 0 or step == args.steps:
                rec = {"step": step, "loss_pose3d": float(loss_pose.detach()), "loss_mesh3d": float(loss_mesh.detach()),
                       "val": evaluate(net, val_loader, args.from_mesh, regressor),
                       "train_videos": evaluate(net, fitted_loader, args.from_mesh, regressor)}
                records.append(rec)
                print(f"step {step:5d} loss_pose3d={rec['loss_pose3d']:.3g} loss_mesh3d={rec['loss_mesh3d']:.3g}"
                      f" | val {rec['val']} | first {args.train_videos} training videos {rec['train_videos']}",
                      flush=True)
            if step >= args.steps:
                break
    if args.save and not args.keypoint_lifter:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"mesh": net.mesh.state_dict(), "pose": net.pose.state_dict()}, args.save)
        print(f"wrote {args.save}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"steps": args.steps, "seed": args.seed, "from_mesh": args.from_mesh,
              "keypoint_lifter": args.keypoint_lifter, "cli_args": extra, "mean_pose_val": baseline,
              "records": records}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
