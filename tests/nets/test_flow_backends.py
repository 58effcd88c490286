"""Flow backends: the sign convention img_b(x + o(x)) ≈ img_a(x), freezing, the factory and its errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from tassn.nets.flow import (
    FLOW_BACKENDS,
    DISFlow,
    FlowEstimator,
    FlowNet2Backend,
    ZeroFlow,
    build_flow_estimator,
)
from tassn.nets.flownet2 import CHECKPOINT_FILES, FlowNet2S
from tassn.nets.flownet2_ops import warp

SIZE = 96
BORDER = 12  # np.roll wraps around: judge the interior only


def textured_image(seed: int, size: int = SIZE) -> np.ndarray:
    """Smoothed RGB noise in [0, 1], H×W×3: texture at every scale DIS looks at."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.5)
    return (img - img.min()) / (img.max() - img.min())


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved by (dx, dy): out(x + d) = img(x)."""
    return np.roll(img, shift=(dy, dx), axis=(0, 1))


def to_tensor(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def interior(t: torch.Tensor) -> torch.Tensor:
    return t[..., BORDER:-BORDER, BORDER:-BORDER]


def test_dis_recovers_a_known_shift_per_sample() -> None:
    a0, a1 = textured_image(0), textured_image(1)
    img_a = to_tensor(a0, a1)
    img_b = to_tensor(shifted(a0, 3, -2), shifted(a1, -1, 2))
    flow = DISFlow()(img_a, img_b)
    assert flow.shape == (2, 2, SIZE, SIZE) and flow.dtype == torch.float32
    medians = interior(flow).flatten(2).median(dim=2).values
    torch.testing.assert_close(medians, torch.tensor([[3.0, -2.0], [-1.0, 2.0]]), atol=0.5, rtol=0)
    # The reversed pair is the same call with the images swapped.
    back = interior(DISFlow()(img_b[:1], img_a[:1])).flatten(2).median(dim=2).values
    torch.testing.assert_close(back, torch.tensor([[-3.0, 2.0]]), atol=0.5, rtol=0)


def test_dis_flow_warps_img_b_back_onto_img_a() -> None:
    a = textured_image(2)
    img_a, img_b = to_tensor(a), to_tensor(shifted(a, 3, -2))
    flow = DISFlow()(img_a, img_b)
    error = (interior(warp(img_b, flow)) - interior(img_a)).abs().mean()
    baseline = (interior(img_b) - interior(img_a)).abs().mean()
    assert error < 0.1 * baseline


def test_warp_convention_for_a_known_shift() -> None:
    """warp(img_b, o) = img_b(x + o(x)) reconstructs img_a for the true flow, integer or sub-pixel."""
    a = textured_image(3)
    img_a, img_b = to_tensor(a), to_tensor(shifted(a, 3, -2))
    flow_true = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, SIZE, SIZE)
    torch.testing.assert_close(interior(warp(img_b, flow_true)), interior(img_a))
    assert (interior(warp(img_b, -flow_true)) - interior(img_a)).abs().mean() > 0.05  # the sign matters
    # A linear ramp moved by a sub-pixel amount is reconstructed exactly by bilinear sampling.
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(40.0), indexing="ij")
    o = torch.tensor([1.25, -0.5])
    ramp_a = (0.01 * xs + 0.02 * ys).expand(1, 3, 32, 40)
    ramp_b = (0.01 * (xs - o[0]) + 0.02 * (ys - o[1])).expand(1, 3, 32, 40)  # b(x + o) = a(x)
    warped = warp(ramp_b, o.view(1, 2, 1, 1).expand(1, 2, 32, 40))
    torch.testing.assert_close(warped[..., 2:-2, 2:-2], ramp_a[..., 2:-2, 2:-2])


def test_zero_flow() -> None:
    img = torch.rand(3, 3, 20, 30, dtype=torch.float64)
    flow = ZeroFlow()(img, img.flip(0))
    assert flow.shape == (3, 2, 20, 30) and flow.dtype == torch.float64
    assert flow.abs().sum() == 0


def test_backends_reject_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"B×3×H×W"):
        ZeroFlow()(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        DISFlow()(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="unknown DIS preset"):
        DISFlow(preset="slow")


# --- FlowNet2 backend --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An official-format FlowNet2-S checkpoint of a freshly initialised model (stands in for the real file)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("flownet2") / CHECKPOINT_FILES["FlowNet2S"]
    torch.save(
        {"arch": "FlowNet2S", "epoch": 0, "state_dict": FlowNet2S().state_dict(), "best_EPE": 1e10}, path
    )
    return path


class Parent(nn.Module):
    def __init__(self, flow: FlowEstimator) -> None:
        super().__init__()
        self.flow = flow
        self.head = nn.Linear(2, 2)


def test_flownet2_backend_is_frozen_by_default(checkpoint_s: Path) -> None:
    backend = build_flow_estimator("flownet2s", checkpoint=str(checkpoint_s))
    assert isinstance(backend, FlowNet2Backend) and backend.variant == "FlowNet2S"
    assert backend.frozen and not backend.differentiable
    assert not any(p.requires_grad for p in backend.parameters())
    parent = Parent(backend).train()
    assert parent.head.training and not backend.model.training

    gen = torch.Generator().manual_seed(1)
    img_a, img_b = torch.rand(2, 3, 70, 100, generator=gen), torch.rand(2, 3, 70, 100, generator=gen)
    flow = backend(img_a, img_b)
    assert flow.shape == (2, 2, 70, 100) and flow.grad_fn is None
    with torch.no_grad():  # [0, 1] images reach the network as 0–255 RGB, frame a first
        expected = backend.model(torch.stack((img_a, img_b), dim=2) * 255)
    torch.testing.assert_close(flow, expected)

    # The official weights are not duplicated into the parent's checkpoints, and loading those keeps them.
    state = parent.state_dict()
    assert set(state) == {"head.weight", "head.bias"}
    before = backend.model.conv1[0].weight.clone()
    parent.load_state_dict(state, strict=True)
    assert torch.equal(backend.model.conv1[0].weight, before)


def test_flownet2_backend_trainable(checkpoint_s: Path) -> None:
    backend = FlowNet2Backend("FlowNet2S", str(checkpoint_s), trainable=True)
    assert not backend.frozen and backend.differentiable
    parent = Parent(backend).train()
    assert backend.model.training
    flow = backend(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    flow.square().mean().backward()
    assert backend.model.conv1[0].weight.grad is not None
    state = parent.state_dict()
    assert "flow.model.conv1.0.weight" in state and len(state) == 2 + 42
    # Fine-tuned weights saved with the parent come back on load.
    with torch.no_grad():
        state["flow.model.conv1.0.bias"] = torch.full((64,), 0.25)
    parent.load_state_dict(state, strict=True)
    assert torch.equal(backend.model.conv1[0].bias, torch.full((64,), 0.25))


def test_flownet2_backend_unfrozen_later_is_saved(checkpoint_s: Path) -> None:
    backend = FlowNet2Backend("flownet2s", str(checkpoint_s))
    backend.requires_grad_(True)
    assert not backend.frozen
    assert "model.predict_flow2.bias" in backend.state_dict()
    assert backend(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).grad_fn is not None


def test_factory_builds_parameter_free_backends() -> None:
    assert isinstance(build_flow_estimator(), DISFlow)
    assert isinstance(build_flow_estimator("none"), ZeroFlow)
    assert set(FLOW_BACKENDS) == {"dis", "none", *(n.lower() for n in CHECKPOINT_FILES)}


def test_factory_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"unknown flow backend 'raft'; valid names: dis, none, flownet2, flownet2c"
    ):
        build_flow_estimator("raft")
    with pytest.raises(ValueError, match=r"FlowNet2_checkpoint\.pth\.tar.*NVIDIA flownet2-pytorch README"):
        build_flow_estimator("flownet2")
    with pytest.raises(ValueError, match=r"FlowNet2-CSS_checkpoint\.pth\.tar"):
        build_flow_estimator("flownet2css")
    with pytest.raises(FileNotFoundError, match=r"absent\.pth\.tar does not exist.*FlowNet2-SD_checkpoint"):
        build_flow_estimator("flownet2sd", checkpoint=str(tmp_path / "absent.pth.tar"))
