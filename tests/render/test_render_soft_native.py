"""The compiled CPU loop (``method="native"``) against the PyTorch row-span walk: the same pairs, the same images and
gradients, any thread count, and the fall-back to the span walk where it cannot be built."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import pytest
import torch

from tassn.render import soft_native, soft_rasterizer
from tassn.render.soft_native import load_native
from tassn.render.soft_rasterizer import blur_radius_for, resolve_method, soft_silhouette
from tassn.render.soft_spans import covering_pairs, row_spans

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_train  # noqa: E402

native = pytest.mark.skipif(
    load_native() is None, reason="the native extension did not build (no C++ compiler, or TASSN_NATIVE_RENDER=0)"
)


@pytest.fixture(scope="module")
def hands() -> tuple[torch.Tensor, torch.Tensor]:
    verts, _, faces, _, _ = bench_train.posed_hands(3, 64, seed=2)
    return verts, faces


def jittered_grid(n: int, side: float, offset: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An n×n vertex grid (two triangles per cell) spanning ``side`` px from ``offset``, jittered, z varying."""
    t = torch.linspace(0.0, 1.0, n)
    y, x = torch.meshgrid(t, t, indexing="ij")
    verts = torch.stack([offset + side * x, offset + side * y, 1.0 + x * y], -1).reshape(1, -1, 3)
    verts = verts + 0.3 * torch.rand(verts.shape, generator=torch.Generator().manual_seed(seed))
    i = torch.arange(n - 1)
    a = (i[:, None] * n + i[None, :]).reshape(-1)
    return verts, torch.cat([torch.stack([a, a + 1, a + n], 1), torch.stack([a + 1, a + n + 1, a + n], 1)])


