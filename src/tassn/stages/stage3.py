"""Stage 3 (TASSN, paper Eq. 6): end-to-end over clips in forward and reversed order, without 3D labels.

``L = λs·L_m + λh·L_h + λc^p·L_c^p + λc^m·L_c^m``: the heatmap and silhouette terms are averaged over both
directions, the temporal consistency terms compare the two directions frame by frame (Eq. 3–5). The paper's
ablations set ``lambda_c_pose = lambda_c_mesh = 0`` (w/o L_c) or ``lambda_c_mesh = 0`` (w/o L_c^m).

Both directions' silhouettes are rendered in one renderer call. ``batch_directions`` also runs the two directions
as one PME call over a doubled batch (fewer, larger operations); equal to two passes in eval mode, but in train mode
BatchNorm then normalises each frame step over both directions' frames together (and updates its running
statistics once per step instead of twice), so the default keeps the paper's two passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from tassn.losses import LossTerms, LossWeights, total_loss_terms
from tassn.nets.pme import PME, PMEOutput
from tassn.stages.silhouette import SilhouetteStage


class Stage3(SilhouetteStage):
    """TASSN: forward and reversed temporal measurement with temporal consistency.

    Args:
        lambda_s, lambda_h: weights of L_m and L_h (paper: 0.1 and 1).
        lambda_c_pose, lambda_c_mesh: weights of L_c^p and L_c^m (paper: 10 and 10).
        consistency_keeps_scale: L_c^p and L_c^m keep their values but lose the gradient component that shrinks
            both directions' hand together (``tassn.losses.without_common_scale_gradient``); off: Eq. 3–4 as printed.
        batch_directions: run the forward and reversed clip as one PME call over a doubled batch (see the module
            doc: BatchNorm statistics in train mode differ from two passes); default two passes.
        net, **kwargs: see :class:`~tassn.stages.silhouette.SilhouetteStage` (``renderer``) and
            :class:`~tassn.stages.base.StageModule` (``init_from``: a stage-2 checkpoint; by default heatmap, mesh
            and pose train).
    """

    stage: ClassVar[str] = "stage3"
    default_train_modules: ClassVar[tuple[str, ...]] = ("heatmap", "mesh", "pose")
    default_init_stages: ClassVar[tuple[str, ...]] = ("stage2", "stage3")
    #: the hourglass's statistics too: trained on both directions, their re-estimation cost 2D and 3D (ninth round)
    default_fixed_norm_stats: ClassVar[tuple[str, ...]] = ("heatmap", "mesh")

    def __init__(
        self,
        net: PME,
        lambda_s: float = 0.1,
        lambda_h: float = 1.0,
        lambda_c_pose: float = 10.0,
        lambda_c_mesh: float = 10.0,
        consistency_keeps_scale: bool = False,
        batch_directions: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, lambda_s=lambda_s, lambda_h=lambda_h, **kwargs)
        self.keep_loss_weights(lambda_c_pose=lambda_c_pose, lambda_c_mesh=lambda_c_mesh)
        self.consistency_keeps_scale = bool(consistency_keeps_scale)
        self.batch_directions = bool(batch_directions)

    @property
    def loss_weights(self) -> LossWeights:
        """λh, λs, λc^p, λc^m as ``tassn.losses.LossWeights``."""
        return LossWeights(self.lambda_h, self.lambda_s, self.lambda_c_pose, self.lambda_c_mesh)

    def run_both_directions(self, batch: Mapping[str, Any]) -> tuple[PMEOutput, PMEOutput]:
        """The clip's forward and reversed temporal measurement (both in clip order): two PME passes, or one over
        the clip and its time-reversed copy stacked along the batch (``batch_directions``)."""
        if not self.batch_directions:
            return self.run_training(batch), self.run_training(batch, reverse=True)
        frames = batch["frames"]
        b = frames.shape[0]
        teacher = None
        if self.net.teacher_forcing:  # independent label noise per direction, as two passes draw it
            kp2d, visible = batch["kp2d"], batch["visible"]
            teacher = self.net.teacher(torch.cat([kp2d, kp2d]), torch.cat([visible, visible]))
            teacher = torch.cat([teacher[:b], teacher[b:].flip(1)])
        both = self.net.run(torch.cat([frames, frames.flip(1)]), teacher=teacher)
        return PMEOutput(*(x[:b] for x in both)), PMEOutput(*(x[b:].flip(1) for x in both))

    def loss_terms(self, batch: Mapping[str, Any]) -> LossTerms:
        forward, reversed_ = self.run_both_directions(batch)  # reversed temporal measurement, in clip order

        def both(x: torch.Tensor) -> torch.Tensor:  # targets of the forward and then the reversed predictions
            return torch.cat([x, x])

        return total_loss_terms(  # Eq. 6: L = λs·L_m + λh·L_h + λc^p·L_c^p + λc^m·L_c^m
            self.loss_weights,
            heatmaps=torch.cat([forward.heatmaps, reversed_.heatmaps]),
            heatmap_targets=both(batch["heatmaps"]),
            visible=both(batch["visible"]),
            silhouettes=lambda: self.render_silhouettes(forward, reversed_, batch=batch),  # one renderer call
            silhouette_targets=lambda: both(self.grabcut_silhouettes(batch)),
            pose=forward.pose,
            pose_reversed=reversed_.pose,
            mesh=forward.mesh,
            mesh_reversed=reversed_.mesh,
            consistency_keeps_scale=self.consistency_keeps_scale,
        )

    def variant(self) -> str:
        if self.lambda_c_pose == 0 and self.lambda_c_mesh == 0:
            return "TASSN w/o L_c"
        if self.lambda_c_mesh == 0:
            return "TASSN w/o L_c^m"
        if self.lambda_c_pose == 0:
            return "TASSN w/o L_c^p"
        return "TASSN"
