"""StepCheckpoint: a step's ``last.ckpt`` appears only once that step's metrics are logged, and an epoch-end
``last.ckpt`` is never replaced by the step checkpoint of the same step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import Logger

from tassn.stages.step_checkpoint import StepCheckpoint

STEPS = 6
EVERY = 2


class LoggingModel(BoringModel):
    def training_step(self, batch: Any, batch_idx: int) -> dict:
        output = super().training_step(batch, batch_idx)
        self.log("train/loss", output["loss"])
        return output


class CheckpointWatcher(Logger):
    """For each step's metrics, the global step of the ``last.ckpt`` on disk when the loggers receive them."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.seen: list[tuple[int, int]] = []

    @property
    def name(self) -> str:
        return "watcher"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if "train/loss" in metrics:
            on_disk = torch.load(self.path, weights_only=True)["global_step"] if self.path.exists() else 0
            self.seen.append((step, on_disk))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def _fit(tmp_path: Path, callbacks: list[Callback], logger: Logger | bool = False) -> Path:
    trainer = Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=STEPS, limit_val_batches=0, logger=logger,
        callbacks=callbacks, log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", devices=1,
    )
    trainer.fit(LoggingModel())
    return tmp_path / "checkpoints" / "last.ckpt"


def test_a_step_checkpoint_appears_only_after_its_step_is_logged(tmp_path: Path) -> None:
    watcher = CheckpointWatcher(tmp_path / "checkpoints" / "last.ckpt")
    last = _fit(tmp_path, [StepCheckpoint(str(tmp_path / "checkpoints"), EVERY)], logger=watcher)
    # Lightning logs step s after the callbacks' on_train_batch_end of step s (global step s + 1): a checkpoint
    # of global step g may only be on disk once rows 0 … g-1 are logged, i.e. at most s when row s arrives
    assert watcher.seen == [(s, s - s % EVERY) for s in range(STEPS)]
    assert torch.load(last, weights_only=True)["global_step"] == STEPS
    assert not list(last.parent.glob("*.part"))


@pytest.mark.parametrize("step_first", [False, True])
def test_the_epoch_end_last_ckpt_wins_over_a_step_checkpoint_of_the_same_step(tmp_path: Path,
                                                                               step_first: bool) -> None:
    checkpoints = str(tmp_path / "checkpoints")
    epoch_end = ModelCheckpoint(checkpoints, save_last=True, enable_version_counter=False)  # as in the CLI
    callbacks: list[Callback] = [epoch_end, StepCheckpoint(checkpoints, EVERY)]
    last = _fit(tmp_path, callbacks[::-1] if step_first else callbacks)
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == STEPS
    # written at the epoch end (every batch completed), not at the last batch's end (one still to complete)
    assert checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == STEPS
    assert not list(last.parent.glob("*.part"))
