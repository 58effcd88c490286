"""FlowNetC correlation against a slow explicit loop, FlowNetC's 441-channel layout, and its gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tassn.nets.correlation import Correlation, correlation


def correlation_loop(
    f1: np.ndarray, f2: np.ndarray, pad: int, max_disp: int, stride1: int, stride2: int
) -> np.ndarray:
    """Reference: every output pixel and displacement visited one by one, zero outside the image."""
    b, c, h, w = f1.shape
    radius = max_disp // stride2
    grid = 2 * radius + 1
    out_h = -(-(h + 2 * pad - 2 * max_disp) // stride1)
    out_w = -(-(w + 2 * pad - 2 * max_disp) // stride1)

    def at(f: np.ndarray, n: int, y: int, x: int) -> np.ndarray:
        if 0 <= y < h and 0 <= x < w:
            return f[n, :, y, x]
        return np.zeros(c, dtype=f.dtype)

    out = np.zeros((b, grid * grid, out_h, out_w), dtype=np.float64)
    for n in range(b):
        for i in range(out_h):
            for j in range(out_w):
                y1 = i * stride1 + max_disp - pad  # original-image coordinates
                x1 = j * stride1 + max_disp - pad
                for tj in range(-radius, radius + 1):
                    for ti in range(-radius, radius + 1):
                        v = at(f1, n, y1, x1) @ at(f2, n, y1 + tj * stride2, x1 + ti * stride2)
                        out[n, (tj + radius) * grid + (ti + radius), i, j] = v / c
    return out


@pytest.mark.parametrize(
    ("pad", "max_disp", "stride1", "stride2"),
    [(2, 2, 1, 1), (4, 4, 1, 2), (3, 3, 1, 2), (2, 2, 2, 1), (0, 1, 1, 1), (1, 3, 1, 1)],
)
def test_matches_loop_reference(pad: int, max_disp: int, stride1: int, stride2: int) -> None:
    gen = torch.Generator().manual_seed(pad * 100 + max_disp * 10 + stride1 + stride2)
    f1 = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    f2 = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    out = correlation(f1, f2, pad_size=pad, max_displacement=max_disp, stride1=stride1, stride2=stride2)
    ref = correlation_loop(f1.numpy(), f2.numpy(), pad, max_disp, stride1, stride2)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_flownetc_configuration_on_tiny_map() -> None:
    """The real setting (pad 20, displacement 20, stride2 2): 441 channels, same size, equal to the loop."""
    gen = torch.Generator().manual_seed(7)
    f1 = torch.randn(1, 4, 3, 5, generator=gen)
    f2 = torch.randn(1, 4, 3, 5, generator=gen)
    layer = Correlation()
    out = layer(f1, f2)
    assert layer.out_channels == 441
    assert out.shape == (1, 441, 3, 5)
    ref = correlation_loop(f1.double().numpy(), f2.double().numpy(), 20, 20, 1, 2)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_channel_index_of_a_known_displacement() -> None:
    """A feature at (y, x) in image 1 matching one at (y + dy, x + dx) lights channel (dy/2+10)·21 + (dx/2+10)."""
    c, h, w = 8, 24, 24
    f1 = torch.zeros(1, c, h, w)
    f2 = torch.zeros(1, c, h, w)
    y, x, dy, dx = 12, 11, -6, 8
    f1[0, :, y, x] = 1.0
    f2[0, :, y + dy, x + dx] = 1.0
    out = Correlation()(f1, f2)
    channel = (dy // 2 + 10) * 21 + (dx // 2 + 10)
    assert out[0, channel, y, x].item() == pytest.approx(1.0)  # Σ_c 1·1 / C
    assert out.sum().item() == pytest.approx(1.0)  # nothing else correlates


def test_gradients_match_finite_differences() -> None:
    gen = torch.Generator().manual_seed(3)
    f1 = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: correlation(a, b, 2, 1, 2, 1, 2), (f1, f2))


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="equal shape"):
        correlation(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="kernel_size=1"):
        Correlation(kernel_size=3)
