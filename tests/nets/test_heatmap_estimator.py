"""Stacked hourglass heatmap estimator: shapes, stacking, input conditioning."""

from __future__ import annotations

import pytest
import torch

from tassn.nets.heatmap_estimator import HeatmapEstimator, Residual, StackedHourglass


def test_residual_skip_and_projection() -> None:
    same = Residual(8, 8).eval()
    torch.nn.init.zeros_(same.body[-1].weight)
    torch.nn.init.zeros_(same.body[-1].bias)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(same(x), x)  # identity skip when widths agree
    wider = Residual(8, 16)
    assert isinstance(wider.skip, torch.nn.Conv2d) and wider(x).shape == (2, 16, 5, 5)


@pytest.mark.parametrize("stacks", [1, 2])
def test_shapes(stacks: int) -> None:
    net = StackedHourglass(5, 21, features=16, stacks=stacks, depth=2, modules=1, stem_features=16)
    out = net(torch.randn(2, 5, 64, 64))
    assert out.heatmaps.shape == (2, stacks, 21, 16, 16)
    assert out.features.shape == (2, 16, 16, 16)
    assert (out.previous_features is None) == (stacks == 1)
    if stacks == 2:
        assert out.previous_features.shape == (2, 16, 16, 16)
    assert len(net.hourglasses) == stacks and net.size_multiple == 16


def test_paper_configuration_sizes() -> None:
    net = StackedHourglass(26, 21)  # 256 features, 2 stacks, depth 4, 2 modules
    assert net.stem[0].in_channels == 26 and net.stem[0].out_channels == 64
    assert net.size_multiple == 64
    n_params = sum(p.numel() for p in net.parameters())
    # 26 bottlenecks (213 k each at 256 features) per depth-4 hourglass with 2 modules/slot, ≈ 6.3 M per stack
    assert 12_000_000 < n_params < 13_000_000


def test_input_size_must_fit_depth() -> None:
    net = StackedHourglass(5, 21, features=16, stacks=1, depth=3, modules=1, stem_features=16)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.zeros(1, 5, 48, 48))


def test_estimator_conditions_its_inputs(monkeypatch) -> None:
    est = HeatmapEstimator(21, features=16, stacks=1, depth=2, modules=1, stem_features=16, flow_normaliser=0.1)
    seen = {}

    class Capture(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return "out"

    monkeypatch.setattr(est, "hourglass", Capture())
    image = torch.full((1, 3, 64, 64), 0.75)
    flow = torch.zeros(1, 2, 64, 64)
    flow[:, 0], flow[:, 1] = 6.4, -3.2  # pixels
    heat = torch.full((1, 21, 16, 16), 0.25)
    assert est(image, flow, heat) == "out"
    x = seen["x"]
    assert x.shape == (1, 26, 64, 64)
    torch.testing.assert_close(x[:, :3], torch.full_like(x[:, :3], 0.25))  # centred image
    torch.testing.assert_close(x[:, 3], torch.full_like(x[:, 3], 1.0))  # 6.4 px / (0.1·64)
    torch.testing.assert_close(x[:, 4], torch.full_like(x[:, 4], -0.5))
    torch.testing.assert_close(x[:, 5:], torch.full_like(x[:, 5:], 0.25))  # heatmaps up-sampled to 64²


def test_estimator_rejects_mismatched_inputs() -> None:
    est = HeatmapEstimator(21, features=16, stacks=1, depth=2, modules=1, stem_features=16)
    with pytest.raises(ValueError, match="flow B×2×H×W"):
        est(torch.zeros(1, 3, 64, 64), torch.zeros(1, 2, 32, 32), torch.zeros(1, 21, 16, 16))
    with pytest.raises(ValueError, match="B×21×h×w"):
        est(torch.zeros(1, 3, 64, 64), torch.zeros(1, 2, 64, 64), torch.zeros(1, 20, 16, 16))


def test_previous_heatmap_changes_the_output() -> None:
    torch.manual_seed(0)
    est = HeatmapEstimator(21, features=16, stacks=2, depth=2, modules=1, stem_features=16).eval()
    image, flow = torch.rand(1, 3, 64, 64), torch.zeros(1, 2, 64, 64)
    a = est(image, flow, torch.zeros(1, 21, 16, 16)).heatmaps
    b = est(image, flow, torch.rand(1, 21, 16, 16)).heatmaps
    assert (a - b).abs().max() > 1e-4
