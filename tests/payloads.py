"""Files that would run code if loaded carelessly: each touches a marker file, so a test can see it never ran."""

from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path

import torch


class TouchMarker:
    """Unpickles as ``os.system("touch <marker>")``: a plain unpickler runs it, an allow-list refuses it."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {shlex.quote(self.marker)}",)


#: how the refused global is named in messages (``os.system`` pickles under its real module).
PAYLOAD_GLOBAL = f"{os.system.__module__}.system"


def payload_pickle(marker: str | Path, protocol: int = 2) -> bytes:
    return pickle.dumps(TouchMarker(marker), protocol=protocol)


def payload_checkpoint(path: Path, marker: str | Path, stage: str = "stage3") -> Path:
    """A checkpoint shaped like a tassn stage checkpoint with a payload beside the weights."""
    torch.save({"state_dict": {}, "tassn_stage": stage, "hyper_parameters": {}, "extra": TouchMarker(marker)}, path)
    return path
