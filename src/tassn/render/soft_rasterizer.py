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
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

#: PyTorch3D's degenerate-face threshold on the edge function (twice the signed area) in NDC units.
_DEGENERATE_NDC = 1e-8

_NEXT = (1, 2, 0)  # edge i runs from vertex i to vertex _NEXT[i]


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


@dataclass
class _Spans:
    """Row spans of every face, sorted by width (widest first), with per-span row coefficients.

    Coefficient tables are ``3×n`` (one contiguous row per edge i, from vertex i to vertex i+1 mod 3). For pixel
    ``k`` of a span (x relative to the face's first vertex: ``xr = x0r + k``): ``n_i = an_i·xr + cn_i`` is the
    signed distance to edge i's line (positive inside) and ``s_i = as_i·xr + cs_i`` the position of the foot of
    the perpendicular along the edge, in pixels; the squared distance to the edge segment is
    ``n_i² + (s_i − clamp(s_i, 0, len_i))²``.
    """

    width: Tensor  # n (long), sorted descending
    pix0: Tensor  # n (int32/int64) flat pixel index of the span's first pixel: b·S² + y·S + x0
    edge0: Tensor  # n (int32/int64) flat index 3·(b·F + f) of the face's first edge
    x0r: Tensor  # n (float) first pixel's x relative to the face's first vertex
    an: Tensor  # 3×n
    cn: Tensor
    as_: Tensor
    cs: Tensor
    length: Tensor
    zo: Tensor | None  # 3×n depth of the vertex opposite edge i (only to rank faces in z)


def _band_extent(yr: Tensor, svx: Tensor, svy: Tensor, r_px: float) -> tuple[Tensor, Tensor]:
    """x-extent (relative to the face's first vertex) of each row's face inside the band ``[yr − r, yr + r]``:
    the vertices inside it and the band lines' crossings of the edges (``+inf, −inf`` where there are none)."""
    xl = torch.full_like(yr, math.inf)
    xr = torch.full_like(yr, -math.inf)
    for line in (yr - r_px, yr + r_px):
        for i, j in enumerate(_NEXT):
            py, qy, px, qx = svy[i], svy[j], svx[i], svx[j]
            dq = qy - py
            crosses = ((py - line) * (qy - line) <= 0) & (dq != 0)
            xc = px + (line - py) * (qx - px) / torch.where(dq != 0, dq, torch.ones_like(dq))
            xl = torch.where(crosses, torch.minimum(xl, xc), xl)
            xr = torch.where(crosses, torch.maximum(xr, xc), xr)
    for j in range(3):
        inband = (svy[j] - yr).abs() <= r_px
        xl = torch.where(inband, torch.minimum(xl, svx[j]), xl)
        xr = torch.where(inband, torch.maximum(xr, svx[j]), xr)
    return xl, xr


