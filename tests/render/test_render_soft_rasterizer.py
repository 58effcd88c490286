"""The built-in soft rasterizer against a brute-force reference, a stored golden output, analytic answers and its own
gradients."""

from __future__ import annotations

import pytest
import torch
from soft_silhouette_formula import GOLDEN, dense_reference

from tassn.render.soft_rasterizer import blur_radius_for, soft_silhouette


def icosphere(subdivisions: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    trimesh = pytest.importorskip("trimesh")
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    return torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long)


def jittered_spheres(batch: int, S: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    v, f = icosphere(1)
    verts = []
    for _ in range(batch):
        centre = torch.tensor([S / 2, S / 2]) + torch.randn(2, generator=g) * 2
        vb = torch.cat([v[:, :2] * S * 0.3 + centre, v[:, 2:] * 10 + 20], 1)
        verts.append(vb + torch.randn(vb.shape, generator=g) * 0.6)
    return torch.stack(verts), f


@pytest.mark.parametrize("sigma", [1e-4, 1e-3, 1e-2])
@pytest.mark.parametrize("k", [None, 50, 3])
def test_matches_brute_force_reference(sigma: float, k: int | None) -> None:
    verts, faces = jittered_spheres(2, 24)
    ours = soft_silhouette(verts, faces, 24, sigma=sigma, faces_per_pixel=k)
    ref = dense_reference(verts, faces, 24, sigma, k)
    assert ours.shape == (2, 1, 24, 24)
    assert (ours.double() - ref).abs().max().item() < 1e-5
    assert ours.sum().item() > 50  # something was drawn


def test_chunking_does_not_change_the_result() -> None:
    verts, faces = jittered_spheres(2, 24)
    big = soft_silhouette(verts, faces, 24, sigma=1e-3, faces_per_pixel=4, method="spans")
    small = soft_silhouette(verts, faces, 24, sigma=1e-3, faces_per_pixel=4, max_spans=7, method="spans")
    torch.testing.assert_close(big, small, atol=1e-6, rtol=0)  # only the summation order differs


def _rectangle(x0: float, x1: float, y0: float, y1: float) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor([[x0, y0, 1.0], [x1, y0, 1.0], [x1, y1, 1.0], [x0, y1, 1.0]])[None]
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return v, f


def test_rectangle_area_hard_and_soft() -> None:
    # pixel centres at integers: x 11…50 and y 21…40 are inside → 40 × 20 = 800 pixels
    v, f = _rectangle(10.5, 50.5, 20.5, 40.5)
    hard = soft_silhouette(v, f, 64, sigma=1e-8)
    assert hard.sum().item() == pytest.approx(800.0, abs=1e-3)
    assert hard[0, 0, 21, 11].item() == pytest.approx(1.0) and hard[0, 0, 20, 11].item() == pytest.approx(0.0)
    # the soft edge gives outside what it takes inside (1 − sigmoid(x) = sigmoid(−x)); only the corners and the
    # internal diagonal (where PyTorch3D's blending dips to ≥ 0.75) differ from the area
    soft = soft_silhouette(v, f, 64, sigma=1e-4)
    assert soft.sum().item() == pytest.approx(800.0, rel=0.02)
    assert soft.min().item() >= 0.0 and soft.max().item() <= 1.0


def test_edge_profile_is_pytorch3d_sigmoid_of_squared_ndc_distance() -> None:
    S, sigma = 64, 1e-3
    v = torch.tensor([[[20.3, 0.0, 1.0], [20.3, 63.0, 1.0], [60.0, 31.5, 1.0]]])
    f = torch.tensor([[0, 1, 2]])
    alpha = soft_silhouette(v, f, S, sigma=sigma)[0, 0, 31]
    blur = blur_radius_for(sigma)
    for j in range(10, 30):
        d = ((j - 20.3) * 2 / S) ** 2
        inside = j > 20.3
        expected = torch.sigmoid(torch.tensor(d / sigma if inside else -d / sigma)).item()
        if not inside and d >= blur:
            expected = 0.0
        assert alpha[j].item() == pytest.approx(expected, abs=1e-5), j


def test_faces_per_pixel_keeps_the_nearest_faces() -> None:
    # two identical triangles at different depths; K = 1 keeps only the nearer one
    tri = torch.tensor([[8.2, 8.2], [40.0, 8.2], [8.2, 40.0]])
    near = torch.cat([tri, torch.full((3, 1), 1.0)], 1)
    far = torch.cat([tri, torch.full((3, 1), 5.0)], 1)
    v = torch.cat([far, near])[None]
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    S, sigma = 48, 1e-3
    one = soft_silhouette(v, f, S, sigma=sigma, faces_per_pixel=1)[0, 0, 20, 7]
    both = soft_silhouette(v, f, S, sigma=sigma, faces_per_pixel=None)[0, 0, 20, 7]
    p = torch.sigmoid(torch.tensor(-((1.2 * 2 / S) ** 2) / sigma)).item()
    assert one.item() == pytest.approx(p, abs=1e-6)
    assert both.item() == pytest.approx(1 - (1 - p) ** 2, abs=1e-6)


def test_gradient_matches_autograd_of_reference() -> None:
    verts, faces = jittered_spheres(2, 20, seed=1)
    weights = torch.rand(2, 1, 20, 20, generator=torch.Generator().manual_seed(2))
    ref_in = verts.double().requires_grad_(True)
    (dense_reference(ref_in, faces, 20, 1e-2, None) * weights.double()).sum().backward()
    ours_in = verts.clone().requires_grad_(True)
    (soft_silhouette(ours_in, faces, 20, sigma=1e-2, faces_per_pixel=None) * weights).sum().backward()
    assert ours_in.grad is not None and ref_in.grad is not None
    assert ref_in.grad[..., :2].abs().max().item() > 0.1
    torch.testing.assert_close(ours_in.grad[..., :2], ref_in.grad[..., :2].float(), atol=1e-4, rtol=1e-3)
    assert ours_in.grad[..., 2].abs().max().item() == 0.0


def test_offscreen_and_degenerate_meshes_render_empty() -> None:
    v, f = _rectangle(-50, -10, -50, -10)
    assert soft_silhouette(v, f, 16).sum().item() == 0.0
    flat = torch.tensor([[[1.0, 1.0, 1.0], [5.0, 5.0, 1.0], [9.0, 9.0, 1.0]]])
    assert soft_silhouette(flat, torch.tensor([[0, 1, 2]]), 16).sum().item() == 0.0


def test_bad_inputs_raise_clear_errors() -> None:
    v, f = _rectangle(1, 5, 1, 5)
    with pytest.raises(ValueError, match="B×V×3"):
        soft_silhouette(v[0], f, 16)
    with pytest.raises(ValueError, match="outside"):
        soft_silhouette(v, f + 10, 16)
    with pytest.raises(ValueError, match="integer"):
        soft_silhouette(v, f.float(), 16)
    with pytest.raises(ValueError, match="sigma"):
        soft_silhouette(v, f, 16, sigma=0.0)


def test_matches_the_stored_golden_output_of_pytorch3d_blending() -> None:
    """The golden file holds PyTorch3D's soft silhouette blending computed once from the published formula in float64
    (tests/render/soft_silhouette_formula.py writes it); the rasterizer must keep reproducing it."""
    import numpy as np

    with np.load(GOLDEN) as golden:
        verts, faces, size = torch.from_numpy(golden["verts"]), torch.from_numpy(golden["faces"]), int(golden["size"])
        cases = [(float(s), None if int(k) < 0 else int(k), torch.from_numpy(golden[f"alpha_{i}"]))
                 for i, (s, k) in enumerate(zip(golden["sigmas"], golden["faces_per_pixel"], strict=True))]
    assert len(cases) == 4
    for sigma, k, expected in cases:
        ours = soft_silhouette(verts, faces, size, sigma=sigma, faces_per_pixel=k)
        assert (ours.double() - expected).abs().max().item() < 1e-5, (sigma, k)
        assert expected.sum().item() > 20  # the hand-sized blob was drawn


@pytest.mark.parametrize("k", [None, 3])
def test_window_method_matches_span_walk_and_reference(k: int | None) -> None:
    """The K×K-window search finds the same pairs as the row-span walk: same alpha and vertex gradients to float
    rounding (k = 3 crowds pixels, so the depth ranking of the window pairs is exercised too)."""
    verts, faces = jittered_spheres(3, 24, seed=2)
    weights = torch.rand(3, 1, 24, 24, generator=torch.Generator().manual_seed(4))
    out = {}
    for method in ("spans", "windows"):
        v = verts.clone().requires_grad_(True)
        alpha = soft_silhouette(v, faces, 24, sigma=1e-3, faces_per_pixel=k, method=method, max_candidates=500)
        (alpha * weights).sum().backward()
        out[method] = (alpha.detach(), v.grad)
    ref = dense_reference(verts, faces, 24, 1e-3, k)
    assert (out["windows"][0].double() - ref).abs().max().item() < 1e-5 and out["windows"][0].sum() > 50
    torch.testing.assert_close(out["windows"][0], out["spans"][0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out["windows"][1], out["spans"][1], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="method"):
        soft_silhouette(verts, faces, 24, method="tiles")  # type: ignore[arg-type]
