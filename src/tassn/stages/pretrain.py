"""Pre-training with full 3D supervision on the synthetic source domain.

TASSN starts its mesh GCN from the model Ge et al. released (trained with 3D mesh labels, §4.3); that model's
weights and mesh are under a non-commercial licence, so this stage trains our own stand-in: heatmaps, mesh and pose
on the synthetic ``source`` videos, whose 3D labels may be used. Stage 2 takes its mesh and pose estimators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tassn.hand.normalize import normalize_3d
from tassn.losses import LossTerms, heatmap_loss, squared_error
from tassn.nets.pme import PME
from tassn.stages.base import StageModule


class Pretrain(StageModule):
    """``L = λh·L_h + λp·‖p − p̄‖² + λm·‖m − m̄‖²`` with ``p̄, m̄`` the 3D labels, root-relative and scale-normalised.

    The squared errors are summed over joints / vertices and averaged over frames, like L_c (Eq. 3–4); the
    heatmap term is L_h (Eq. 1).

    Args:
        lambda_h, lambda_pose, lambda_mesh: weights of the three terms (the mesh term sums over every vertex, about
            50 times as many points as the pose term, hence its smaller default weight).
        lifting_every: run (and train) the mesh and pose estimators on every n-th optimiser step only; the steps
            between train the heatmaps alone with L_h. With ``net.mesh_grad_to_heatmap = 0`` (the recipe) the 3D
            terms never reach the hourglass, so L_h and its gradient are the same either way, the 3D estimators take one
            step in n (over the whole learning-rate schedule), and a heatmaps-only step costs about a stage-1 step:
            the hourglass can be given more steps than the 3D estimators need for the same time.
        net, **kwargs: see :class:`~tassn.stages.base.StageModule` (by default heatmap, mesh and pose train).
    """

    stage: ClassVar[str] = "pretrain"
    default_train_modules: ClassVar[tuple[str, ...]] = ("heatmap", "mesh", "pose")
    default_init_stages: ClassVar[tuple[str, ...]] = ("pretrain",)
    reads_3d_labels: ClassVar[bool] = True

    def __init__(
        self,
        net: PME,
        lambda_h: float = 1.0,
        lambda_pose: float = 1.0,
        lambda_mesh: float = 0.1,
        lifting_every: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, **kwargs)
        self.keep_loss_weights(lambda_h=lambda_h, lambda_pose=lambda_pose, lambda_mesh=lambda_mesh)
        if lifting_every < 1:
            raise ValueError(f"Pretrain: lifting_every (optimiser steps per 3D step) must be ≥ 1, got {lifting_every}")
        self.lifting_every = lifting_every
        self._steps_alone = 0  # training steps taken outside a Trainer (a plain loop has no global_step)

    def lifts_this_step(self) -> bool:
        """Whether this training step runs the mesh and pose estimators (every ``lifting_every``-th optimiser step;
        outside a Trainer, every ``lifting_every``-th call)."""
        if self._trainer is not None:
            return self.global_step % self.lifting_every == 0
        self._steps_alone += 1
        return (self._steps_alone - 1) % self.lifting_every == 0

    def loss_terms(self, batch: Mapping[str, Any]) -> LossTerms:
        missing = [k for k in ("kp3d", "mesh3d") if k not in batch]
        if missing:
            raise KeyError(
                f"Pretrain needs 3D labels in training batches, missing {missing}: train on the synthetic source "
                "domain with data.init_args.serve_3d_in_train: true (experiments/data/synthetic_source.yaml)"
            )
        lifts = self.lifts_this_step()
        out = self.run_training(batch, with_3d=lifts)
        terms: LossTerms = {
            "loss_h": (self.lambda_h, lambda: heatmap_loss(out.heatmaps, batch["heatmaps"], batch["visible"])),
        }
        if lifts:
            pose_gt, _, _ = normalize_3d(batch["kp3d"])
            mesh_gt, _, _ = normalize_3d(batch["mesh3d"], batch["kp3d"])
            terms["loss_pose3d"] = (self.lambda_pose, lambda: squared_error(out.pose, pose_gt))
            terms["loss_mesh3d"] = (self.lambda_mesh, lambda: squared_error(out.mesh, mesh_gt))
        return terms