def _row_spans(
    xy: Tensor, z: Tensor | None, faces: Tensor, image_size: int, r_px: float, tight: bool = False
) -> _Spans | None:
    """Cut every non-degenerate face into row spans covering all pixels within ``r_px`` of it.

    A span is the face's x-extent inside the row's band ``[y − r, y + r]``, grown by r. For faces at most
    ``2r + 2`` pixels tall (almost every face of a hand mesh at training sizes) the face's own x-range, grown by r,
    is used instead: a superset that is at most the face's width looser, and much cheaper to compute than the
    band crossings. ``tight=True`` computes the band extent for every face. Either way the covering pairs are
    the same: pixels of a span farther than r from the face are dropped by :func:`_covering_pairs`.
    """
    B = xy.shape[0]
    S = image_size
    Fn = faces.shape[0]
    dev = xy.device
    fv = xy[:, faces].reshape(B * Fn, 3, 2)
    scale = (2.0 / S) ** 2
    # per-face tables, one contiguous row per vertex / edge, coordinates relative to the first vertex
    ox, oy = fv[:, 0, 0], fv[:, 0, 1]
    vx = (fv[..., 0] - ox[:, None]).t().contiguous()  # 3×BF
    vy = (fv[..., 1] - oy[:, None]).t().contiguous()
    ex = vx[list(_NEXT)] - vx
    ey = vy[list(_NEXT)] - vy
    area2 = ex[0] * vy[2] - ey[0] * vx[2]
    lo_x, hi_x = fv[..., 0].amin(1) - r_px, fv[..., 0].amax(1) + r_px
    lo_y, hi_y = fv[..., 1].amin(1) - r_px, fv[..., 1].amax(1) + r_px
    ok = torch.isfinite(fv).all(dim=2).all(dim=1) & (area2.abs() * scale > _DEGENERATE_NDC)
    ok &= (hi_x >= 0) & (hi_y >= 0) & (lo_x <= S - 1) & (lo_y <= S - 1)
    faces_ok = ok.nonzero().squeeze(1)
    if faces_ok.numel() == 0:
        return None
    ry0 = torch.ceil(lo_y[faces_ok]).clamp(0, S - 1).long()
    ry1 = torch.floor(hi_y[faces_ok]).clamp(0, S - 1).long()
    nrows = (ry1 - ry0 + 1).clamp_min(0)
    sel = torch.repeat_interleave(faces_ok, nrows)
    if sel.numel() == 0:
        return None
    start = torch.repeat_interleave(torch.cumsum(nrows, 0) - nrows, nrows)
    y = torch.repeat_interleave(ry0, nrows) + (torch.arange(sel.numel(), device=dev) - start)
    fid = sel
    yr = y.to(xy.dtype) - oy[fid]  # row relative to the face's first vertex
    svx, svy = vx[:, fid], vy[:, fid]  # 3×n

    # x-extent of each row's span: the face's x-range for short faces, the band extent for tall ones
    xl, xr = svx.amin(0), svx.amax(0)
    face_height = hi_y - lo_y - 2 * r_px
    rows = None if tight else (face_height[fid] > 2 * r_px + 2).nonzero().squeeze(1)
    if rows is None:
        xl, xr = _band_extent(yr, svx, svy, r_px)
    elif rows.numel():
        xl[rows], xr[rows] = _band_extent(yr[rows], svx[:, rows], svy[:, rows], r_px)
    oxs = ox[fid]
    x0 = torch.ceil(xl + oxs - r_px).clamp(0, S - 1)
    x1 = torch.floor(xr + oxs + r_px).clamp(-1, S - 1)
    x0 = torch.nan_to_num(x0, nan=0.0, posinf=float(S), neginf=0.0).long()
    x1 = torch.nan_to_num(x1, nan=-1.0, posinf=-1.0, neginf=-1.0).long()
    width = x1 - x0 + 1
    keep = (width > 0).nonzero().squeeze(1)
    keep = keep[torch.argsort(width[keep], descending=True, stable=True)]
    width, x0, y, fid, yr = width[keep], x0[keep], y[keep], fid[keep], yr[keep]
    svx, svy = vx[:, fid], vy[:, fid]
    sex, sey = ex[:, fid], ey[:, fid]
    length = (sex * sex + sey * sey).sqrt()
    k = torch.sign(area2[fid]) / length
    dy = yr - svy  # 3×n
    itype = torch.int32 if B * max(S * S, 3 * Fn) < 2**31 else torch.int64
    return _Spans(
        width=width,
        pix0=((fid // Fn) * (S * S) + y * S + x0).to(itype),
        edge0=(3 * fid).to(itype),
        x0r=x0.to(xy.dtype) - ox[fid],
        # n_i(p) = sgn · ((Q − P) × (p − P)) / |Q − P| ; s_i(p) = (p − P)·(Q − P) / |Q − P|
        an=(-sey * k).contiguous(),
        cn=((sex * dy + sey * svx) * k).contiguous(),
        as_=(sex / length).contiguous(),
        cs=((sey * dy - sex * svx) / length).contiguous(),
        length=length.contiguous(),
        zo=None if z is None else z[:, faces[:, [2, 0, 1]]].reshape(B * Fn, 3)[fid].t().contiguous(),
    )


@dataclass
class _Pairs:
    """The covering (pixel, face) pairs, with what blending and the backward pass need."""

    pix: list[Tensor] = field(default_factory=list)  # flat pixel index b·S² + y·S + x
    edge: list[Tensor] = field(default_factory=list)  # the face's edge nearest to the pixel: 3·(b·F + f) + i
    x: list[Tensor] = field(default_factory=list)  # d_k / σ (negative inside)
    z: list[Tensor] = field(default_factory=list)  # depth at the pixel (clipped barycentrics), to rank faces


def _covering_pairs(
    spans: _Spans, scale_over_sigma: float, blur_px2: float, max_spans: int, need_z: bool
) -> _Pairs:
    """Walk every span pixel by pixel (as dense prefix vectors) and keep the pairs within the blur radius."""
    out = _Pairs()
    n = spans.width.numel()
    for c0 in range(0, n, max_spans):
        c1 = min(n, c0 + max_spans)
        w = spans.width[c0:c1]
        wmax = int(w[0])
        # active[k] = how many spans of this chunk are wider than k (a prefix: widths are sorted descending)
        active = torch.bincount(w, minlength=wmax + 1).flip(0).cumsum(0).flip(0).tolist()
        an, cn = spans.an[:, c0:c1], spans.cn[:, c0:c1]
        as_, cs, ln = spans.as_[:, c0:c1], spans.cs[:, c0:c1], spans.length[:, c0:c1]
        x0r, pix0, edge0 = spans.x0r[c0:c1], spans.pix0[c0:c1], spans.edge0[c0:c1]
        zo = spans.zo[:, c0:c1] if need_z and spans.zo is not None else None
        for kx in range(wmax):
            m = active[kx + 1]
            xr = x0r[:m] + kx
            d2 = []
            nn = []
            for i in range(3):
                ni = torch.addcmul(cn[i, :m], an[i, :m], xr)
                si = torch.addcmul(cs[i, :m], as_[i, :m], xr)
                over = si - torch.clamp(si, min=torch.zeros_like(si), max=ln[i, :m])
                d2.append(torch.addcmul(ni * ni, over, over))
                nn.append(ni)
            dist2, code = torch.stack(d2).min(0)
            inside = torch.minimum(torch.minimum(nn[0], nn[1]), nn[2]) > 0
            keep = (inside | (dist2 < blur_px2)).nonzero().squeeze(1)
            if keep.numel() == 0:
                continue
            ins = inside[keep]
            d = dist2[keep]
            out.x.append(torch.where(ins, -d, d) * scale_over_sigma)
            out.pix.append(pix0[keep] + kx)
            out.edge.append(edge0[keep] + code[keep].to(edge0.dtype))
            if zo is not None:
                # clipped barycentric weight of the vertex opposite edge i ∝ max(n_i·len_i, 0)
                # (normalised before mixing, so that a pixel clipped to one vertex gets exactly its depth)
                u = [(nn[i] * ln[i, :m]).clamp_min_(0.0) for i in range(3)]
                total = u[0] + u[1] + u[2]
                u = [ui.div_(total) for ui in u]
                out.z.append(
                    torch.addcmul(torch.addcmul(u[0] * zo[0, :m], u[1], zo[1, :m]), u[2], zo[2, :m])[keep]
                )
    return out


def _sortable(z: Tensor) -> Tensor:
    """float32 → int64 in [0, 2³²) with the same order (IEEE bit trick), for integer sort keys."""
    bits = z.float().contiguous().view(torch.int32).long() & 0xFFFFFFFF
    return torch.where(bits >= 1 << 31, 0xFFFFFFFF - bits, bits + (1 << 31))


def _nearest_k_mask(
    pix: Tensor, edge: Tensor, z: Tensor, k: int, num_pixels: int, num_edges: int
) -> Tensor | None:
    """Mask of the pairs among the ``k`` nearest in z at their pixel (None: every pair is kept).

    Only pixels covered by more than ``k`` faces are sorted, by one int64 key (pixel, z, face edge): ties in z keep
    the lower face index, as PyTorch3D does (it visits faces in order and a face must be strictly nearer to
    displace one). Where the key has too few bits z's lowest mantissa bits are dropped, merging depths equal to
    ~1e-6 relative, which then order by face.
    """
    counts = torch.bincount(pix, minlength=num_pixels)
    if counts.numel() == 0 or int(counts.max()) <= k:
        return None
    crowded_pix = counts > k
    crowded = crowded_pix[pix].nonzero().squeeze(1)
    pix_rank = (torch.cumsum(crowded_pix, 0) - 1)[pix[crowded].long()]
    f = edge[crowded].long()
    pbits = max(1, int(crowded_pix.sum() - 1).bit_length())
    fbits = max(1, (num_edges - 1).bit_length())
    zbits = min(32, 63 - pbits - fbits)
    if zbits < 16:
        raise ValueError(f"too many pixels × faces to rank by depth ({pbits} + {fbits} key bits)")
    zq = _sortable(z[crowded]) >> (32 - zbits)
    key = (pix_rank << (zbits + fbits)) | (zq << fbits) | f
    key, order = torch.sort(key)
    group = key >> (zbits + fbits)
    first = torch.ones_like(group, dtype=torch.bool)
    first[1:] = group[1:] != group[:-1]
    pos = torch.arange(group.numel(), device=pix.device)
    group_start = torch.cummax(torch.where(first, pos, torch.zeros_like(pos)), 0).values
    keep = torch.ones_like(pix, dtype=torch.bool)
    keep[crowded[order[(pos - group_start) >= k]]] = False
    return keep


def _cat(parts: list[Tensor], like: Tensor) -> Tensor:
    return torch.cat(parts) if parts else like.new_zeros(0)


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
        max_spans: int,
        tight_spans: bool,
    ) -> Tensor:
        B, V = xy.shape[:2]
        S = image_size
        scale = (2.0 / S) ** 2  # squared pixel distance → squared NDC distance
        blur_px2 = blur_radius / scale
        faces = faces.long()
        need_z = faces_per_pixel is not None
        with torch.no_grad():
            spans = _row_spans(xy, z if need_z else None, faces, S, math.sqrt(blur_px2), tight_spans)
            pairs = (
                _Pairs()
                if spans is None
                else _covering_pairs(spans, scale / sigma, blur_px2, max_spans, need_z)
            )
            pix = _cat(pairs.pix, faces)
            edge = _cat(pairs.edge, faces)
            x = _cat(pairs.x, xy)
            if need_z and pix.numel():
                num_edges = 3 * B * faces.shape[0]
                keep = _nearest_k_mask(
                    pix, edge, _cat(pairs.z, xy), int(faces_per_pixel), B * S * S, num_edges
                )
                if keep is not None:
                    pix, edge, x = pix[keep], edge[keep], x[keep]
            del pairs
            log_trans = xy.new_zeros(B * S * S).index_add_(0, pix, F.logsigmoid(x))
            alpha = torch.expm1(log_trans).neg_().add_(0.0)  # + 0.0 turns −0.0 into 0.0

        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(xy, faces, pix, edge, x, log_trans)
            ctx.scale_over_sigma = scale / sigma
            ctx.image_size = S
        return alpha.view(B, 1, S, S)

    @staticmethod
    def backward(ctx, grad_alpha: Tensor):  # type: ignore[override]
        xy, faces, pix, edge, x, log_trans = ctx.saved_tensors
        B, V = xy.shape[:2]
        S = ctx.image_size
        # ∂alpha/∂d_k = −(1 − alpha)·p_k/σ ; d_k = scale · sign · dist²_px (sign −1 inside, where x < 0)
        g_pix = grad_alpha.reshape(-1) * torch.exp(log_trans)
        coef = g_pix.index_select(0, pix) * torch.sigmoid(-x) * (-ctx.scale_over_sigma)
        coef = torch.where(x < 0, -coef, coef)
        # ends (a, b) of each pair's nearest edge, as flat vertex indices b·V + v
        base = (torch.arange(B, device=xy.device) * V)[:, None, None]
        corner_a = (base + faces[None]).reshape(-1)
        corner_b = (base + faces[None][..., list(_NEXT)]).reshape(-1)
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
        return torch.stack((gx, gy), -1).view(B, V, 2), None, None, None, None, None, None, None, None


def soft_silhouette(
    vertices_px: Tensor,
    faces: Tensor,
    image_size: int,
    sigma: float = 1e-4,
    faces_per_pixel: int | None = 50,
    blur_radius: float | None = None,
    max_spans: int = 1 << 16,
    tight_spans: bool = False,
) -> Tensor:
    """Differentiable soft silhouette of a batch of meshes sharing one face list.

    vertices_px ``B×V×3``: x, y in crop pixels (pixel centres at integers), z depth in any units (larger =
    farther; only used to pick the ``faces_per_pixel`` nearest faces). faces ``F×3`` int64.
    Returns alpha ``B×1×S×S`` in [0, 1]. ``blur_radius`` defaults to :func:`blur_radius_for` ``(sigma)``
    (squared NDC distance, PyTorch3D's units). ``max_spans`` bounds the temporaries (spans per chunk).
    ``tight_spans`` computes every row span from the blur band's crossings of the face, as before the short-face
    shortcut of :func:`_row_spans` (same result, slower; kept to compare: ``benchmarks/bench_train.py --compare``).
    """
    check_render_inputs(vertices_px, faces, image_size, sigma)
    if faces_per_pixel is not None and faces_per_pixel <= 0:
        raise ValueError(f"faces_per_pixel must be positive or None; got {faces_per_pixel}")
    if max_spans <= 0:
        raise ValueError(f"max_spans must be positive; got {max_spans}")
    blur = blur_radius_for(sigma) if blur_radius is None else float(blur_radius)
    if blur < 0:
        raise ValueError(f"blur_radius must be non-negative; got {blur}")
    xy = vertices_px[..., :2]
    z = vertices_px[..., 2].detach()
    return _SoftSilhouette.apply(
        xy, z, faces, int(image_size), float(sigma), blur, faces_per_pixel, int(max_spans), bool(tight_spans)
    )
