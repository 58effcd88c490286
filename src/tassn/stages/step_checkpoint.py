"""``last.ckpt`` every N training steps, so that a run killed mid-epoch loses at most N steps.

Lightning's best/last :class:`~lightning.pytorch.callbacks.ModelCheckpoint` writes ``last.ckpt`` at epoch ends
only; an epoch of a real run is long. This second callback rewrites the same ``last.ckpt`` every
``every_n_train_steps`` steps (no best, no monitor).

A checkpoint on disk is never ahead of the metrics written beside it. Lightning's training loop calls the
callbacks' ``on_train_batch_end`` (where step checkpoints are taken) *before* it hands that step's metrics to the
loggers (``update_train_step_metrics``, right after the hook). A checkpoint written in the hook therefore records
step ``k`` as done while ``metrics.csv`` does not yet hold its row; a run killed in between resumes after step ``k``
and that row is never written. So the checkpoint is taken in ``on_train_batch_end`` (the state Lightning knows how
to resume from) but written to ``last.ckpt.part`` and renamed over ``last.ckpt`` (atomically) only at the next hook
that follows the loggers: the next batch's start, a validation start, the epoch end or the end of training. A kill
before the rename resumes from the previous ``last.ckpt`` and logs the steps after it again in the resumed run.
"""

from __future__ import annotations

import os
from typing import Any
from weakref import proxy

from fsspec.implementations.local import LocalFileSystem
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

PENDING_SUFFIX = ".part"  # not ``.ckpt``: Lightning's ``--ckpt_path=last`` never picks up an unpublished file


class StepCheckpoint(ModelCheckpoint):
    """Rewrite ``<dirpath>/last.ckpt`` every ``every_n_train_steps`` training steps (0: never).

    The checkpoint of step ``k`` is taken at the end of the step and published (renamed into place) once the
    loggers have the step's metrics, so that a resumed run's ``metrics.csv`` continues where the killed run's ends.

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
        self._pending: tuple[str, int] | None = None  # (last.ckpt path, global step) written as <path>.part

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_train_steps=self._every_n_train_steps, kind="step_checkpoint")

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        """Take the checkpoint now (end of the step) into ``<filepath>.part``; :meth:`_publish` renames it."""
        trainer.save_checkpoint(filepath + PENDING_SUFFIX, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        self._pending = (filepath, trainer.global_step)

    def _publish(self, trainer: Trainer) -> None:
        """Rename the pending checkpoint over ``last.ckpt``: its step's metrics have reached the loggers."""
        if self._pending is None:
            return
        filepath, step = self._pending
        self._pending = None
        if not trainer.is_global_zero:
            return
        pending = filepath + PENDING_SUFFIX
        if self._superseded(trainer, filepath, step):
            self._drop(pending)
            return
        for logger in trainer.loggers:  # loggers that buffer write their rows before the checkpoint appears
            logger.save()
        if isinstance(self._fs, LocalFileSystem):
            os.replace(pending, filepath)
        else:
            self._fs.mv(pending, filepath)
        for logger in trainer.loggers:
            logger.after_save_checkpoint(proxy(self))

    def _superseded(self, trainer: Trainer, filepath: str, step: int) -> bool:
        """Whether another checkpoint callback has already rewritten ``filepath`` at this step (an epoch-end
        ``last.ckpt`` written earlier in the same ``on_train_epoch_end``): that one is newer than ours."""
        return any(
            callback is not self
            and isinstance(callback, ModelCheckpoint)
            and callback._last_global_step_saved == step
            and callback.last_model_path
            and os.path.abspath(callback.last_model_path) == os.path.abspath(filepath)
            for callback in trainer.checkpoint_callbacks
        )

    def _drop(self, pending: str) -> None:
        if self._fs.exists(pending):
            self._fs.rm(pending)

    # the first hooks that Lightning calls after it has logged a step's metrics
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._publish(trainer)
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._publish(trainer)
        super().on_validation_start(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._publish(trainer)
        super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._publish(trainer)
        super().on_train_end(trainer, pl_module)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """A step that failed may not have logged its metrics: its checkpoint is dropped, ``last.ckpt`` kept."""
        if self._pending is not None and trainer.is_global_zero:
            self._drop(self._pending[0] + PENDING_SUFFIX)
        self._pending = None
        super().on_exception(trainer, pl_module, exception)
