"""FlowNet2 and its released variants (C, S, SD, CS, CSS), state_dict-compatible with NVIDIA flownet2-pytorch.

Every model takes the reference input ``B×3×2×H×W`` (RGB in 0…``rgb_max``, frame a at index 0 of dim 2, frame b
at index 1) and returns the flow ``B×2×H×W`` in pixels that maps frame a to frame b: ``b(x + o(x)) ≈ a(x)``
(channel 0 = x, 1 = y). As in the reference, each sample's per-channel mean over both frames is subtracted and the
result divided by ``rgb_max``; sub-networks predict flow / ``div_flow`` at 1/4 resolution, which is multiplied by
``div_flow`` and upsampled ×4. Unlike the reference (which needs H and W to be multiples of 64 and crops its
inputs), any size is accepted: the normalised frames are padded on the right and bottom by edge replication to the
next multiple of 64 and the flow is cropped back, so pixel coordinates are unchanged. In train mode the models
still return only the final flow (the reference returns the multi-scale tuple of C, S and SD for its own loss;
the sub-networks' ``flows`` method gives it).

Official weights: :func:`load_flownet2_checkpoint` reads the ``*_checkpoint.pth.tar`` files linked from the
flownet2-pytorch README (names in :data:`CHECKPOINT_FILES`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tassn.nets.flownet2_ops import warp
from tassn.nets.flownet2_parts import FlowNetC, FlowNetFusion, FlowNetS, FlowNetSD

__all__ = [
    "CHECKPOINT_FILES",
    "CHECKPOINT_SOURCE",
    "FLOWNET2_VARIANTS",
    "FlowNet2",
    "FlowNet2C",
    "FlowNet2CS",
    "FlowNet2CSS",
    "FlowNet2S",
    "FlowNet2SD",
    "flownet2_model",
    "load_flownet2_checkpoint",
    "normalize_pair",
]

PAD_MULTIPLE = 64
CHECKPOINT_SOURCE = (
    "the 'Converted Caffe Pre-trained Models' links of the NVIDIA flownet2-pytorch README "
    "(https://github.com/NVIDIA/flownet2-pytorch)"
)
# File names of the released weights; FlowNet2-CSS-ft-sd_checkpoint.pth.tar also fits FlowNet2CSS.
CHECKPOINT_FILES: dict[str, str] = {
    "FlowNet2": "FlowNet2_checkpoint.pth.tar",
    "FlowNet2C": "FlowNet2-C_checkpoint.pth.tar",
    "FlowNet2S": "FlowNet2-S_checkpoint.pth.tar",
    "FlowNet2SD": "FlowNet2-SD_checkpoint.pth.tar",
    "FlowNet2CS": "FlowNet2-CS_checkpoint.pth.tar",
    "FlowNet2CSS": "FlowNet2-CSS_checkpoint.pth.tar",
}


def normalize_pair(inputs: Tensor, rgb_max: float) -> Tensor:
    """``B×3×2×H×W`` frames → ``B×6×H×W``: minus each sample's per-channel mean over both frames, / ``rgb_max``."""
    mean = inputs.mean(dim=(2, 3, 4), keepdim=True)
    x = (inputs - mean) / rgb_max
    return torch.cat((x[:, :, 0], x[:, :, 1]), dim=1)


def _check_inputs(inputs: Tensor, model: str) -> None:
    if inputs.dim() != 5 or inputs.shape[1] != 3 or inputs.shape[2] != 2:
        raise ValueError(
            f"{model} expects frames stacked as B×3×2×H×W (RGB, frame a then frame b on dim 2), "
            f"got shape {tuple(inputs.shape)}"
        )
    if not inputs.is_floating_point():
        raise ValueError(f"{model} expects floating-point RGB in 0…rgb_max, got dtype {inputs.dtype}")


