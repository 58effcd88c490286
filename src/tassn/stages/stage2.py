"""Stage 2 (paper §4.3): heatmaps and mesh fine-tuned together with L_h + λs·L_m, without 3D labels.

The heatmap estimator comes from stage 1, the mesh and pose estimators from the pre-training (our stand-in for the
model of Ge et al.). L_m (Eq. 2) compares the predicted mesh's rendered silhouette with the GrabCut silhouette: the
mesh is placed in the crop by the weak-perspective camera that best maps the predicted pose's joints onto the 2D
labels, so only the 2D labels decide where the hand is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from tassn.losses import LossWeights, total_loss
from tassn.nets.pme import PME, PMEOutput
from tassn.render import SilhouetteRenderer, fit_weak_perspective
from tassn.stages.base import LRSchedule, StageModule, without_3d


class SilhouetteStage(StageModule):
    """A stage with a silhouette term: owns the renderer and computes L_m of a clip's predictions.

    Args:
        lambda_s, lambda_h: weights of L_m and L_h.
        renderer: the silhouette renderer (default: ``SilhouetteRenderer(net.image_size)``).
        net, lr, weight_decay, lr_schedule, train_modules, init_from, init_from_stages, pck2d_threshold: see
            :class:`~tassn.stages.base.StageModule`.
    """

    def __init__(
        self,
        net: PME,
        lambda_s: float = 0.1,
        lambda_h: float = 1.0,
        renderer: SilhouetteRenderer | None = None,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        lr_schedule: LRSchedule = "constant",
        train_modules: Sequence[str] | None = None,
        init_from: str | None = None,
        init_from_stages: Sequence[str] | None = None,
        pck2d_threshold: float = 5.0,
    ) -> None:
        super().__init__(net, lr, weight_decay, lr_schedule, train_modules, init_from, init_from_stages, pck2d_threshold)
        if lambda_s < 0 or lambda_h < 0:
            raise ValueError(f"{type(self).__name__}: loss weights must be ≥ 0, got λs={lambda_s}, λh={lambda_h}")
        self.lambda_s = lambda_s
        self.lambda_h = lambda_h
        self.renderer = renderer if renderer is not None else SilhouetteRenderer(net.image_size)

    def render_silhouettes(self, out: PMEOutput, batch: Mapping[str, Any]) -> torch.Tensor:
        """Silhouettes ``B×T×1×S×S`` of the predicted meshes, placed by the camera fitted to the 2D labels.

        The camera is fitted to the detached pose: L_m shapes the mesh, it does not move the camera.
        """
        b, t = out.mesh.shape[:2]
        camera = fit_weak_perspective(
            out.pose.detach().flatten(0, 1), batch["kp2d"].flatten(0, 1), batch["visible"].flatten(0, 1)
        )
        vertices = camera.project(out.mesh.flatten(0, 1))
        rendered = self.renderer(vertices, self.net.template_faces)
        return rendered.unflatten(0, (b, t))

    def grabcut_silhouettes(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The batch's GrabCut ``silhouettes B×T×1×S×S``: the targets of L_m."""
        if "silhouettes" not in batch:
            raise KeyError(
                f"{type(self).__name__} needs GrabCut silhouettes in training batches: "
                "set data.init_args.silhouettes: true"
            )
        return batch["silhouettes"]


class Stage2(SilhouetteStage):
    """``L = λh·L_h + λs·L_m`` over every frame of the clip, run forward.

    Args:
        init_heatmap_from: a stage-1 checkpoint whose ``flow`` and ``heatmap`` weights start this stage.
        init_mesh_from: a pre-training checkpoint whose ``mesh`` and ``pose`` weights start this stage.
        init_heatmap_stages, init_mesh_stages: the stages those checkpoints may come from.
        lambda_s, lambda_h, renderer, net, lr, weight_decay, lr_schedule, train_modules, init_from, init_from_stages,
            pck2d_threshold: see :class:`SilhouetteStage` (by default heatmap and mesh train; ``init_from``, the
            whole network, is applied first, e.g. to continue from another stage-2 checkpoint).
    """

    stage: ClassVar[str] = "stage2"
    default_train_modules: ClassVar[tuple[str, ...]] = ("heatmap", "mesh")
    default_init_stages: ClassVar[tuple[str, ...]] = ("stage2",)

    def __init__(
        self,
        net: PME,
        init_heatmap_from: str | None = None,
        init_mesh_from: str | None = None,
        init_heatmap_stages: Sequence[str] = ("stage1",),
        init_mesh_stages: Sequence[str] = ("pretrain",),
        lambda_s: float = 0.1,
        lambda_h: float = 1.0,
        renderer: SilhouetteRenderer | None = None,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        lr_schedule: LRSchedule = "constant",
        train_modules: Sequence[str] | None = None,
        init_from: str | None = None,
        init_from_stages: Sequence[str] | None = None,
        pck2d_threshold: float = 5.0,
    ) -> None:
        super().__init__(
            net, lambda_s, lambda_h, renderer, lr, weight_decay, lr_schedule, train_modules, init_from,
            init_from_stages, pck2d_threshold,
        )
        self.init_heatmap_from = init_heatmap_from
        self.init_mesh_from = init_mesh_from
        self.init_heatmap_stages = tuple(init_heatmap_stages)
        self.init_mesh_stages = tuple(init_mesh_stages)

    def init_sources(self) -> list[tuple[str, Sequence[str], Sequence[str] | None]]:
        sources = super().init_sources()
        if self.init_heatmap_from is not None:
            sources.append((self.init_heatmap_from, self.init_heatmap_stages, ("flow", "heatmap")))
        if self.init_mesh_from is not None:
            sources.append((self.init_mesh_from, self.init_mesh_stages, ("mesh", "pose")))
        return sources

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        batch = without_3d(batch)
        out = self.run_training(batch)
        losses = total_loss(  # L = λh·L_h + λs·L_m
            LossWeights(heatmap=self.lambda_h, silhouette=self.lambda_s, pose_consistency=0, mesh_consistency=0),
            heatmaps=out.heatmaps,
            heatmap_targets=batch["heatmaps"],
            visible=batch["visible"],
            silhouettes=lambda: self.render_silhouettes(out, batch),
            silhouette_targets=lambda: self.grabcut_silhouettes(batch),
        )
        self.log_losses(losses, batch_size=batch["frames"].shape[0])
        return losses["loss"]
