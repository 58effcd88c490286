"""Chebyshev graph convolution against the dense polynomial Σ_k T_k(L̂) x θ_k."""

from __future__ import annotations

import copy

import pytest
import torch

from tassn.nets.chebconv import ChebConv


def _dense_reference(conv: ChebConv, x: torch.Tensor) -> torch.Tensor:
    lap = conv.laplacian().to_dense().double()
    n = lap.shape[0]
    polys = [torch.eye(n, dtype=torch.float64), lap]
    while len(polys) < conv.K:
        polys.append(2 * lap @ polys[-1] - polys[-2])
    w = conv.linear.weight.double().view(conv.out_features, conv.in_features, conv.K)  # θ_k = w[:, :, k]ᵀ
    out = sum(polys[k] @ x.double() @ w[:, :, k].T for k in range(conv.K))
    return out + conv.linear.bias.double()


@pytest.mark.parametrize("K", [1, 2, 3, 5])
def test_matches_dense_polynomial(sphere_hierarchy, K: int) -> None:
    torch.manual_seed(0)
    lap = sphere_hierarchy.laplacians[1]
    conv = ChebConv(4, 6, K, lap)
    torch.nn.init.normal_(conv.linear.bias)
    x = torch.randn(3, lap.shape[0], 4)
    y = conv(x)
    assert y.shape == (3, lap.shape[0], 6)
    torch.testing.assert_close(y.double(), _dense_reference(conv, x), rtol=1e-4, atol=1e-4)


def test_k1_is_a_per_vertex_linear_map(sphere_hierarchy) -> None:
    conv = ChebConv(3, 2, 1, sphere_hierarchy.laplacians[0])
    x = torch.randn(2, sphere_hierarchy.num_vertices[0], 3)
    torch.testing.assert_close(conv(x), conv.linear(x))


def test_filter_is_local(sphere_hierarchy) -> None:
    """A K-term filter reaches K−1 hops: an impulse spreads exactly to the 1-ring for K = 2."""
    lap = sphere_hierarchy.laplacians[0]
    adj = sphere_hierarchy.adjacencies[0]
    conv = ChebConv(1, 1, 2, lap, bias=False)
    x = torch.zeros(1, lap.shape[0], 1)
    v = 5 if sphere_hierarchy.perm[5] >= 0 else 6
    x[0, v, 0] = 1.0
    touched = set(torch.nonzero(conv(x)[0, :, 0]).squeeze(1).tolist())
    assert touched == {v, *adj[v].indices.tolist()}


def test_gradients_and_state_dict(sphere_hierarchy) -> None:
    conv = ChebConv(2, 3, 3, sphere_hierarchy.laplacians[2])
    assert set(conv.state_dict()) == {"linear.weight", "linear.bias"}  # L̂ is rebuilt, not checkpointed
    x = torch.randn(2, sphere_hierarchy.num_vertices[2], 2, requires_grad=True)
    conv(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert conv.linear.weight.grad.abs().sum() > 0
    twin = copy.deepcopy(conv).double()
    assert twin.lap_values.dtype == torch.float64
    torch.testing.assert_close(twin(x.detach().double()).float(), conv(x.detach()), rtol=1e-5, atol=1e-5)
    fresh = ChebConv(2, 3, 3, sphere_hierarchy.laplacians[2])
    fresh.load_state_dict(conv.state_dict())
    torch.testing.assert_close(fresh(x.detach()), conv(x.detach()))


def test_bad_input_shape(sphere_hierarchy) -> None:
    conv = ChebConv(2, 3, 3, sphere_hierarchy.laplacians[2])
    with pytest.raises(ValueError, match="B×52×2"):
        conv(torch.zeros(1, 25, 2))
    with pytest.raises(ValueError, match="sparse"):
        ChebConv(2, 3, 3, torch.eye(4))


def test_trains_under_bf16_autocast(sphere_hierarchy) -> None:
    """Lightning's bf16-mixed: the sparse products stay in float32, the mixing Linear runs in bf16, and the backward
    reaches a bf16 input and the float32 weights (it failed on the dtype mismatch when autocast ran the sparse
    products)."""
    torch.manual_seed(0)
    conv = ChebConv(2, 3, 3, sphere_hierarchy.laplacians[2])
    x = torch.randn(2, sphere_hierarchy.num_vertices[2], 2)
    xb = x.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(xb)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert xb.grad is not None and xb.grad.dtype == torch.bfloat16 and xb.grad.abs().sum() > 0
    assert conv.linear.weight.grad is not None and conv.linear.weight.grad.dtype == torch.float32
    torch.testing.assert_close(y.float(), conv(x), rtol=0.05, atol=0.05)