def _predict(inputs: Tensor, rgb_max: float, model: str, flow_fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Normalise, pad to a multiple of 64, run ``flow_fn`` on ``B×6×H'×W'`` and crop its flow back to H×W."""
    _check_inputs(inputs, model)
    x = normalize_pair(inputs, rgb_max)
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % PAD_MULTIPLE, -w % PAD_MULTIPLE
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return flow_fn(x)[:, :, :h, :w]


def _up4(flow: Tensor, mode: str) -> Tensor:
    """×4 upsampling as the reference's ``nn.Upsample(scale_factor=4, mode)``."""
    if mode == "nearest":
        return F.interpolate(flow, scale_factor=4, mode="nearest")
    return F.interpolate(flow, scale_factor=4, mode="bilinear", align_corners=False)


def _brightness_error(x: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """Frame b warped to frame a by ``flow`` and the per-pixel L2 error to frame a (``B×1×H×W``)."""
    warped = warp(x[:, 3:6], flow)
    return warped, torch.linalg.vector_norm(x[:, :3] - warped, dim=1, keepdim=True)


def _refinement_input(x: Tensor, flow: Tensor, div_flow: float) -> Tensor:
    """The 12-channel input of a stacked FlowNetS: frames, warped frame b, flow / div_flow, error magnitude."""
    warped, error = _brightness_error(x, flow)
    return torch.cat((x, warped, flow / div_flow, error), dim=1)


class FlowNet2C(FlowNetC):
    """FlowNet2-C: FlowNetC alone (39,175,298 parameters). ``B×3×2×H×W`` → ``B×2×H×W`` pixels."""

    def __init__(self, batch_norm: bool = False, div_flow: float = 20.0, rgb_max: float = 255.0) -> None:
        super().__init__(batch_norm=batch_norm)
        self.div_flow = div_flow
        self.rgb_max = rgb_max

    def forward(self, inputs: Tensor) -> Tensor:  # type: ignore[override]
        return _predict(inputs, self.rgb_max, type(self).__name__, self._flow)

    def _flow(self, x: Tensor) -> Tensor:
        return _up4(self.flows(x)[0] * self.div_flow, "bilinear")


class FlowNet2S(FlowNetS):
    """FlowNet2-S: FlowNetS on the two stacked frames (38,676,506 parameters)."""

    def __init__(self, batch_norm: bool = False, div_flow: float = 20.0, rgb_max: float = 255.0) -> None:
        super().__init__(input_channels=6, batch_norm=batch_norm)
        self.div_flow = div_flow
        self.rgb_max = rgb_max

    def forward(self, inputs: Tensor) -> Tensor:  # type: ignore[override]
        return _predict(inputs, self.rgb_max, type(self).__name__, self._flow)

    def _flow(self, x: Tensor) -> Tensor:
        return _up4(self.flows(x)[0] * self.div_flow, "bilinear")


class FlowNet2SD(FlowNetSD):
    """FlowNet2-SD: the small-displacement network alone (45,371,666 parameters)."""

    def __init__(self, batch_norm: bool = False, div_flow: float = 20.0, rgb_max: float = 255.0) -> None:
        super().__init__(batch_norm=batch_norm)
        self.div_flow = div_flow
        self.rgb_max = rgb_max

    def forward(self, inputs: Tensor) -> Tensor:  # type: ignore[override]
        return _predict(inputs, self.rgb_max, type(self).__name__, self._flow)

    def _flow(self, x: Tensor) -> Tensor:
        return _up4(self.flows(x)[0] * self.div_flow, "bilinear")


class FlowNet2CS(nn.Module):
    """FlowNet2-CS: FlowNetC, then one FlowNetS refining it on the warped frame (77,870,620 parameters)."""

    def __init__(self, batch_norm: bool = False, div_flow: float = 20.0, rgb_max: float = 255.0) -> None:
        super().__init__()
        self.div_flow = div_flow
        self.rgb_max = rgb_max
        self.flownetc = FlowNetC(batch_norm=batch_norm)
        self.flownets_1 = FlowNetS(input_channels=12, batch_norm=batch_norm)

    def forward(self, inputs: Tensor) -> Tensor:
        return _predict(inputs, self.rgb_max, type(self).__name__, self._flow)

    def _flow(self, x: Tensor) -> Tensor:
        flow_c = _up4(self.flownetc.flows(x)[0] * self.div_flow, "bilinear")
        return _up4(
            self.flownets_1.flows(_refinement_input(x, flow_c, self.div_flow))[0] * self.div_flow, "bilinear"
        )


class FlowNet2CSS(nn.Module):
    """FlowNet2-CSS: FlowNetC and two refining FlowNetS (116,565,942 parameters)."""

    def __init__(self, batch_norm: bool = False, div_flow: float = 20.0, rgb_max: float = 255.0) -> None:
        super().__init__()
        self.div_flow = div_flow
        self.rgb_max = rgb_max
        self.flownetc = FlowNetC(batch_norm=batch_norm)
        self.flownets_1 = FlowNetS(input_channels=12, batch_norm=batch_norm)
        self.flownets_2 = FlowNetS(input_channels=12, batch_norm=batch_norm)

    def forward(self, inputs: Tensor) -> Tensor:
        return _predict(inputs, self.rgb_max, type(self).__name__, self._flow)

    def _flow(self, x: Tensor) -> Tensor:
        flow_c = _up4(self.flownetc.flows(x)[0] * self.div_flow, "bilinear")
        flow_s1 = _up4(
            self.flownets_1.flows(_refinement_input(x, flow_c, self.div_flow))[0] * self.div_flow, "bilinear"
        )
        # The reference upsamples the last stage with nearest neighbours.
        return _up4(
            self.flownets_2.flows(_refinement_input(x, flow_s1, self.div_flow))[0] * self.div_flow, "nearest"
        )


class FlowNet2(nn.Module):
    """FlowNet2: CSS for large displacements, SD for small ones, fused at full resolution (162,518,834 params)."""

    def __init__(self, batch_norm: bool = False, div_flow: float = 20.0, rgb_max: float = 255.0) -> None:
        super().__init__()
        self.div_flow = div_flow
        self.rgb_max = rgb_max
        self.flownetc = FlowNetC(batch_norm=batch_norm)
        self.flownets_1 = FlowNetS(input_channels=12, batch_norm=batch_norm)
        self.flownets_2 = FlowNetS(input_channels=12, batch_norm=batch_norm)
        self.flownets_d = FlowNetSD(batch_norm=batch_norm)
        self.flownetfusion = FlowNetFusion(batch_norm=batch_norm)

    def forward(self, inputs: Tensor) -> Tensor:
        return _predict(inputs, self.rgb_max, type(self).__name__, self._flow)

    def _flow(self, x: Tensor) -> Tensor:
        div = self.div_flow
        flow_c = _up4(self.flownetc.flows(x)[0] * div, "bilinear")
        flow_s1 = _up4(self.flownets_1.flows(_refinement_input(x, flow_c, div))[0] * div, "bilinear")
        flow_s2 = _up4(self.flownets_2.flows(_refinement_input(x, flow_s1, div))[0] * div, "nearest")
        # The reference divides (not multiplies) the SD output by div_flow; the released fusion weights were
        # converted together with that code, so the fusion network expects exactly this input.
        flow_sd = _up4(self.flownets_d.flows(x)[0] / div, "nearest")
        _, error_s2 = _brightness_error(x, flow_s2)
        _, error_sd = _brightness_error(x, flow_sd)
        fusion_in = torch.cat(
            (
                x[:, :3],
                flow_sd,
                flow_s2,
                torch.linalg.vector_norm(flow_sd, dim=1, keepdim=True),
                torch.linalg.vector_norm(flow_s2, dim=1, keepdim=True),
                error_sd,
                error_s2,
            ),
            dim=1,
        )
        return self.flownetfusion(fusion_in)


FLOWNET2_VARIANTS: dict[str, type[nn.Module]] = {
    "FlowNet2": FlowNet2,
    "FlowNet2C": FlowNet2C,
    "FlowNet2S": FlowNet2S,
    "FlowNet2SD": FlowNet2SD,
    "FlowNet2CS": FlowNet2CS,
    "FlowNet2CSS": FlowNet2CSS,
}


def canonical_variant(variant: str) -> str:
    """``"flownet2cs"`` / ``"FlowNet2CS"`` / ``"FlowNet2-CS"`` → ``"FlowNet2CS"``; unknown names raise."""
    key = variant.replace("-", "").replace("_", "").lower()
    for name in FLOWNET2_VARIANTS:
        if name.lower() == key:
            return name
    raise ValueError(f"unknown FlowNet2 variant {variant!r}; expected one of {', '.join(FLOWNET2_VARIANTS)}")


def flownet2_model(
    variant: str, batch_norm: bool = False, div_flow: float = 20.0, rgb_max: float = 255.0
) -> nn.Module:
    """Build a variant by name (randomly initialised as in the reference; load weights separately)."""
    return FLOWNET2_VARIANTS[canonical_variant(variant)](
        batch_norm=batch_norm, div_flow=div_flow, rgb_max=rgb_max
    )


def _read_state_dict(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors and the metadata (arch, epoch, best_EPE) of a checkpoint file; clear errors otherwise."""
    if not path.is_file():
        raise FileNotFoundError(
            f"FlowNet2 checkpoint {path} does not exist; download it from {CHECKPOINT_SOURCE}"
        )
    try:
        # weights_only: the released files hold only tensors, str, int and float, so nothing needs unpickling code.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure to read is reported the same way, with its cause
        raise ValueError(
            f"{path} could not be read as a FlowNet2 checkpoint (expected a torch.save'd dict with 'state_dict', "
            f"as in {CHECKPOINT_SOURCE}): {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        state, meta = obj["state_dict"], {k: obj[k] for k in ("arch", "epoch", "best_EPE") if k in obj}
    elif isinstance(obj, Mapping) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        state, meta = obj, {}
    else:
        found = sorted(map(str, obj.keys())) if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(
            f"{path} is not a FlowNet2 checkpoint: expected a dict with keys 'arch', 'epoch', 'state_dict', "
            f"'best_EPE' (or a bare state_dict), found {found}"
        )
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: state_dict entries that are not tensors: {bad[:5]}")
    if state and all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state), meta


def _guess_variant(keys: set[str]) -> str | None:
    """The variant whose state_dict has exactly these keys (built on the meta device: no memory, no init cost)."""
    for name, cls in FLOWNET2_VARIANTS.items():
        with torch.device("meta"):
            if set(cls().state_dict()) == keys:
                return name
    return None


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return f"{len(items)} ({shown}{', …' if len(items) > limit else ''})"


def load_flownet2_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load an official ``<Variant>_checkpoint.pth.tar`` into ``model`` (strict) and return its metadata.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file when it is unreadable, is not
    a checkpoint, or does not fit the model (missing / unexpected keys and shape mismatches are all listed, with
    the variant the file does fit when one does).
    """
    path = Path(path)
    state, meta = _read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        lines = [f"{path} does not fit {type(model).__name__}:"]
        if missing:
            lines.append(f"  missing keys: {_listing(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys: {_listing(unexpected)}")
        if mismatched:
            lines.append(f"  shape mismatches: {_listing(mismatched, limit=4)}")
        fits = _guess_variant(set(state)) if (missing or unexpected) else None
        if fits is not None:
            lines.append(
                f"  the file's keys are those of {fits} (expected file name {CHECKPOINT_FILES[fits]})"
            )
        if "arch" in meta:
            lines.append(f"  the file says arch={meta['arch']!r}")
        raise ValueError("\n".join(lines))
    model.load_state_dict(state, strict=True)
    return meta
