"""Hand weights from one stage's Lightning checkpoint to the next stage's network.

Stages pass weights only through Lightning checkpoints. Each checkpoint records the stage that wrote it
(:data:`STAGE_KEY`), so that a stage can refuse a checkpoint from the wrong step of the training recipe
(e.g. stage 3 started from the pretrained model instead of stage 2) instead of training on silently wrong weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

#: checkpoint entry naming the stage that wrote it.
STAGE_KEY = "tassn_stage"
#: prefix of the network's parameters inside a stage's ``state_dict``.
NET_PREFIX = "net."


class CheckpointMismatchError(ValueError):
    """A checkpoint cannot initialise this network: wrong stage, or keys/shapes differ."""


def read_checkpoint(path: str | Path) -> dict:
    """Load a Lightning checkpoint on the CPU.

    Lightning checkpoints also carry hyper-parameters and loop state that ``weights_only`` loading rejects,
    so this unpickles the file: load only checkpoints you trust (your own runs).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found: train the stage that writes it first "
            "(see `make help`), or fix the path"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointMismatchError(f"{path} is not a Lightning checkpoint (no 'state_dict' entry)")
    return dict(checkpoint)


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

    Raises :class:`CheckpointMismatchError` naming the file when the checkpoint was written by a stage not in
    ``allowed_stages``, or when keys are missing, unexpected or of another shape (all of them listed).
    Returns the stage that wrote the checkpoint.
    """
    checkpoint = read_checkpoint(path)
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
