"""Soft silhouettes in plain PyTorch, with PyTorch3D's ``SoftSilhouetteShader`` blending.

For every pixel ``p`` and every face ``k`` whose blurred extent covers it::

    d_k   = ±(squared 2D distance from p to the nearest edge of face k), in NDC units, negative inside
    alpha = 1 − ∏_k (1 − sigmoid(−d_k / σ))

Faces with ``d_k ≥ blur_radius`` (outside) are ignored, with ``blur_radius = log(1/1e-4 − 1)·σ`` by default.
Distances are measured in PyTorch3D's NDC units (the square crop spans [−1, 1], so one pixel is ``2/S`` long)
so that ``σ = 1e-4`` blurs exactly as much as it does in PyTorch3D at the same resolution.

**Which faces enter the product.** PyTorch3D keeps, per pixel, the ``K = faces_per_pixel`` faces nearest in z
(z interpolated with clipped barycentrics) among those within the blur radius, ties going to the lower face
index. We do the same: where a pixel is covered by at most ``K`` faces (almost every pixel at ``K = 50``) the
product runs over every covering face, which is PyTorch3D's answer too; only pixels with more than ``K``
covering faces are sorted by z and truncated. ``faces_per_pixel=None`` keeps every covering face (the limit
``K → ∞``). Faces are not culled by the sign of z: z may be in any units, only its order matters. Degenerate
faces (``|2·area| ≤ 1e-8`` in NDC) are skipped, as in PyTorch3D.

**Memory and speed.** Work is proportional to the number of (pixel, face) pairs near each face, never to
``pixels × faces``. Each face is cut into row spans: at row y, the x-range of the face within the band
``[y − r, y + r]`` grown by the blur radius r (a tight superset of the pixels within r); for faces at most
``2r + 2`` px tall, which is nearly all of a hand mesh's at training sizes, simply the face's x-range grown by r
(a superset too, and far cheaper to find: ~25% off a 64² training batch). Spans are sorted by
width, so that "the k-th pixel of every span at least k+1 wide" is a contiguous prefix and each step is a
handful of dense vector operations on per-span coefficients (edge functions and edge parameters are linear in
x along a row); no per-pixel gathers. Temporaries are bounded by ``max_spans`` spans per chunk; what is kept
for the backward pass is 12 bytes per covering (pixel, face) pair (pixel, nearest edge, distance). A batch of
24 hand meshes (1000 vertices, 2000 faces) at 256² makes ~5M pairs: ~0.45 s forward and ~0.4 s backward on one
CPU thread, ~1.3 GB peak.

**On the CPU: a compiled loop (``method="native"``, the default there).** The span walk is hundreds of small
tensor operations per call (gathers, ``nonzero``, sorts), and their overhead, not the arithmetic, was most of a
CPU training step. :mod:`~tassn.render.soft_native` finds the same pairs in one C++ loop per mesh (built on first
use), with the same formula term for term: its pairs, nearest edges, distances and depths equal the span walk's
bit for bit. It also runs the backward pass as one loop over the pairs, and the truncation to the K nearest faces:
each crowded pixel's pairs sorted on their own by the PyTorch path's key, not all crowded pairs in one global sort
(the same pairs dropped; 5–10× faster, and what made a stage-3 step's renderer a third of its former cost on a fresh
PME's large meshes). The blending stays here, in PyTorch. 64 hand meshes at 64² (~1.3M pairs) on one thread:
forward ~50 ms (~20 ms of it the loop) and backward ~15 ms, against ~430 ms and ~100 ms for the span walk.
Without a C++ compiler ``auto`` falls back to ``spans`` (one warning); CUDA tensors always use ``spans``.

The backward pass is analytic: with ``(a, b)`` the face's edge nearest to the pixel, ``t ∈ [0, 1]`` the
parameter of the nearest point ``q = a + t(b − a)`` and ``r = p − q``: ``∂dist²/∂a = −2(1 − t) r``, ``∂dist²/∂b = −2 t r``;
and ``∂alpha/∂d_k = −(1 − alpha)·p_k/σ``, which needs no division by ``1 − p_k``. Only x and y receive
gradients (the silhouette depends on z only through the discrete choice of the K nearest faces), as in
PyTorch3D.

Pixel convention: pixel ``(row i, column j)`` has its centre at ``x = j, y = i`` (OpenCV's convention, the same
as ``kp2d`` and ``K`` in the batches).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from .soft_native import load_native
from .soft_spans import NEXT, covering_pairs, row_spans
from .soft_windows import window_pairs

Method = Literal["auto", "native", "spans", "windows"]
METHODS: tuple[str, ...] = get_args(Method)


def blur_radius_for(sigma: float, eps: float = 1e-4) -> float:
    """PyTorch3D's recommended blur radius: faces where ``sigmoid(−d/σ) < eps`` are dropped."""
    return math.log(1.0 / eps - 1.0) * sigma


