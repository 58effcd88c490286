"""Stage 1 (paper §4.3): train the heatmap estimator alone with L_h on the target videos.

Flow, mesh and pose are frozen; no 3D label is read (the batch's 3D entries are dropped before the step). The
network may start from the pre-training (``init_from``), as TASSN's starts from Ge et al.'s released model, whose
hourglass is trained too; the recipe (Makefile) does so, which adapts the source-domain heatmaps to the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tassn.losses import LossTerms, heatmap_loss
from tassn.stages.base import StageModule


class Stage1(StageModule):
    """``L = L_h`` (Eq. 1) over every frame of the clip, run forward.

    Args:
        net, **kwargs: see :class:`~tassn.stages.base.StageModule` (by default only ``heatmap`` trains;
            ``init_from`` accepts a pre-training or a stage-1 checkpoint).
    """

    stage: ClassVar[str] = "stage1"
    default_train_modules: ClassVar[tuple[str, ...]] = ("heatmap",)
    default_init_stages: ClassVar[tuple[str, ...]] = ("pretrain", "stage1")
    trains_on_3d_outputs: ClassVar[bool] = False  # L_h alone: the frozen mesh and pose are not run in training

    def loss_terms(self, batch: Mapping[str, Any]) -> LossTerms:
        out = self.run_training(batch)
        return {"loss_h": (1.0, lambda: heatmap_loss(out.heatmaps, batch["heatmaps"], batch["visible"]))}
