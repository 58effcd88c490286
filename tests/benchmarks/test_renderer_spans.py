"""The soft rasterizer's short-face span shortcut (the benchmarked hot-spot fix) renders what the tight spans do."""

from __future__ import annotations

import pytest
import torch

from tassn.render.soft_rasterizer import soft_silhouette


def mesh_grid(n: int, side: float, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """An n×n grid of vertices (two triangles per cell) spanning ``side`` px from ``offset``, z varying."""
    t = torch.linspace(0.0, 1.0, n)
    y, x = torch.meshgrid(t, t, indexing="ij")
    verts = torch.stack([offset + side * x, offset + side * y, 1.0 + x * y], -1).reshape(1, -1, 3)
    i = torch.arange(n - 1)
    a = (i[:, None] * n + i[None, :]).reshape(-1)
    faces = torch.cat([torch.stack([a, a + 1, a + n], 1), torch.stack([a + 1, a + n + 1, a + n], 1)])
    return verts, faces


@pytest.mark.parametrize(("n", "side", "sigma"), [(12, 20.0, 1e-4), (3, 20.0, 1e-3), (6, 9.0, 1e-3)])
def test_shortcut_matches_tight_spans(n: int, side: float, sigma: float) -> None:
    """Small faces (the shortcut), big faces (tight band extents) and a mix give the same alpha and gradient."""
    verts, faces = mesh_grid(n, side, 2.5)
    verts = (verts + 0.3 * torch.rand(verts.shape, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    results = []
    for tight in (True, False):
        alpha = soft_silhouette(verts, faces, 24, sigma=sigma, faces_per_pixel=4, tight_spans=tight, method="spans")
        (grad,) = torch.autograd.grad((alpha * torch.arange(24.0)).sum(), verts)
        results.append((alpha.detach(), grad))
    (a_tight, g_tight), (a_fast, g_fast) = results
    assert float(a_tight.sum()) > 50.0  # the mesh covers a real area
    torch.testing.assert_close(a_fast, a_tight, atol=1e-6, rtol=0)
    torch.testing.assert_close(g_fast, g_tight, atol=1e-4, rtol=1e-4)
