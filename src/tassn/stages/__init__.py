"""Training stages: one LightningModule per step of the recipe, each owning a PME.

``Pretrain`` (synthetic source domain, 3D labels) → ``Stage1`` (heatmaps, L_h) → ``Stage2`` (heatmaps + mesh,
L_h + λs·L_m) → ``Stage3`` (TASSN, Eq. 6). Configs name them ``tassn.stages.<Class>``. Imported on first use, so
that reading a checkpoint (:mod:`tassn.stages.checkpoints`) does not load the training code.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_CLASSES = {
    "StageModule": "base",
    "Pretrain": "pretrain",
    "Stage1": "stage1",
    "SilhouetteStage": "silhouette",
    "Stage2": "stage2",
    "Stage3": "stage3",
}

__all__ = list(_CLASSES)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return getattr(import_module(f"{__name__}.{_CLASSES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
