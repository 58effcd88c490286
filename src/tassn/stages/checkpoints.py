"""Hand weights from one stage's Lightning checkpoint to the next stage's network.

Stages pass weights only through Lightning checkpoints. Each checkpoint records the stage that wrote it
(:data:`STAGE_KEY`), so that a stage can refuse a checkpoint from the wrong step of the training recipe
(e.g. stage 3 started from the pretrained model instead of stage 2) instead of training on silently wrong weights.

A checkpoint is data: every read here is weights-only (tensors, containers and plain values; no fallback to a full
unpickle), so a downloaded checkpoint cannot run code. A refused file raises :class:`UntrustedCheckpointError`
naming the file and the global it asked for.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from tassn.safe_load import UntrustedFileError

#: checkpoint entry naming the stage that wrote it.
STAGE_KEY = "tassn_stage"
#: prefix of the network's parameters inside a stage's ``state_dict``.
NET_PREFIX = "net."


class CheckpointMismatchError(ValueError):
    """A checkpoint cannot initialise this network: wrong stage, or keys/shapes differ."""


class UntrustedCheckpointError(UntrustedFileError):
    """A checkpoint holds more than weights and plain values; it was refused without running any of it."""


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def refusal(path: str | Path, err: BaseException) -> UntrustedCheckpointError:
    """The one-line error for a checkpoint that weights-only loading refused, naming the refused global."""
    found = _GLOBAL.search(str(err))
    what = found.group(1) if found else str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return UntrustedCheckpointError(
        f"{path}: refused to load {what}: checkpoints are read weights-only (tensors and plain values), "
        "and this one holds code or an object that is not allowed (see SECURITY.md)"
    )


def load_weights_only(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)`` on the CPU with one-line errors for refused or unreadable files."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise refusal(path, err) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointMismatchError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(f"{path} holds a {type(checkpoint).__name__}, expected a checkpoint dict")
    return dict(checkpoint)


def read_checkpoint(path: str | Path) -> dict:
    """Load a Lightning checkpoint on the CPU, weights-only.

    A tassn checkpoint (weights, optimizer and loop state, plain-dict hyper-parameters) needs nothing more; a
    file that does is refused with :class:`UntrustedCheckpointError` instead of being unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found: train the stage that writes it first "
            "(see `make help`), or fix the path"
        )
    checkpoint = load_weights_only(path)
    if "state_dict" not in checkpoint:
        raise CheckpointMismatchError(f"{path} is not a Lightning checkpoint (no 'state_dict' entry)")
    return checkpoint


class WeightsOnlyCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reads (``--ckpt_path``) through :func:`load_weights_only`, whatever is asked.

    ``preloaded`` is a ``(path, checkpoint)`` already read (for its hyper-parameters): it is handed over instead
    of reading the file a second time.
    """

    def __init__(self, preloaded: tuple[str | Path, dict] | None = None) -> None:
        super().__init__()
        self.preloaded = preloaded

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        """Write through a temporary file in the same folder and rename it into place: a run killed while
        writing leaves the previous checkpoint whole, never a truncated one that the next resume cannot read."""
        path = Path(path)
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load_checkpoint(self, path: str | Path, map_location: object = None, weights_only: bool | None = None) -> dict:
        if weights_only is False:
            raise UntrustedCheckpointError(f"{path}: refused a full unpickle: checkpoints are read weights-only (see SECURITY.md)")
        if self.preloaded is not None and Path(self.preloaded[0]).resolve() == Path(path).resolve():
            checkpoint, self.preloaded = self.preloaded[1], None
            return checkpoint
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        return load_weights_only(path)


def checkpoint_stage(checkpoint: Mapping, path: str | Path = "<checkpoint>") -> str:
    """The stage that wrote ``checkpoint``; raises when it was not written by a tassn stage."""
    stage = checkpoint.get(STAGE_KEY)
    if not isinstance(stage, str):
        raise CheckpointMismatchError(
            f"{path} was not written by a tassn stage (no {STAGE_KEY!r} entry); "
            "initialise from a checkpoint of `tassn fit` with a tassn.stages module"
        )
    return stage


def net_state(checkpoint: Mapping, modules: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The network's weights in ``checkpoint`` (prefix ``net.`` removed), restricted to ``modules`` if given."""
    state = {k[len(NET_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(NET_PREFIX)}
    if modules is None:
        return state
    return {k: v for k, v in state.items() if _in_modules(k, modules)}


def _in_modules(key: str, modules: Iterable[str]) -> bool:
    return any(key == m or key.startswith(m + ".") for m in modules)


def _listing(items: Sequence[str], limit: int = 25) -> list[str]:
    shown = ["    " + s for s in items[:limit]]
    return shown + ([f"    … and {len(items) - limit} more"] if len(items) > limit else [])


def load_net_from_checkpoint(
    net: nn.Module,
    path: str | Path,
    allowed_stages: Sequence[str],
    modules: Sequence[str] | None = None,
) -> str:
    """Copy the weights of ``modules`` (all when None) from the stage checkpoint at ``path`` into ``net``.

    See :func:`load_net_state`; returns the stage that wrote the checkpoint.
    """
    return load_net_state(net, read_checkpoint(path), path, allowed_stages, modules)


def load_net_state(
    net: nn.Module,
    checkpoint: Mapping,
    path: str | Path,
    allowed_stages: Sequence[str],
    modules: Sequence[str] | None = None,
) -> str:
    """Copy the weights of ``modules`` (all when None) from an already read stage ``checkpoint`` into ``net``.

    Raises :class:`CheckpointMismatchError` naming the file when the checkpoint was written by a stage not in
    ``allowed_stages``, or when keys are missing, unexpected or of another shape (all of them listed).
    Returns the stage that wrote the checkpoint.
    """
    stage = checkpoint_stage(checkpoint, path)
    if allowed_stages and stage not in allowed_stages:
        raise CheckpointMismatchError(
            f"{path} was written by stage {stage!r}, but only checkpoints of {list(allowed_stages)} may "
            "initialise this one"
        )
    if modules is not None:
        known = {name for name, _ in net.named_children()}
        unknown = [m for m in modules if m not in known]
        if unknown:
            raise ValueError(f"unknown sub-modules {unknown}; the network has {sorted(known)}")
    source = net_state(checkpoint, modules)
    target = net.state_dict()
    if modules is not None:
        target = {k: v for k, v in target.items() if _in_modules(k, modules)}
    missing = sorted(set(target) - set(source))
    unexpected = sorted(set(source) - set(target))
    shapes = [
        f"{k}: checkpoint {tuple(source[k].shape)} vs network {tuple(target[k].shape)}"
        for k in sorted(set(source) & set(target))
        if source[k].shape != target[k].shape
    ]
    if missing or unexpected or shapes:
        lines = [f"{path} (stage {stage!r}) does not fit this network:"]
        if shapes:
            lines += ["  shapes differ (was the network configured with other sizes?):", *_listing(shapes)]
        if missing:
            lines += ["  missing in the checkpoint:", *_listing(missing)]
        if unexpected:
            lines += ["  not in the network:", *_listing(unexpected)]
        raise CheckpointMismatchError("\n".join(lines))
    net.load_state_dict(source, strict=modules is None)
    return stage
