"""Stage 1 (paper §4.3): train the heatmap estimator alone with L_h on the target videos.

Flow, mesh and pose are frozen; no 3D label is read (the batch's 3D entries are dropped before the step). The
network may start from the pre-training (``init_from``), as TASSN's starts from Ge et al.'s released model, whose
hourglass is trained too; the recipe (Makefile) does so, which adapts the source-domain heatmaps to the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from tassn.losses import heatmap_loss
from tassn.nets.pme import PME
from tassn.stages.base import LRSchedule, StageModule, without_3d


class Stage1(StageModule):
    """``L = L_h`` (Eq. 1) over every frame of the clip, run forward.

    Args:
        net, lr, weight_decay, lr_schedule, train_modules, init_from, init_from_stages, pck2d_threshold: see
            :class:`~tassn.stages.base.StageModule` (by default only ``heatmap`` trains; ``init_from`` accepts a
            pre-training or a stage-1 checkpoint).
    """

    stage: ClassVar[str] = "stage1"
    default_train_modules: ClassVar[tuple[str, ...]] = ("heatmap",)
    default_init_stages: ClassVar[tuple[str, ...]] = ("pretrain", "stage1")

    def __init__(
        self,
        net: PME,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        lr_schedule: LRSchedule = "constant",
        train_modules: Sequence[str] | None = None,
        init_from: str | None = None,
        init_from_stages: Sequence[str] | None = None,
        pck2d_threshold: float = 5.0,
    ) -> None:
        super().__init__(net, lr, weight_decay, lr_schedule, train_modules, init_from, init_from_stages, pck2d_threshold)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        batch = without_3d(batch)
        out = self.run_training(batch)
        loss_h = heatmap_loss(out.heatmaps, batch["heatmaps"], batch["visible"])
        self.log_losses({"loss": loss_h, "loss_h": loss_h}, batch_size=batch["frames"].shape[0])
        return loss_h
