"""Pre-training with full 3D supervision on the synthetic source domain.

TASSN starts its mesh GCN from the model Ge et al. released (trained with 3D mesh labels, §4.3); that model's
weights and mesh are under a non-commercial licence, so this stage trains our own stand-in: heatmaps, mesh and pose
on the synthetic ``source`` videos, whose 3D labels may be used. Stage 2 takes its mesh and pose estimators.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from tassn.hand.normalize import normalize_3d
from tassn.losses import heatmap_loss, squared_error
from tassn.nets.pme import PME
from tassn.stages.base import LRSchedule, StageModule


class Pretrain(StageModule):
    """``L = λh·L_h + λp·‖p − p̄‖² + λm·‖m − m̄‖²`` with ``p̄, m̄`` the 3D labels, root-relative and scale-normalised.

    The squared errors are summed over joints / vertices and averaged over frames, like L_c (Eq. 3–4); the
    heatmap term is L_h (Eq. 1).

    Args:
        lambda_h, lambda_pose, lambda_mesh: weights of the three terms (the mesh term sums over every vertex, about
            50 times as many points as the pose term, hence its smaller default weight).
        net, lr, weight_decay, lr_schedule, train_modules, init_from, init_from_stages, pck2d_threshold: see
            :class:`~tassn.stages.base.StageModule` (by default heatmap, mesh and pose train).
    """

    stage: ClassVar[str] = "pretrain"
    default_train_modules: ClassVar[tuple[str, ...]] = ("heatmap", "mesh", "pose")
    default_init_stages: ClassVar[tuple[str, ...]] = ("pretrain",)

    def __init__(
        self,
        net: PME,
        lambda_h: float = 1.0,
        lambda_pose: float = 1.0,
        lambda_mesh: float = 0.1,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        lr_schedule: LRSchedule = "constant",
        train_modules: Sequence[str] | None = None,
        init_from: str | None = None,
        init_from_stages: Sequence[str] | None = None,
        pck2d_threshold: float = 5.0,
    ) -> None:
        super().__init__(net, lr, weight_decay, lr_schedule, train_modules, init_from, init_from_stages, pck2d_threshold)
        self.lambda_h = lambda_h
        self.lambda_pose = lambda_pose
        self.lambda_mesh = lambda_mesh

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        missing = [k for k in ("kp3d", "mesh3d") if k not in batch]
        if missing:
            raise KeyError(
                f"Pretrain needs 3D labels in training batches, missing {missing}: train on the synthetic source "
                "domain with data.init_args.serve_3d_in_train: true (experiments/data/synthetic_source.yaml)"
            )
        out = self.run_training(batch)
        pose_gt, _, _ = normalize_3d(batch["kp3d"])
        mesh_gt, _, _ = normalize_3d(batch["mesh3d"], batch["kp3d"])
        losses = {
            "loss_h": heatmap_loss(out.heatmaps, batch["heatmaps"], batch["visible"]),
            "loss_pose3d": squared_error(out.pose, pose_gt),
            "loss_mesh3d": squared_error(out.mesh, mesh_gt),
        }
        losses["loss"] = (
            self.lambda_h * losses["loss_h"]
            + self.lambda_pose * losses["loss_pose3d"]
            + self.lambda_mesh * losses["loss_mesh3d"]
        )
        self.log_losses(losses, batch_size=batch["frames"].shape[0])
        return losses["loss"]
