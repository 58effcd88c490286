"""FlowNet2 family: state_dict layout equal to flownet2-pytorch's, forward conventions, checkpoint loading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tassn.nets.flownet2 import (
    CHECKPOINT_FILES,
    FLOWNET2_VARIANTS,
    FlowNet2C,
    FlowNet2S,
    flownet2_model,
    load_flownet2_checkpoint,
    normalize_pair,
)
from tassn.nets.flownet2_ops import ChannelNorm, Resample2d

FIXTURE_NAME = "flownet2-pytorch-state-dict-shapes.json"
_FIXTURE_PATHS = (
    Path(__file__).parent / "fixtures" / FIXTURE_NAME,
    Path(__file__).parents[2].parent / "shared" / "fixtures" / FIXTURE_NAME,
)


@pytest.fixture(scope="module")
def reference_shapes() -> dict[str, dict[str, list[int]]]:
    for path in _FIXTURE_PATHS:
        if path.is_file():
            return json.loads(path.read_text())
    pytest.skip(f"{FIXTURE_NAME} not found in {', '.join(map(str, _FIXTURE_PATHS))}")


@pytest.mark.parametrize("variant", list(FLOWNET2_VARIANTS))
def test_state_dict_equals_reference(variant: str, reference_shapes: dict[str, dict[str, list[int]]]) -> None:
    with torch.device("meta"):  # keys and shapes without allocating the weights
        model = FLOWNET2_VARIANTS[variant]()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = reference_shapes[variant]
    assert sorted(set(shapes) - set(expected)) == []
    assert sorted(set(expected) - set(shapes)) == []
    assert shapes == expected
    assert list(shapes) == list(expected)  # same order as the reference modules


def test_flownet2_parameter_count() -> None:
    with torch.device("meta"):
        model = FLOWNET2_VARIANTS["FlowNet2"]()
    assert sum(p.numel() for p in model.parameters()) == 162_518_834


@pytest.fixture(scope="module")
def flownet2s() -> FlowNet2S:
    torch.manual_seed(0)
    return FlowNet2S().eval()


def test_forward_crops_to_input_size_and_scales_by_div_flow(flownet2s: FlowNet2S) -> None:
    gen = torch.Generator().manual_seed(1)
    inputs = torch.rand(2, 3, 2, 70, 100, generator=gen) * 255  # neither side a multiple of 64
    with torch.no_grad():
        flow = flownet2s(inputs)
        flownet2s.div_flow = 10.0
        try:
            flow_half = flownet2s(inputs)
        finally:
            flownet2s.div_flow = 20.0
    assert flow.shape == (2, 2, 70, 100)
    assert torch.isfinite(flow).all() and flow.abs().max() > 0
    torch.testing.assert_close(flow_half, flow / 2)


def test_forward_normalises_each_sample_and_channel(flownet2s: FlowNet2S) -> None:
    """Per-sample, per-channel mean removal and division by rgb_max: an offset per channel changes nothing."""
    gen = torch.Generator().manual_seed(2)
    inputs = torch.rand(1, 3, 2, 64, 64, generator=gen) * 200
    shifted = inputs + torch.tensor([10.0, -20.0, 30.0]).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        flow = flownet2s(inputs)
        torch.testing.assert_close(flownet2s(shifted), flow, rtol=1e-4, atol=1e-4)
    x = normalize_pair(inputs, 255.0)
    assert x.shape == (1, 6, 64, 64)
    assert x.view(1, 2, 3, -1).mean(dim=(1, 3)).abs().max() < 1e-6  # zero mean over both frames per channel
    torch.testing.assert_close(x[:, 3:] - x[:, :3], (inputs[:, :, 1] - inputs[:, :, 0]) / 255.0)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(FLOWNET2_VARIANTS))
def test_every_variant_runs_at_any_size(variant: str) -> None:
    model = FLOWNET2_VARIANTS[variant]().eval()
    with torch.no_grad():
        flow = model(torch.rand(1, 3, 2, 50, 90) * 255)
    assert flow.shape == (1, 2, 50, 90) and torch.isfinite(flow).all()


def test_forward_rejects_wrong_layout(flownet2s: FlowNet2S) -> None:
    with pytest.raises(ValueError, match=r"B×3×2×H×W"):
        flownet2s(torch.zeros(1, 6, 64, 64))


def test_resample2d_matches_clamped_bilinear_kernel() -> None:
    """Resample2d against the reference kernel's formula, indices clamped to the image, flows leaving it."""
    gen = torch.Generator().manual_seed(4)
    image = torch.rand(1, 2, 5, 7, generator=gen, dtype=torch.float64)
    flow = (torch.rand(1, 2, 5, 7, generator=gen, dtype=torch.float64) - 0.5) * 6
    out = Resample2d()(image, flow)
    img, fl = image[0].numpy(), flow[0].numpy()
    ref = np.zeros_like(img)
    for y in range(5):
        for x in range(7):
            xf, yf = x + fl[0, y, x], y + fl[1, y, x]
            a, b = xf - math.floor(xf), yf - math.floor(yf)
            xl, xr = np.clip([math.floor(xf), math.floor(xf) + 1], 0, 6)
            yt, yb = np.clip([math.floor(yf), math.floor(yf) + 1], 0, 4)
            ref[:, y, x] = (
                (1 - a) * (1 - b) * img[:, yt, xl]
                + a * (1 - b) * img[:, yt, xr]
                + (1 - a) * b * img[:, yb, xl]
                + a * b * img[:, yb, xr]
            )
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-9)