def check_render_inputs(vertices_px: Tensor, faces: Tensor, image_size: int, sigma: float) -> None:
    """Raise a clear error for inputs that no silhouette backend can take."""
    if vertices_px.dim() != 3 or vertices_px.shape[-1] != 3:
        raise ValueError(
            f"vertices_px must be B×V×3 (x, y in crop pixels, z depth); got {tuple(vertices_px.shape)}"
        )
    if not vertices_px.is_floating_point():
        raise ValueError(f"vertices_px must be a floating-point tensor; got {vertices_px.dtype}")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be F×3 vertex indices; got {tuple(faces.shape)}")
    if faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be an integer tensor (int64); got {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices_px.shape[1]):
        raise ValueError(f"faces index vertices outside [0, {vertices_px.shape[1]})")
    if image_size <= 0:
        raise ValueError(f"image_size must be positive; got {image_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive; got {sigma}")


def _native_applies(vertices_px: Tensor) -> bool:
    return vertices_px.device.type == "cpu" and vertices_px.dtype in (torch.float32, torch.float64)


def resolve_method(method: Method, vertices_px: Tensor) -> Method:
    """``auto`` → ``native`` for float32/float64 CPU tensors when the extension builds, else ``spans``; ``native``
    raises where it cannot run (CUDA, another dtype, no compiler, ``TASSN_NATIVE_RENDER=0``)."""
    if method == "auto":
        return "native" if _native_applies(vertices_px) and load_native() is not None else "spans"
    if method == "native":
        if not _native_applies(vertices_px):
            raise ValueError(
                f"method='native' needs float32/float64 CPU tensors; got {vertices_px.dtype} on {vertices_px.device}"
            )
        if load_native() is None:
            raise RuntimeError(
                "method='native' is unavailable: TASSN_NATIVE_RENDER=0, or its build failed (see the logged warning)"
            )
    return method


#: lowest bits of the float32 depth key always rounded away (2⁴ ulp ≈ 2e-6 relative): see :func:`_beyond_nearest_k`.
Z_ROUNDED_BITS = 4


def _sortable(z: Tensor) -> Tensor:
    """float32 → int64 in [0, 2³²) with the same order (IEEE bit trick), for integer sort keys."""
    bits = z.float().contiguous().view(torch.int32).long() & 0xFFFFFFFF
    return torch.where(bits >= 1 << 31, 0xFFFFFFFF - bits, bits + (1 << 31))


