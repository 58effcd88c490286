"""A fresh `fit` never writes over the checkpoints of an earlier run in the same folder.

A run folder keeps one ``checkpoints/`` (``--ckpt_path last`` resumes from it). A new training started there without
``--ckpt_path`` would rewrite its ``last.ckpt`` and ``best.ckpt`` step by step, so the finished run's weights would
be gone before the new one is any good; the folder is set aside as ``checkpoints.<n>`` instead (the smallest free
``n``, as ``make`` does when a finished stage is trained again).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def is_first_process() -> bool:
    """True outside DDP and in its rank-0 process (whose children start after the folder is set aside)."""
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def set_aside_checkpoints(dirpath: str | Path) -> Path | None:
    """Move ``dirpath`` to ``dirpath.<n>`` when it holds a checkpoint; return the new place, or None."""
    folder = Path(dirpath)
    if not folder.is_dir() or not any(folder.glob("*.ckpt")):
        return None
    n = 1
    while (target := folder.with_name(f"{folder.name}.{n}")).exists():
        n += 1
    folder.rename(target)
    log.warning("%s held an earlier run's checkpoints: moved to %s (pass --ckpt_path last to resume a run instead)",
                folder, target)
    return target