def awkward_mesh(S: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Faces partly outside the image, degenerate (collinear, repeated vertex), a face far larger than the image,
    one with a NaN vertex, one entirely off-screen, and ordinary small ones."""
    v = torch.tensor([
        [-5.3, 3.1, 1.0], [6.2, -4.4, 2.0], [3.7, 9.9, 3.0],  # across the top-left corner
        [S - 3.2, S - 2.6, 1.0], [S + 7.1, S - 1.2, 1.5], [S - 1.4, S + 5.5, 2.5],  # across the bottom-right
        [10.0, 10.0, 1.0], [14.0, 14.0, 1.0], [18.0, 18.0, 1.0],  # collinear
        [20.5, 5.5, 1.0], [20.5, 5.5, 1.0], [25.2, 8.3, 1.0],  # repeated vertex
        [-40.0, -30.0, 9.0], [S + 50.0, S / 2, 8.0], [S / 3, S + 60.0, 7.0],  # far larger than the image
        [30.1, 30.2, 1.0], [float("nan"), 33.0, 1.0], [31.0, 36.0, 1.0],  # NaN
        [-90.0, -90.0, 1.0], [-80.0, -95.0, 1.0], [-85.0, -70.0, 1.0],  # off-screen
        [12.2, 40.3, 0.5], [15.9, 41.1, 0.7], [13.4, 44.8, 0.9],  # small
        [40.6, 12.4, 0.5], [43.2, 12.9, 0.6], [41.1, 14.7, 0.4],  # small
    ])[None]
    return v, torch.arange(v.shape[1]).reshape(-1, 3)


def reference_pairs(verts: torch.Tensor, faces: torch.Tensor, S: int, sigma: float):
    scale = (2.0 / S) ** 2
    blur_px2 = blur_radius_for(sigma) / scale
    xy, z = verts[..., :2].contiguous(), verts[..., 2].contiguous()
    ours = load_native().pairs(xy, z, faces, S, math.sqrt(blur_px2), scale / sigma, blur_px2)
    spans = row_spans(xy, z, faces, S, math.sqrt(blur_px2))
    if spans is None:
        return ours, None
    found = covering_pairs(spans, scale / sigma, blur_px2, 1 << 16, True)
    return ours, [torch.cat(found.pix).long(), torch.cat(found.edge).long(), torch.cat(found.x), torch.cat(found.z)]


def assert_same_pairs(ours: list[torch.Tensor], ref: list[torch.Tensor] | None, num_edges: int) -> None:
    if ref is None:
        assert ours[0].numel() == 0
        return
    key_ours, key_ref = ours[0] * num_edges + ours[1], ref[0] * num_edges + ref[1]
    order_ours, order_ref = torch.argsort(key_ours), torch.argsort(key_ref)
    assert torch.equal(key_ours[order_ours], key_ref[order_ref])  # the same (pixel, nearest edge) pairs
    for a, b in zip(ours[2:], ref[2:], strict=True):  # distance, depth
        torch.testing.assert_close(a[order_ours], b[order_ref], rtol=1e-5, atol=1e-6)


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairs_match_the_span_walk(hands: tuple[torch.Tensor, torch.Tensor], dtype: torch.dtype) -> None:
    verts, faces = hands
    for v, f, S in [(verts, faces, 64), (verts * 3 - 60, faces, 64), (verts, faces, 32),
                    (*jittered_grid(9, 40.0, 3.0, seed=1), 48), (*awkward_mesh(48), 48)]:
        for sigma in (1e-4, 1e-3):
            ours, ref = reference_pairs(v.to(dtype), f, S, sigma)
            assert ours[0].dtype == ours[1].dtype == torch.int64 and ours[2].dtype == ours[3].dtype == dtype
            assert_same_pairs(ours, ref, 3 * v.shape[0] * f.shape[0])
            assert ref is not None and ref[0].numel() > 100


@native
def test_no_pairs() -> None:
    v, f = awkward_mesh(48)
    ours, ref = reference_pairs(v[:, 18:21], torch.tensor([[0, 1, 2]]), 48, 1e-4)  # off-screen only
    assert ref is None and all(t.numel() == 0 for t in ours)
    v = torch.zeros(2, 3, 3).requires_grad_(True)  # every face degenerate
    alpha = soft_silhouette(v, torch.tensor([[0, 1, 2]]), 16, method="native")
    alpha.sum().backward()
    assert alpha.sum().item() == 0.0 and v.grad is not None and v.grad.abs().sum().item() == 0.0


def render(verts: torch.Tensor, faces: torch.Tensor, S: int, method: str, **kwargs) -> tuple[torch.Tensor, ...]:
    v = verts.clone().requires_grad_(True)
    alpha = soft_silhouette(v, faces, S, method=method, **kwargs)
    weights = torch.rand(alpha.shape, generator=torch.Generator().manual_seed(0), dtype=alpha.dtype)
    (alpha * weights).sum().backward()
    assert v.grad is not None
    return alpha.detach(), v.grad


def assert_same_render(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> None:
    torch.testing.assert_close(a[0], b[0], atol=1e-6, rtol=0)
    scale = float(b[1].abs().max())
    assert scale > 0
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-5 * scale)


@native
@pytest.mark.parametrize("k", [50, None])
def test_renders_and_gradients_match_the_span_walk(hands: tuple[torch.Tensor, torch.Tensor], k: int | None) -> None:
    verts, faces = hands
    ours = render(verts, faces, 64, "native", faces_per_pixel=k)
    assert float((ours[0] > 0.5).float().mean()) > 0.05
    assert_same_render(ours, render(verts, faces, 64, "spans", faces_per_pixel=k))


@native
def test_truncation_to_the_nearest_faces_matches_the_span_walk() -> None:
    """Six stacked copies of a grid mesh at different depths: most pixels are covered by more than K = 4 faces."""
    v, f = jittered_grid(7, 30.0, 4.0, seed=3)
    stack = torch.cat([v + torch.tensor([0.37 * i, 0.21 * i, 3.0 - i]) for i in range(6)], 1)
    faces = torch.cat([f + i * v.shape[1] for i in range(6)])
    for k in (4, 50, None):
        ours = render(stack, faces, 40, "native", faces_per_pixel=k, sigma=1e-3)
        assert_same_render(ours, render(stack, faces, 40, "spans", faces_per_pixel=k, sigma=1e-3))
    assert not torch.allclose(render(stack, faces, 40, "native", faces_per_pixel=4)[0],
                              render(stack, faces, 40, "native", faces_per_pixel=None)[0])  # truncation ran


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("depths", ["distinct", "tied", "near-tied"])
def test_compiled_truncation_drops_the_pairs_the_sort_drops(dtype: torch.dtype, k: int, depths: str) -> None:
    """The compiled per-pixel truncation against the PyTorch path's one global sort, on crowded pixels: the same
    pairs set to +inf, ties in z (exact, and within the key's dropped bits) going to the lower edge index."""
    B, S, F = 4, 32, 300
    num_pixels, num_edges = B * S * S, 3 * B * F
    g = torch.Generator().manual_seed(k)
    key = torch.unique(torch.randint(0, num_pixels // 8, (40000,), generator=g) * (B * F)
                       + torch.randint(0, B * F, (40000,), generator=g))  # one pair per (pixel, face)
    pix, face = key // (B * F), key % (B * F)
    edge = 3 * face + torch.randint(0, 3, face.shape, generator=g)
    z = torch.rand(pix.shape, generator=g, dtype=dtype)
    if depths != "distinct":
        z = (z * 8).round() / 8
    if depths == "near-tied":
        z = z + 1e-7 * torch.rand(z.shape, generator=g, dtype=dtype)
    x = torch.randn(pix.shape, generator=g, dtype=dtype)
    expected, ours = x.clone(), x.clone()
    drop = soft_rasterizer._beyond_nearest_k(pix, edge, lambda sel: z.index_select(0, sel), k, num_pixels, num_edges)
    assert drop is not None and drop.numel() > 0
    expected.index_fill_(0, drop, math.inf)
    assert load_native().drop_beyond_nearest_k(pix, edge, z, ours, k, num_pixels, num_edges) == drop.numel()
    assert torch.equal(ours, expected)


@native
def test_native_renders_truncate_in_the_compiled_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``method="native"`` the truncation runs compiled: the PyTorch global sort is never called."""
    v, f = jittered_grid(7, 30.0, 4.0, seed=3)
    stack = torch.cat([v + torch.tensor([0.37 * i, 0.21 * i, 3.0 - i]) for i in range(6)], 1)
    faces = torch.cat([f + i * v.shape[1] for i in range(6)])

    def refuse(*_: object) -> None:
        raise AssertionError("the PyTorch truncation ran for native pairs")

    monkeypatch.setattr(soft_rasterizer, "_beyond_nearest_k", refuse)
    soft_silhouette(stack, faces, 40, sigma=1e-3, faces_per_pixel=4, method="native")
    with pytest.raises(AssertionError, match="PyTorch truncation"):
        soft_silhouette(stack, faces, 40, sigma=1e-3, faces_per_pixel=4, method="spans")


@native
def test_compiled_truncation_refuses_pixels_out_of_range() -> None:
    pix, edge, z = torch.tensor([0, 5]), torch.tensor([0, 3]), torch.tensor([0.5, 0.25])
    with pytest.raises(RuntimeError, match="pix outside"):
        load_native().drop_beyond_nearest_k(pix, edge, z, torch.zeros(2), 1, 5, 6)


@native
def test_awkward_meshes_render_as_the_span_walk() -> None:
    v, f = awkward_mesh(48)
    assert_same_render(render(v, f, 48, "native", sigma=1e-3), render(v, f, 48, "spans", sigma=1e-3))


@native
def test_gradient_matches_finite_differences_in_float64() -> None:
    """A blur radius wider than the image: no pair enters or leaves it, so the image is smooth in the vertices."""
    v = torch.tensor([[[2.2, 1.4, 1.0], [9.1, 2.8, 2.0], [4.3, 8.6, 3.0], [10.4, 9.7, 1.5]]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])

    def alpha(x: torch.Tensor) -> torch.Tensor:
        return soft_silhouette(x, f, 12, sigma=0.05, blur_radius=50.0, faces_per_pixel=None, method="native")

    assert torch.autograd.gradcheck(alpha, (v.requires_grad_(True),), eps=1e-6, atol=1e-6, rtol=1e-4)


@native
def test_output_does_not_depend_on_the_thread_count(hands: tuple[torch.Tensor, torch.Tensor]) -> None:
    verts, faces = hands
    threads = torch.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append(render(verts, faces, 64, "native"))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


def test_falls_back_to_the_span_walk(hands: tuple[torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch) -> None:
    verts, faces = hands
    monkeypatch.setenv(soft_native.ENV_VAR, "0")
    assert load_native() is None and resolve_method("auto", verts) == "spans"
    with pytest.raises(RuntimeError, match="TASSN_NATIVE_RENDER"):
        soft_silhouette(verts, faces, 64, method="native")
    fallback = render(verts, faces, 64, "auto")
    spans = render(verts, faces, 64, "spans")
    assert torch.equal(fallback[0], spans[0]) and torch.equal(fallback[1], spans[1])
    monkeypatch.delenv(soft_native.ENV_VAR)
    monkeypatch.setattr(soft_rasterizer, "load_native", lambda: None)
    assert resolve_method("auto", verts) == "spans"


def test_native_only_takes_float_cpu_tensors(hands: tuple[torch.Tensor, torch.Tensor]) -> None:
    verts, faces = hands
    assert resolve_method("auto", verts.half()) == "spans"
    with pytest.raises(ValueError, match="float32/float64 CPU"):
        soft_silhouette(verts.half(), faces, 64, method="native")


def test_a_failed_build_warns_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def fail() -> None:
        raise RuntimeError("Error building extension:\nlots of log\nsoft_native.cpp:1:2: error: broken")

    monkeypatch.delenv(soft_native.ENV_VAR, raising=False)
    monkeypatch.setattr(soft_native, "_loaded", None)
    monkeypatch.setattr(soft_native, "_failed", False)
    monkeypatch.setattr(soft_native, "_build", fail)
    with caplog.at_level(logging.WARNING, logger=soft_native.__name__):
        assert load_native() is None and load_native() is None
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "error: broken" in message and "'spans'" in message