def _beyond_nearest_k(
    pix: Tensor, edge: Tensor, depth: Callable[[Tensor], Tensor], k: int, num_pixels: int, num_edges: int
) -> Tensor | None:
    """Indices of the pairs that are not among the ``k`` nearest in z at their pixel (None: there are none).

    ``depth(sel)`` is the depth of the pairs ``sel``, asked for only at the pixels covered by more than ``k`` faces.

    Only pixels covered by more than ``k`` faces are sorted, by one int64 key (pixel, z, face edge): ties in z keep
    the lower face index, as PyTorch3D does (it visits faces in order and a face must be strictly nearer to
    displace one). z is rounded to drop its :data:`Z_ROUNDED_BITS` lowest bits (more where the key has too few
    bits), merging depths equal to float rounding (~1e-6 relative), which then order by face: two faces clipped to
    one shared vertex have that vertex's depth, and which of them is nearer must not depend on the CPU's rounding.
    """
    ones = torch.ones(1, dtype=torch.int32, device=pix.device).expand(pix.numel())
    counts = torch.zeros(num_pixels, dtype=torch.int32, device=pix.device).index_add_(0, pix, ones)  # no min/max scan
    if counts.numel() == 0 or int(counts.max()) <= k:
        return None
    crowded_pix = counts > k
    crowded = crowded_pix.index_select(0, pix).nonzero().squeeze(1)
    pix_rank = (torch.cumsum(crowded_pix, 0) - 1).index_select(0, pix.index_select(0, crowded))
    f = edge.index_select(0, crowded).long()
    pbits = max(1, int(crowded_pix.sum() - 1).bit_length())
    fbits = max(1, (num_edges - 1).bit_length())
    zbits = min(32 - Z_ROUNDED_BITS, 63 - pbits - fbits)
    if zbits < 16:
        raise ValueError(f"too many pixels × faces to rank by depth ({pbits} + {fbits} key bits)")
    shift = 32 - zbits  # rounded, not floored: a depth exactly on a round float stays in its bucket's middle
    zq = ((_sortable(depth(crowded)) + (1 << (shift - 1))) >> shift).clamp_max_((1 << zbits) - 1)
    key = (pix_rank << (zbits + fbits)) | (zq << fbits) | f
    key, order = torch.sort(key)
    group = key >> (zbits + fbits)
    first = torch.ones_like(group, dtype=torch.bool)
    first[1:] = group[1:] != group[:-1]
    pos = torch.arange(group.numel(), device=pix.device)
    group_start = torch.cummax(torch.where(first, pos, torch.zeros_like(pos)), 0).values
    return crowded[order[(pos - group_start) >= k]]


def _drop_beyond_nearest_k(
    pix: Tensor, edge: Tensor, x: Tensor, depth: Callable[[Tensor], Tensor], k: int, num_pixels: int, num_edges: int
) -> None:
    """Set ``x = +∞`` (in place) for the pairs beyond the ``k`` nearest in z at their pixel: such a pair adds nothing,
    forward (logsigmoid) or backward (sigmoid(−x)). The native pairs carry all their depths (:class:`_NativeDepth`):
    the compiled truncation sorts each crowded pixel on its own, by the same key, instead of one global sort."""
    native = load_native() if isinstance(depth, _NativeDepth) else None
    if native is not None:
        native.drop_beyond_nearest_k(pix, edge, depth.all, x, k, num_pixels, num_edges)
        return
    drop = _beyond_nearest_k(pix, edge, depth, k, num_pixels, num_edges)
    if drop is not None:
        x.index_fill_(0, drop, math.inf)


class _NativeDepth:
    """The depths of the native pairs: selected ones on demand (the PyTorch truncation), all of them as ``all``."""

    def __init__(self, depths: Tensor) -> None:
        self.all = depths

    def __call__(self, sel: Tensor) -> Tensor:
        return self.all.index_select(0, sel)


def _cat(parts: list[Tensor], like: Tensor) -> Tensor:
    return torch.cat(parts) if parts else like.new_zeros(0)


