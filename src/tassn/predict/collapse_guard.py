"""Stops an adaptation before its predictions collapse towards one constant hand.

The temporal consistency terms L_c^p and L_c^m are smallest when every frame gets the same pose, and on a single
unlabeled video nothing but the pseudo-labelled heatmaps and the silhouettes pulls the other way: with a high
learning rate a few dozen steps flatten the motion (measured on the test network: the per-joint variance across
frames falls to a few percent within 12 steps at lr 1e-3). This callback measures that variance every
``every_n_steps`` steps, the way prediction runs (forward, the recurrence carried through chunks of ``chunk``
frames), and when some joint's variance falls below ``min_fraction`` of the un-adapted model's it restores the
last weights that passed and stops training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback


def pose_variance(net: torch.nn.Module, crops: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Per-joint variance ``20`` (x, y and z summed; the root, always 0, left out) of the forward pass's poses
    over all frames of ``crops F×S×S×3`` uint8."""
    device = next(net.parameters()).device
    poses = []
    with torch.no_grad():
        for start in range(0, len(crops), chunk):
            clip = torch.from_numpy(np.ascontiguousarray(crops[start : start + chunk])).to(device)
            clip = clip.permute(0, 3, 1, 2)[None].float() / 255.0
            poses.append(net.run(clip).pose[0].double().cpu())
    pose = torch.cat(poses).numpy()
    return pose[:, 1:].var(axis=0).sum(axis=-1)


class CollapseGuard(Callback):
    """Keeps the per-joint pose variance across frames ≥ ``min_fraction`` × the un-adapted model's (module doc).

    ``min_fraction = 0`` turns the guard off. After fitting, ``stopped_at`` is the step whose check failed (None if
    none did), ``ratios`` the minimum ratio at each check.
    """

    def __init__(self, crops: np.ndarray, min_fraction: float = 0.5, every_n_steps: int = 25, chunk: int = 64):
        if not 0.0 <= min_fraction < 1.0:
            raise ValueError(f"min_fraction (collapse guard) must be in [0, 1), got {min_fraction}")
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be at least 1, got {every_n_steps}")
        self.crops = crops
        self.min_fraction = min_fraction
        self.every_n_steps = every_n_steps
        self.chunk = chunk
        self.reference: np.ndarray | None = None
        self.ratios: list[tuple[int, float]] = []
        self.stopped_at: int | None = None
        self._good: dict[str, torch.Tensor] | None = None

    def _measure(self, module: LightningModule) -> np.ndarray:
        was_training = module.training
        module.eval()
        try:
            return pose_variance(module.net, self.crops, self.chunk)
        finally:
            if was_training:
                module.train()  # the network's own train() keeps any fixed BatchNorm statistics fixed

    def _keep(self, module: LightningModule) -> None:
        self._good = {k: v.detach().clone() for k, v in module.net.state_dict().items()}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.min_fraction > 0:
            self.reference = np.maximum(self._measure(pl_module), 1e-12)
            self._keep(pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._check(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        last = self.ratios[-1][0] if self.ratios else 0
        if self.stopped_at is None and trainer.global_step != last:  # the steps after the last check
            self._check(trainer, pl_module)

    def _check(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = trainer.global_step
        if self.reference is None or self.stopped_at is not None:
            return
        ratio = float((self._measure(pl_module) / self.reference).min())
        self.ratios.append((step, ratio))
        if ratio >= self.min_fraction:
            self._keep(pl_module)
            return
        assert self._good is not None  # kept at the start
        pl_module.net.load_state_dict(self._good)
        self.stopped_at = step
        trainer.should_stop = True
