"""A tiny `tassn fit` raises no warning outside an explicit allow-list, and its INFO summaries are logged."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "stages"))
from stage_fixtures import *  # noqa: E402,F401,F403  (tiny nets, videos and configs)

#: ``(message substring, reason)``: warnings a tiny test run may raise that a real run does not (none today;
#: an entry needs its reason).
ALLOWED: tuple[tuple[str, str], ...] = ()


def test_a_tiny_fit_warns_only_as_allowed(write_configs, caplog, monkeypatch) -> None:
    from tassn.cli import TassnCLI

    monkeypatch.setattr(sys, "argv", ["tassn"])  # as from the command line (pytest's own arguments aside)
    configs = write_configs("Stage1", trainer={"max_steps": 2, "max_epochs": 1})
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")  # TassnCLI's filters go in front of this one
        TassnCLI(args=["fit", *configs, "--seed_everything=0"])  # the Makefile always passes a seed
    unexpected = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
                  if not any(text in str(w.message) for text, _ in ALLOWED)]
    assert not unexpected, "\n".join(unexpected)
    assert "train: " in caplog.text and "clips from" in caplog.text  # the data module's INFO summary
    assert "Tip: For seamless cloud logging" not in caplog.text


def test_intended_filters_leave_other_warnings_alone() -> None:
    from tassn.quiet import install_filters

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        install_filters()
        warnings.warn("Found 3 module(s) in eval mode at the start of training", UserWarning, stacklevel=1)
        warnings.warn("The 'train_dataloader' does not have many workers", UserWarning, stacklevel=1)
        warnings.warn("something the user must see", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something the user must see"]


@pytest.mark.slow  # W&B's service process takes most of a minute to start on a busy machine
def test_wandb_offline_says_in_one_line_where_the_run_is(write_configs, caplog, monkeypatch, capfd) -> None:
    from tassn.cli import TassnCLI
    from tassn.quiet import quiet_wandb

    for name in ("WANDB_SILENT", "WANDB_DISABLE_GIT"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(sys, "argv", ["tassn"])
    quiet_wandb()
    configs = write_configs("Stage1", trainer={"max_steps": 1, "max_epochs": 1})
    with caplog.at_level(logging.INFO, logger="tassn"):
        TassnCLI(args=["fit", *configs, "--seed_everything=0"])
    lines = [r.getMessage() for r in caplog.records if "W&B run" in r.getMessage()]
    assert len(lines) == 1 and "wandb sync" in lines[0] and "offline-run-" in lines[0]
    err = capfd.readouterr().err
    assert "wandb:" not in err, err[-2000:]  # no banner, tips or sync hints of W&B's own