def _pairs(
    xy: Tensor, z: Tensor | None, faces: Tensor, S: int, scale_over_sigma: float, blur_px2: float,
    method: Method, chunk: int, tight_spans: bool,
) -> tuple[Tensor, Tensor, Tensor, Callable[[Tensor], Tensor] | None]:
    """The covering pairs ``(pix, edge, x)`` and the depth of selected pairs (None without ``z``)."""
    r_px = math.sqrt(blur_px2)
    if method == "native":
        native = load_native()
        assert native is not None  # resolved by soft_silhouette
        zin = xy.new_zeros(0) if z is None else z.contiguous()
        pix, edge, x, zp = native.pairs(xy.contiguous(), zin, faces.contiguous(), S, r_px, scale_over_sigma, blur_px2)
        return pix, edge, x, None if z is None else _NativeDepth(zp)
    if method == "windows":
        found = window_pairs(xy, z, faces, S, r_px, scale_over_sigma, blur_px2, chunk)
        if found is None:
            return faces.new_zeros(0), faces.new_zeros(0), xy.new_zeros(0), None
        return found.pix, found.edge, found.x, found.depth
    spans = row_spans(xy, z, faces, S, r_px, tight_spans)
    if spans is None:
        return faces.new_zeros(0), faces.new_zeros(0), xy.new_zeros(0), None
    pairs = covering_pairs(spans, scale_over_sigma, blur_px2, chunk, z is not None)
    depths = _cat(pairs.z, xy)
    depth = None if z is None else lambda sel: depths.index_select(0, sel)
    return _cat(pairs.pix, faces), _cat(pairs.edge, faces), _cat(pairs.x, xy), depth


