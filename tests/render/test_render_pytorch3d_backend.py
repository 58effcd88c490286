"""Our soft rasterizer against PyTorch3D itself, where PyTorch3D is installed (it is optional)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytorch3d", reason="PyTorch3D is not installed (optional; conda or source build)")
trimesh = pytest.importorskip("trimesh")

from tassn.render import pytorch3d_silhouette, soft_silhouette  # noqa: E402


@pytest.mark.parametrize("sigma", [1e-4, 1e-3])
def test_soft_rasterizer_matches_pytorch3d(sigma: float) -> None:
    m = trimesh.creation.icosphere(subdivisions=3)
    v = torch.tensor(m.vertices, dtype=torch.float32)
    f = torch.tensor(m.faces, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    S = 64
    verts = torch.stack(
        [
            torch.cat([v[:, :2] * 20 + 32 + torch.randn(2, generator=g) * 3, v[:, 2:] * 20 + 100], 1)
            for _ in range(3)
        ]
    )
    ours = soft_silhouette(verts, f, S, sigma=sigma, faces_per_pixel=50)
    theirs = pytorch3d_silhouette(verts, f, S, sigma=sigma, faces_per_pixel=50, bin_size=0)
    inter = ((ours > 0.5) & (theirs > 0.5)).sum()
    union = ((ours > 0.5) | (theirs > 0.5)).sum()
    assert (inter / union).item() > 0.99
    assert (ours - theirs).abs().mean().item() < 1e-3