def test_channel_norm() -> None:
    x = torch.tensor([[[[3.0, 0.0]], [[4.0, 0.0]]]], requires_grad=True)  # 1×2×1×2
    out = ChannelNorm()(x)
    assert out.shape == (1, 1, 1, 2)
    assert out.flatten().tolist() == [5.0, 0.0]
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# --- checkpoints -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_c(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """An official-format FlowNet2-C checkpoint written from a freshly initialised model."""
    torch.manual_seed(5)
    state = FlowNet2C().state_dict()
    path = tmp_path_factory.mktemp("ckpt") / CHECKPOINT_FILES["FlowNet2C"]
    torch.save({"arch": "FlowNet2C", "epoch": 0, "state_dict": state, "best_EPE": 1e10}, path)
    return path, state


def test_load_checkpoint_round_trip(checkpoint_c: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = checkpoint_c
    torch.manual_seed(6)
    model = FlowNet2C()
    assert not torch.equal(model.conv1[0].weight, state["conv1.0.weight"])
    meta = load_flownet2_checkpoint(model, path)
    assert meta == {"arch": "FlowNet2C", "epoch": 0, "best_EPE": 1e10}
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    with torch.no_grad():  # the correlation path runs on the loaded weights
        flow = model.eval()(torch.rand(1, 3, 2, 40, 72) * 255)
    assert flow.shape == (1, 2, 40, 72) and torch.isfinite(flow).all()


def _tiny_state(variant: str) -> dict[str, torch.Tensor]:
    """A variant's keys with the right shapes but one shared element: a full-layout checkpoint of a few bytes."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in FLOWNET2_VARIANTS[variant]().state_dict().items()}
    return {k: torch.zeros(1).expand(s) for k, s in shapes.items()}


def test_load_checkpoint_lists_missing_unexpected_and_mismatched(tmp_path: Path) -> None:
    state = _tiny_state("FlowNet2C")
    del state["conv1.0.bias"]
    state["conv_extra.0.weight"] = torch.zeros(1)
    state["predict_flow2.weight"] = torch.zeros(1).expand(2, 193, 3, 3)
    path = tmp_path / "broken.pth.tar"
    torch.save({"epoch": 3, "state_dict": state, "best_EPE": 1.0}, path)
    with torch.device("meta"):
        model = FlowNet2C()
    with pytest.raises(ValueError) as info:
        load_flownet2_checkpoint(model, path)
    message = str(info.value)
    assert str(path) in message
    assert "missing keys: 1 (conv1.0.bias)" in message
    assert "unexpected keys: 1 (conv_extra.0.weight)" in message
    assert "predict_flow2.weight: file (2, 193, 3, 3) vs model (2, 194, 3, 3)" in message


def test_load_checkpoint_names_the_variant_the_file_fits(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_FILES["FlowNet2CS"]
    torch.save(
        {"arch": "FlowNet2CS", "epoch": 0, "state_dict": _tiny_state("FlowNet2CS"), "best_EPE": 1e10}, path
    )
    with torch.device("meta"):
        model = flownet2_model("flownet2css")
    with pytest.raises(ValueError, match=r"keys are those of FlowNet2CS \(expected file name FlowNet2-CS_"):
        load_flownet2_checkpoint(model, path)


def test_load_checkpoint_accepts_data_parallel_prefix(tmp_path: Path) -> None:
    state = {f"module.{k}": v for k, v in _tiny_state("FlowNet2S").items()}
    path = tmp_path / "dp.pth.tar"
    torch.save({"state_dict": state}, path)
    model = FlowNet2S()
    assert load_flownet2_checkpoint(model, path) == {}
    assert model.conv1[0].weight.abs().max() == 0


def test_load_checkpoint_rejects_corrupt_and_foreign_files(
    tmp_path: Path, checkpoint_c: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    with torch.device("meta"):
        model = FlowNet2C()
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(checkpoint_c[0].read_bytes()[:4096])
    with pytest.raises(ValueError, match="could not be read as a FlowNet2 checkpoint") as info:
        load_flownet2_checkpoint(model, truncated)
    assert str(truncated) in str(info.value)

    foreign = tmp_path / "foreign.pth.tar"
    torch.save({"epoch": 1, "weights": [1, 2, 3]}, foreign)
    with pytest.raises(ValueError, match=r"expected a dict with keys 'arch', 'epoch', 'state_dict'"):
        load_flownet2_checkpoint(model, foreign)

    missing = tmp_path / "absent.pth.tar"
    with pytest.raises(FileNotFoundError, match="flownet2-pytorch"):
        load_flownet2_checkpoint(model, missing)
