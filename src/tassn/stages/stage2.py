"""Stage 2 (paper §4.3): heatmaps and mesh fine-tuned together with L_h + λs·L_m, without 3D labels.

The heatmap estimator comes from stage 1, the mesh and pose estimators from the pre-training (our stand-in for the
model of Ge et al.). L_m (Eq. 2) compares the predicted mesh's rendered silhouette with the GrabCut silhouette
(:class:`~tassn.stages.silhouette.SilhouetteStage`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from tassn.losses import LossTerms, total_loss_terms
from tassn.nets.pme import PME
from tassn.stages.silhouette import SilhouetteStage


class Stage2(SilhouetteStage):
    """``L = λh·L_h + λs·L_m`` over every frame of the clip, run forward.

    Args:
        init_heatmap_from: a stage-1 checkpoint whose ``flow`` and ``heatmap`` weights start this stage.
        init_mesh_from: a pre-training checkpoint whose ``mesh`` and ``pose`` weights start this stage.
        init_heatmap_stages, init_mesh_stages: the stages those checkpoints may come from.
        net, **kwargs: see :class:`~tassn.stages.silhouette.SilhouetteStage` (``lambda_s``, ``lambda_h``,
            ``renderer``) and :class:`~tassn.stages.base.StageModule` (by default heatmap and mesh train;
            ``init_from``, the whole network, is applied first, e.g. to continue from another stage-2 checkpoint).
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
        **kwargs: Any,
    ) -> None:
        super().__init__(net, **kwargs)
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

    def loss_terms(self, batch: Mapping[str, Any]) -> LossTerms:
        out = self.run_training(batch)
        return total_loss_terms(  # L = λh·L_h + λs·L_m
            self.loss_weights,
            heatmaps=out.heatmaps,
            heatmap_targets=batch["heatmaps"],
            visible=batch["visible"],
            silhouettes=lambda: self.render_silhouettes(out, batch=batch),
            silhouette_targets=lambda: self.grabcut_silhouettes(batch),
        )
