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
        net, **kwargs: see :class:`~tassn.stages.base.StageModule` (by default heatmap, mesh and pose train).
    """

    stage: ClassVar[str] = "pretrain"
    default_train_modules: ClassVar[tuple[str, ...]] = ("heatmap", "mesh", "pose")
    default_init_stages: ClassVar[tuple[str, ...]] = ("pretrain",)
    reads_3d_labels: ClassVar[bool] = True

    def __init__(
        self, net: PME, lambda_h: float = 1.0, lambda_pose: float = 1.0, lambda_mesh: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(net, **kwargs)
        self.keep_loss_weights(lambda_h=lambda_h, lambda_pose=lambda_pose, lambda_mesh=lambda_mesh)

    def loss_terms(self, batch: Mapping[str, Any]) -> LossTerms:
        missing = [k for k in ("kp3d", "mesh3d") if k not in batch]
        if missing:
            raise KeyError(
                f"Pretrain needs 3D labels in training batches, missing {missing}: train on the synthetic source "
                "domain with data.init_args.serve_3d_in_train: true (experiments/data/synthetic_source.yaml)"
            )
        out = self.run_training(batch)
        pose_gt, _, _ = normalize_3d(batch["kp3d"])
        mesh_gt, _, _ = normalize_3d(batch["mesh3d"], batch["kp3d"])
        return {
            "loss_h": (self.lambda_h, lambda: heatmap_loss(out.heatmaps, batch["heatmaps"], batch["visible"])),
            "loss_pose3d": (self.lambda_pose, lambda: squared_error(out.pose, pose_gt)),
            "loss_mesh3d": (self.lambda_mesh, lambda: squared_error(out.mesh, mesh_gt)),
        }
