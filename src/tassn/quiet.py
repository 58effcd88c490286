"""What `tassn` prints: INFO summaries of tassn and data_modules, and no warning that is there by design.

Each filter below names a warning that the project causes on purpose, with the reason beside it; every other
warning is shown. This is the only place where warnings are silenced (tests/test_quiet_log.py fails on any other
warning of a tiny `tassn fit`).
"""

from __future__ import annotations

import logging
import os
import warnings

#: ``(message regex, category, module regex, reason)`` of the warnings `tassn` silences.
INTENDED_WARNINGS: tuple[tuple[str, type[Warning], str, str], ...] = (
    (r"Found \d+ module\(s\) in eval mode at the start of training",
     UserWarning, "", "stages freeze sub-networks on purpose (eval mode: fixed BatchNorm statistics)"),
    (r"The '\w+_dataloader' does not have many workers",
     UserWarning, "", "num_workers=0 is the CPU recipe's choice on 2 cores (config: data.init_args.num_workers)"),
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated",
     Warning, "", "raised inside Lightning's own _pytree helper by this torch version; nothing of ours to change"),
    ("", DeprecationWarning, r"lightning\.pytorch\.cli",
     "LightningCLI calls jsonargparse functions that jsonargparse ≥ 4.49 deprecates; Lightning's code, not ours"),
)

#: ``(logger, message prefix, reason)`` of INFO lines of other packages that `tassn` drops.
INTENDED_LOG_LINES: tuple[tuple[str, str, str], ...] = (
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip: For seamless cloud logging",
     "Lightning's advertisement for its cloud logger, printed by every run; it says nothing about the run"),
)

#: Loggers whose INFO lines are the run's summaries (clip counts, GrabCut and data generation).
SUMMARY_LOGGERS = ("tassn", "data_modules")


class _DropPrefix(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefix)


def install_filters() -> None:
    """Silence :data:`INTENDED_WARNINGS` (put first, so they win over a caller's ``always``) and
    :data:`INTENDED_LOG_LINES`."""
    for message, category, module, _reason in INTENDED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, prefix, _reason in INTENDED_LOG_LINES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefix) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropPrefix(prefix))


def configure_logging(level: int = logging.INFO) -> None:
    """Send INFO lines of :data:`SUMMARY_LOGGERS` to stderr (once; a configured root logger is left alone)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in SUMMARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not logger.handlers and not logging.getLogger().handlers:
            logger.addHandler(handler)


def quiet_wandb() -> None:
    """W&B's banners and tips off (its own switch); :func:`wandb_run_line` says the one thing a user needs."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")  # a run folder outside a git clone warns otherwise


def wandb_run_line(run_dir: str, mode: str) -> str:
    """The one line printed for a W&B run: where it is and, offline, how to upload it."""
    if mode == "offline":
        return f"W&B run (offline) in {run_dir}; upload it with `wandb sync {run_dir}` after `wandb login`"
    return f"W&B run in {run_dir}"