class _SoftSilhouette(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        xy: Tensor,
        z: Tensor,
        faces: Tensor,
        image_size: int,
        sigma: float,
        blur_radius: float,
        faces_per_pixel: int | None,
        method: Method,
        chunk: int,
        tight_spans: bool,
    ) -> Tensor:
        B, V = xy.shape[:2]
        S = image_size
        scale = (2.0 / S) ** 2  # squared pixel distance → squared NDC distance
        blur_px2 = blur_radius / scale
        faces = faces.long()
        need_z = faces_per_pixel is not None
        with torch.no_grad():
            pix, edge, x, depth = _pairs(
                xy, z if need_z else None, faces, S, scale / sigma, blur_px2, method, chunk, tight_spans
            )
            if depth is not None and pix.numel():
                _drop_beyond_nearest_k(pix, edge, x, depth, int(faces_per_pixel), B * S * S, 3 * B * faces.shape[0])
            log_trans = xy.new_zeros(B * S * S).index_add_(0, pix, F.logsigmoid(x))
            alpha = torch.expm1(log_trans).neg_().add_(0.0)  # + 0.0 turns −0.0 into 0.0

        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(xy, faces, pix, edge, x, log_trans)
            ctx.scale_over_sigma = scale / sigma
            ctx.image_size = S
            ctx.native = method == "native"
        return alpha.view(B, 1, S, S)

    @staticmethod
    def backward(ctx, grad_alpha: Tensor):  # type: ignore[override]
        xy, faces, pix, edge, x, log_trans = ctx.saved_tensors
        B, V = xy.shape[:2]
        S = ctx.image_size
        native = load_native() if ctx.native else None
        if native is not None:
            grad = native.backward(
                grad_alpha.reshape(-1).contiguous(), log_trans, xy.contiguous(), faces.contiguous(), pix, edge, x, S,
                ctx.scale_over_sigma,
            )
            return grad, *([None] * 9)
        # ∂alpha/∂d_k = −(1 − alpha)·p_k/σ ; d_k = scale · sign · dist²_px (sign −1 inside, where x < 0)
        g_pix = grad_alpha.reshape(-1) * torch.exp(log_trans)
        coef = g_pix.index_select(0, pix) * torch.sigmoid(-x) * (-ctx.scale_over_sigma)
        coef = torch.where(x < 0, -coef, coef)
        # ends (a, b) of each pair's nearest edge, as flat vertex indices b·V + v
        base = (torch.arange(B, device=xy.device) * V)[:, None, None]
        corner_a = (base + faces[None]).reshape(-1)
        corner_b = (base + faces[None][..., list(NEXT)]).reshape(-1)
        ia = corner_a.index_select(0, edge)
        ib = corner_b.index_select(0, edge)
        xs = xy[..., 0].reshape(-1)
        ys = xy[..., 1].reshape(-1)
        ax, ay = xs.index_select(0, ia), ys.index_select(0, ia)
        ex, ey = xs.index_select(0, ib) - ax, ys.index_select(0, ib) - ay
        px = (pix % S).to(xy.dtype) - ax
        py = ((pix // S) % S).to(xy.dtype) - ay
        t = ((px * ex + py * ey) / (ex * ex + ey * ey).clamp_min(1e-20)).clamp_(0.0, 1.0)
        rx = px - t * ex  # r = p − (a + t·e)
        ry = py - t * ey
        wb = coef * t * -2.0  # ∂dist²/∂b = −2 t r ; ∂dist²/∂a = −2 (1 − t) r
        wa = coef * -2.0 - wb
        gx = torch.zeros_like(xs)
        gy = torch.zeros_like(ys)
        gx.index_add_(0, ia, wa * rx).index_add_(0, ib, wb * rx)
        gy.index_add_(0, ia, wa * ry).index_add_(0, ib, wb * ry)
        return torch.stack((gx, gy), -1).view(B, V, 2), *([None] * 9)


def soft_silhouette(
    vertices_px: Tensor,
    faces: Tensor,
    image_size: int,
    sigma: float = 1e-4,
    faces_per_pixel: int | None = 50,
    blur_radius: float | None = None,
    max_spans: int = 1 << 16,
    tight_spans: bool = False,
    method: Method = "auto",
    max_candidates: int = 1 << 21,
) -> Tensor:
    """Differentiable soft silhouette of a batch of meshes sharing one face list.

    vertices_px ``B×V×3``: x, y in crop pixels (pixel centres at integers), z depth in any units (larger =
    farther; only used to pick the ``faces_per_pixel`` nearest faces). faces ``F×3`` int64.
    Returns alpha ``B×1×S×S`` in [0, 1]. ``blur_radius`` defaults to :func:`blur_radius_for` ``(sigma)``
    (squared NDC distance, PyTorch3D's units).

    ``method`` finds the covering pairs: ``native`` (the C++ loop of :mod:`~tassn.render.soft_native`, CPU only,
    float32/float64; also computes the backward pass), ``spans`` (the row-span walk of
    :mod:`~tassn.render.soft_spans`; ``max_spans`` spans per chunk; ``tight_spans`` cuts every span from the blur
    band's crossings of the face, for ``spans`` only), ``windows`` (a K×K pixel window per face, vectorised:
    :mod:`~tassn.render.soft_windows`; ``max_candidates`` window pixels per chunk bound the temporaries), or ``auto``:
    ``native`` where it applies and builds, else ``spans``. ``native`` finds exactly the pairs ``spans`` finds, with
    bitwise-equal values; ``windows`` agrees to float rounding (``benchmarks/bench_train.py --compare`` times them).
    """
    check_render_inputs(vertices_px, faces, image_size, sigma)
    if faces_per_pixel is not None and faces_per_pixel <= 0:
        raise ValueError(f"faces_per_pixel must be positive or None; got {faces_per_pixel}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    method = resolve_method(method, vertices_px)
    chunk = int(max_candidates if method == "windows" else max_spans)
    if chunk <= 0:
        raise ValueError(f"max_spans and max_candidates must be positive; got {max_spans}, {max_candidates}")
    blur = blur_radius_for(sigma) if blur_radius is None else float(blur_radius)
    if blur < 0:
        raise ValueError(f"blur_radius must be non-negative; got {blur}")
    xy = vertices_px[..., :2]
    z = vertices_px[..., 2].detach()
    return _SoftSilhouette.apply(
        xy, z, faces, int(image_size), float(sigma), blur, faces_per_pixel, method, chunk, bool(tight_spans)
    )
