"""The trained network a prediction runs: a PME rebuilt from a stage's Lightning checkpoint.

A stage checkpoint written by ``tassn fit`` records the stage (``tassn_stage``) and, in its hyper-parameters, the
network's configuration (``net: {class_path, init_args}``), so nothing but the file is needed; of it, only the
arguments that name no file are used (see :func:`tassn.config_trust.recorded_net_config`). Checkpoints of other
stages (or not from tassn at all) are refused with the stage they came from. Checkpoints also record how their
training data was cropped and drawn (``datamodule_hyper_parameters``: crop margin, heatmap σ), which prediction and
adaptation follow unless told otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tassn.config_trust import recorded_net_config
from tassn.nets.pme import PME
from tassn.stages.checkpoints import (
    CheckpointMismatchError,
    checkpoint_stage,
    load_net_state,
    read_checkpoint,
)

#: Stages whose checkpoints hold a PME with trained heatmap, mesh and pose networks. A stage-1 checkpoint is not
#: among them: it trains the heatmaps alone, so its mesh and pose networks are still untrained.
PREDICT_STAGES: tuple[str, ...] = ("stage3", "stage2", "pretrain")
#: Stages whose checkpoints can place a tracking crop (``tassn predict --tracker-ckpt``): only the heatmaps are read,
#: so stage 1's are enough (``make train-tracker`` fine-tunes a stage-1 checkpoint on jittered crops).
TRACKER_STAGES: tuple[str, ...] = ("stage1", *PREDICT_STAGES)
#: ``class_path`` values that name the network.
PME_CLASS_PATHS: tuple[str, ...] = ("tassn.nets.PME", "tassn.nets.pme.PME")
#: The crop margin of STB, MHP and the paper, for checkpoints that do not record their own.
DEFAULT_CROP_MARGIN = 1.5


@dataclass
class LoadedModel:
    """A PME in eval mode on its device, with where it came from."""

    net: PME
    stage: str
    path: Path
    net_config: dict[str, Any]
    training_data: dict[str, float] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def crop_margin(self) -> float:
        """Crop side / keypoints' extent of the training crops (:data:`DEFAULT_CROP_MARGIN` when not recorded)."""
        return self.training_data.get("crop_margin", DEFAULT_CROP_MARGIN)

    @property
    def heatmap_sigma(self) -> float:
        """Width (heatmap cells) of the training targets; the network's feedback Gaussians have the same."""
        return self.training_data.get("heatmap_sigma", float(self.net.feedback_sigma))


def training_data(checkpoint: Mapping[str, Any]) -> dict[str, float]:
    """The positive numbers among the data module's recorded ``crop_size``, ``crop_margin`` and ``heatmap_sigma``
    (anything else in the file is ignored: it is data, and an odd value falls back to the defaults)."""
    recorded = checkpoint.get("datamodule_hyper_parameters")
    if not isinstance(recorded, Mapping):
        return {}
    values = {}
    for key in ("crop_size", "crop_margin", "heatmap_sigma"):
        value = recorded.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            values[key] = float(value)
    return values


def _plain(value: Any) -> Any:
    """jsonargparse Namespaces and tuples-as-lists → plain dicts and values."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def net_config(checkpoint: Mapping[str, Any], path: str | Path = "<checkpoint>") -> dict[str, Any]:
    """The PME keyword arguments recorded in a stage checkpoint's hyper-parameters."""
    hparams = _plain(checkpoint.get("hyper_parameters") or {})
    net = hparams.get("net")
    if net is None:
        raise CheckpointMismatchError(
            f"{path} does not record the network's configuration (hyper_parameters['net']); it was saved outside "
            "`tassn fit`: pass the PME settings with net_config (--net-config FILE.yaml)"
        )
    if not isinstance(net, Mapping):
        raise CheckpointMismatchError(f"{path}: hyper_parameters['net'] is a {type(net).__name__}, expected a mapping")
    if "class_path" in net:
        if net["class_path"] not in PME_CLASS_PATHS:
            raise CheckpointMismatchError(
                f"{path}: the network is {net['class_path']}, expected one of {list(PME_CLASS_PATHS)}"
            )
        return dict(net.get("init_args") or {})
    return dict(net)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → the first CUDA device when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(
    ckpt: str | Path,
    allowed_stages: Sequence[str] = PREDICT_STAGES,
    net_overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "auto",
) -> LoadedModel:
    """Rebuild and load the PME of a stage checkpoint, in eval mode on ``device``.

    The recorded arguments that name files (template, graph cache, flow weights) are not taken from the file:
    the defaults apply unless ``net_overrides`` names them. ``net_overrides`` replaces recorded PME arguments (e.g. ``flow_checkpoint`` when the FlowNet2 weights moved,
    or the whole configuration for a checkpoint saved without one). Raises ``FileNotFoundError`` for a missing
    file and :class:`~tassn.stages.checkpoints.CheckpointMismatchError` for a checkpoint of another stage, without
    a network configuration, or whose weights do not fit it.
    """
    path = Path(ckpt)
    checkpoint = read_checkpoint(path)
    stage = checkpoint_stage(checkpoint, path)
    if stage not in allowed_stages:
        raise CheckpointMismatchError(
            f"{path} was written by stage {stage!r}; predicting needs a trained network from one of "
            f"{list(allowed_stages)}"
        )
    try:
        config = recorded_net_config(net_config(checkpoint, path), str(path), net_overrides or {})
    except CheckpointMismatchError:
        if not net_overrides:
            raise
        config = {}
    config.update(net_overrides or {})
    try:
        net = PME(**config)
    except TypeError as err:
        raise CheckpointMismatchError(f"{path}: the recorded network configuration does not fit PME: {err}") from err
    load_net_state(net, checkpoint, path, allowed_stages)
    data = training_data(checkpoint)
    del checkpoint
    net.eval().to(resolve_device(device))
    return LoadedModel(net=net, stage=stage, path=path, net_config=config, training_data=data)
