"""The soft rasterizer's row-span walk: every face cut into row spans, walked pixel by pixel as dense prefix vectors.

The construction the module :mod:`tassn.render.soft_rasterizer` used before its fixed-window gather
(:mod:`tassn.render.soft_windows`); kept as ``method="spans"`` to compare the two (same pairs, same output to float
rounding) and because its temporaries grow with the spans, not with a window per face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

#: PyTorch3D's degenerate-face threshold on the edge function (twice the signed area) in NDC units.
DEGENERATE_NDC = 1e-8

NEXT = (1, 2, 0)  # edge i runs from vertex i to vertex NEXT[i]


class FaceTables(NamedTuple):
    """Per-face tables of a batch of projected meshes (``BF = B·F`` faces), one contiguous row per vertex or edge
    (``3×BF``), coordinates relative to each face's first vertex ``(ox, oy)``; the pixel box grown by the blur
    radius; and the faces that are finite, not degenerate and whose box meets the image (``faces_ok``)."""

    ox: Tensor
    oy: Tensor
    vx: Tensor
    vy: Tensor
    ex: Tensor
    ey: Tensor
    area2: Tensor  # twice the signed area
    lo_x: Tensor
    hi_x: Tensor
    lo_y: Tensor
    hi_y: Tensor
    faces_ok: Tensor


def face_tables(xy: Tensor, faces: Tensor, image_size: int, r_px: float) -> FaceTables | None:
    """The tables both pair searches (row spans, windows) start from; None when no face can cover a pixel."""
    S = image_size
    fv = xy[:, faces].reshape(xy.shape[0] * faces.shape[0], 3, 2)
    ox, oy = fv[:, 0, 0], fv[:, 0, 1]
    vx = (fv[..., 0] - ox[:, None]).t().contiguous()  # 3×BF
    vy = (fv[..., 1] - oy[:, None]).t().contiguous()
    ex = vx[list(NEXT)] - vx
    ey = vy[list(NEXT)] - vy
    area2 = ex[0] * vy[2] - ey[0] * vx[2]
    lo_x, hi_x = fv[..., 0].amin(1) - r_px, fv[..., 0].amax(1) + r_px
    lo_y, hi_y = fv[..., 1].amin(1) - r_px, fv[..., 1].amax(1) + r_px
    ok = torch.isfinite(fv).all(dim=2).all(dim=1) & (area2.abs() * (2.0 / S) ** 2 > DEGENERATE_NDC)
    ok &= (hi_x >= 0) & (hi_y >= 0) & (lo_x <= S - 1) & (lo_y <= S - 1)
    faces_ok = ok.nonzero().squeeze(1)
    if faces_ok.numel() == 0:
        return None
    return FaceTables(ox, oy, vx, vy, ex, ey, area2, lo_x, hi_x, lo_y, hi_y, faces_ok)


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
        for i, j in enumerate(NEXT):
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


def row_spans(
    xy: Tensor, z: Tensor | None, faces: Tensor, image_size: int, r_px: float, tight: bool = False
) -> _Spans | None:
    """Cut every non-degenerate face into row spans covering all pixels within ``r_px`` of it.

    A span is the face's x-extent inside the row's band ``[y − r, y + r]``, grown by r. For faces at most
    ``2r + 2`` pixels tall (almost every face of a hand mesh at training sizes) the face's own x-range, grown by r,
    is used instead: a superset that is at most the face's width looser, and much cheaper to compute than the
    band crossings. ``tight=True`` computes the band extent for every face. Either way the covering pairs are
    the same: pixels of a span farther than r from the face are dropped by :func:`covering_pairs`.
    """
    B = xy.shape[0]
    S = image_size
    Fn = faces.shape[0]
    dev = xy.device
    tables = face_tables(xy, faces, S, r_px)
    if tables is None:
        return None
    ox, oy, vx, vy, ex, ey, area2, lo_x, hi_x, lo_y, hi_y, faces_ok = tables
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
class Pairs:
    """The covering (pixel, face) pairs, with what blending and the backward pass need."""

    pix: list[Tensor] = field(default_factory=list)  # flat pixel index b·S² + y·S + x
    edge: list[Tensor] = field(default_factory=list)  # the face's edge nearest to the pixel: 3·(b·F + f) + i
    x: list[Tensor] = field(default_factory=list)  # d_k / σ (negative inside)
    z: list[Tensor] = field(default_factory=list)  # depth at the pixel (clipped barycentrics), to rank faces


def covering_pairs(
    spans: _Spans, scale_over_sigma: float, blur_px2: float, max_spans: int, need_z: bool
) -> Pairs:
    """Walk every span pixel by pixel (as dense prefix vectors) and keep the pairs within the blur radius."""
    out = Pairs()
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
