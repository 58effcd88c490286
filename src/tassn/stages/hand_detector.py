"""Training of the first-box hand detector (:mod:`tassn.nets.hand_detector`) on whole labelled frames.

Not a stage of the paper: TASSN predicts on crops around the hand and leaves finding the hand to the user; this
detector gives ``tassn predict --detector-ckpt`` its first box (``tassn train-detector``, ``make train-detector``).
The losses are CenterNet's: a focal loss on the centre heatmap against a Gaussian at the box's centre (σ an eighth
of the box's side in cells), and L1 on the centre's offset within its cell and on the log side, at that cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric

from tassn.nets.hand_detector import (
    CENTRE,
    LOG_SIDE,
    OFFSET_X,
    OFFSET_Y,
    STRIDE,
    HandBoxDetector,
    decode_boxes,
)
from tassn.stages.checkpoints import STAGE_KEY

#: The ``tassn_stage`` a detector checkpoint records (prediction refuses any other as a detector).
DETECTOR_STAGE = "detector"
#: The checkpoint's selection metric: the mean IoU of the strongest box with the true one (higher is better).
DETECTOR_MONITOR = "val/iou"


def box_cells(boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Boxes ``B×3`` (input px) → their centres in cell units ``B×2`` (pixel centre of cell i at ``i·4 + 1.5``) and
    their sides in cells ``B``."""
    return (boxes[:, :2] - (STRIDE - 1) / 2) / STRIDE, boxes[:, 2] / STRIDE


def centre_targets(boxes: Tensor, size: int, sigma_fraction: float = 0.125) -> Tensor:
    """``B×1×size×size`` Gaussians (peak 1) at each box's centre, σ = ``sigma_fraction`` × its side in cells (≥ ¾)."""
    centres, sides = box_cells(boxes)
    sigma = (sigma_fraction * sides).clamp(min=0.75)
    grid = torch.arange(size, dtype=boxes.dtype, device=boxes.device)
    dx = (grid[None, :] - centres[:, 0:1]) ** 2
    dy = (grid[None, :] - centres[:, 1:2]) ** 2
    heat = torch.exp(-(dy[:, :, None] + dx[:, None, :]) / (2 * sigma[:, None, None] ** 2))
    return heat[:, None]


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet's penalty-reduced focal loss, summed and divided by the number of centres (one per frame)."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    positive = target.ge(0.999).to(logits.dtype)
    pos = -F.logsigmoid(logits) * (1 - p) ** alpha * positive
    neg = -F.logsigmoid(-logits) * p**alpha * (1 - target) ** beta * (1 - positive)
    return (pos.sum() + neg.sum()) / positive.sum().clamp(min=1.0)


def square_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of square boxes ``…×3`` ``(cx, cy, side)``."""
    half_a, half_b = a[..., 2] / 2, b[..., 2] / 2
    w = (torch.minimum(a[..., 0] + half_a, b[..., 0] + half_b) - torch.maximum(a[..., 0] - half_a, b[..., 0] - half_b))
    h = (torch.minimum(a[..., 1] + half_a, b[..., 1] + half_b) - torch.maximum(a[..., 1] - half_a, b[..., 1] - half_b))
    inter = w.clamp(min=0) * h.clamp(min=0)
    return inter / (a[..., 2] ** 2 + b[..., 2] ** 2 - inter).clamp(min=1e-9)


class HandDetectorModule(L.LightningModule):
    """``L = focal(centre) + L1(offset) + L1(log side)`` on letterboxed frames (module doc).

    Args:
        input_size, width: the network's (:class:`~tassn.nets.hand_detector.HandBoxDetector`).
        lr, weight_decay: AdamW's.
        sigma_fraction: σ of the centre's Gaussian target as a fraction of the box's side (in cells).
    """

    def __init__(self, input_size: int = 128, width: int = 32, lr: float = 2e-3, weight_decay: float = 1e-4,
                 sigma_fraction: float = 0.125) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = HandBoxDetector(input_size, width)
        self.val_iou = MeanMetric()
        self.val_found = MeanMetric()
        self.val_side_error = MeanMetric()

    def losses(self, maps: Tensor, boxes: Tensor) -> dict[str, Tensor]:
        """The three terms for network outputs ``maps`` and true boxes ``B×3`` (input px)."""
        size = maps.shape[-1]
        heat = centre_targets(boxes, size, self.hparams.sigma_fraction)
        centres, sides = box_cells(boxes)
        cell = centres.round().clamp(0, size - 1)
        flat = (cell[:, 1] * size + cell[:, 0]).long()
        picked = maps.flatten(2).gather(2, flat[:, None, None].expand(-1, maps.shape[1], 1))[..., 0]
        offset = picked[:, [OFFSET_X, OFFSET_Y]]
        log_side = picked[:, LOG_SIDE]
        heat = torch.maximum(heat, F.one_hot(flat, size * size).view_as(heat).to(heat.dtype))  # the cell is the peak
        return {
            "loss_centre": focal_loss(maps[:, CENTRE : CENTRE + 1], heat),
            "loss_offset": F.l1_loss(offset, centres - cell),
            "loss_side": F.l1_loss(log_side, torch.log(sides * STRIDE / self.net.input_size)),
        }

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        terms = self.losses(self.net(batch["image"]), batch["box"])
        loss = sum(terms.values())
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=len(batch["box"]))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["box"]))
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        boxes, _ = decode_boxes(self.net(batch["image"]), self.net.input_size, top_k=1)
        found, true = boxes[:, 0], batch["box"]
        iou = square_iou(found, true)
        self.val_iou.update(iou)
        self.val_found.update(iou.ge(0.5).float())
        self.val_side_error.update((found[:, 2] / true[:, 2]).log().abs())
        self.log(DETECTOR_MONITOR, self.val_iou, prog_bar=True)
        self.log("val/found", self.val_found)
        self.log("val/abs_log_side_error", self.val_side_error)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = self.trainer.estimated_stepping_batches if self.trainer is not None else 1000
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, self.hparams.lr, total_steps=max(int(total), 1),
                                                       pct_start=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[STAGE_KEY] = DETECTOR_STAGE
