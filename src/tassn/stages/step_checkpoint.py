"""``last.ckpt`` every N training steps, so that a run killed mid-epoch loses at most N steps.

Lightning's best/last :class:`~lightning.pytorch.callbacks.ModelCheckpoint` writes ``last.ckpt`` at epoch ends
only; an epoch of a real run is long. This second callback rewrites the same ``last.ckpt`` every
``every_n_train_steps`` steps (no best, no monitor), and flushes the loggers first, so that a checkpoint on disk
is never ahead of the metrics written beside it: a resumed run's ``metrics.csv`` continues where the killed run's
ends, with no step missing.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class StepCheckpoint(ModelCheckpoint):
    """Rewrite ``<dirpath>/last.ckpt`` every ``every_n_train_steps`` training steps (0: never).

    Args:
        dirpath: the run's checkpoint folder (the CLI links it to ``<default_root_dir>/checkpoints``).
        every_n_train_steps: steps between two writes; 0 leaves ``last.ckpt`` to the epoch ends.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 100) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"step_checkpoint.every_n_train_steps must be ≥ 0, got {every_n_train_steps}")
        super().__init__(
            dirpath=dirpath,
            monitor=None,
            save_top_k=0,
            save_last=every_n_train_steps > 0,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_train_steps=self._every_n_train_steps, kind="step_checkpoint")

    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Any]) -> None:
        for logger in trainer.loggers:  # metrics reach the disk before the checkpoint that follows them
            logger.save()
        super()._save_last_checkpoint(trainer, monitor_candidates)
