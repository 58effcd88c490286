"""The soft rasterizer's covering pairs from a fixed K×K pixel window per face, fully vectorised.

At training sizes a hand mesh's faces are 1–4 px across, so every face's pixels within the blur radius fit in a
small window. Each face's pixel bounding box (grown by the blur radius, clipped to the image) is cut into K×K windows
(one for nearly every face; a larger face takes several), and every window pixel is tested against its face in a few
dense operations over ``windows × K × K``: no loop over pixel columns, one host sync to size the windows and one to
gather the kept pairs. K is chosen per call to minimise the tested pixels. The tests are the row-span walk's
(:mod:`tassn.render.soft_spans`), term for term, so the pairs and their distances agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .soft_spans import face_tables

#: window sides tried; faces larger than the chosen side are covered by several windows
_SIDES = range(1, 17)
#: window extents above this count as this much when choosing the side (only the choice, never the coverage)
_EXTENT_CAP = 48
#: work per window besides its K² pixels, in pixel-test units (its tables, row terms and gathers)
_WINDOW_OVERHEAD = 24


@dataclass
class WindowPairs:
    """The covering (pixel, face) pairs and, lazily, their depths (only pixels with too many faces need them)."""

    pix: Tensor  # flat pixel index b·S² + y·S + x
    edge: Tensor  # the face's edge nearest to the pixel: 3·(b·F + f) + i
    x: Tensor  # d_k / σ (negative inside)
    depth: Callable[[Tensor], Tensor] | None  # depth at the pairs ``sel`` (clipped barycentrics), to rank faces


def window_side(wx: Tensor, wy: Tensor) -> int:
    """The side K that minimises the work ``Σ ⌈wx/K⌉·⌈wy/K⌉·(K² + 6K + c)``: the window pixels and each window's
    own tables and row terms (a 2D histogram of the extents)."""
    cap = _EXTENT_CAP
    hist = torch.bincount(wx.clamp_max(cap) * (cap + 1) + wy.clamp_max(cap), minlength=(cap + 1) ** 2).double()
    ext = torch.arange(cap + 1, device=wx.device, dtype=torch.float64)
    costs = []
    for k in _SIDES:
        n = torch.ceil(ext / k)
        costs.append((hist.view(cap + 1, cap + 1) * (n[:, None] * n[None, :])).sum() * (k * k + 6 * k + _WINDOW_OVERHEAD))
    return _SIDES[int(torch.stack(costs).argmin())]


def window_pairs(
    xy: Tensor,
    z: Tensor | None,
    faces: Tensor,
    image_size: int,
    r_px: float,
    scale_over_sigma: float,
    blur_px2: float,
    max_candidates: int,
) -> WindowPairs | None:
    """Every (pixel, face) pair within the blur radius ``r_px`` of a non-degenerate face (None: there are none)."""
    B = xy.shape[0]
    S = image_size
    Fn = faces.shape[0]
    dev, dt = xy.device, xy.dtype
    tables = face_tables(xy, faces, S, r_px)
    if tables is None:
        return None
    ox, oy, vx, vy, ex, ey, area2, lo_x, hi_x, lo_y, hi_y, faces_ok = tables
    x0 = torch.ceil(lo_x[faces_ok]).clamp(0, S - 1).long()
    x1 = torch.floor(hi_x[faces_ok]).clamp(-1, S - 1).long()
    y0 = torch.ceil(lo_y[faces_ok]).clamp(0, S - 1).long()
    y1 = torch.floor(hi_y[faces_ok]).clamp(-1, S - 1).long()
    wx, wy = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
    K = window_side(wx, wy)
    nx, ny = (wx + K - 1) // K, (wy + K - 1) // K
    count = nx * ny
    face_of = torch.repeat_interleave(torch.arange(faces_ok.numel(), device=dev), count)  # window → ok face
    if face_of.numel() == 0:
        return None
    local = torch.arange(face_of.numel(), device=dev) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    nxw = nx[face_of]
    gx0 = x0[face_of] + (local % nxw) * K  # window origin (pixel)
    gy0 = y0[face_of] + (local // nxw) * K
    fid = faces_ok[face_of]
    step = torch.arange(K, device=dev)
    col_ok = (gx0[:, None] + step) <= x1[face_of][:, None]  # N×K
    row_ok = (gy0[:, None] + step) <= y1[face_of][:, None]
    # per-window tables, as the row spans': n_i = an_i·xr + cn_i(row), s_i = as_i·xr + cs_i(row)
    svx, svy, sex, sey = vx[:, fid], vy[:, fid], ex[:, fid], ey[:, fid]  # 3×N
    length = (sex * sex + sey * sey).sqrt()
    k = torch.sign(area2[fid]) / length
    xr = (gx0.to(dt) - ox[fid])[:, None] + step.to(dt)  # N×K pixel x relative to the face's first vertex
    yr = (gy0.to(dt) - oy[fid])[:, None] + step.to(dt)
    dy = yr[None] - svy[:, :, None]  # 3×N×K
    an = -sey * k
    cn = (sex[..., None] * dy + (sey * svx)[..., None]) * k[..., None]
    as_ = sex / length
    cs = (sey[..., None] * dy - (sex * svx)[..., None]) / length[..., None]
    itype = torch.int32 if B * max(S * S, 3 * Fn) < 2**31 else torch.int64
    row_pix = ((fid // Fn) * (S * S) + gx0)[:, None] + (gy0[:, None] + step) * S  # N×K, first pixel of a row
    edge0 = 3 * fid

    n_windows = fid.numel()
    per_chunk = max(1, max_candidates // (K * K))
    pix, edge, x = [], [], []
    kept = []
    for c0 in range(0, n_windows, per_chunk):
        c1 = min(n_windows, c0 + per_chunk)
        xc = xr[c0:c1, None, :]  # n×1×K
        d2, nn = [], []
        for i in range(3):
            ni = torch.addcmul(cn[i, c0:c1, :, None], an[i, c0:c1, None, None], xc)  # n×K×K (window row, column)
            si = torch.addcmul(cs[i, c0:c1, :, None], as_[i, c0:c1, None, None], xc)
            over = si - torch.minimum(si.clamp_min(0.0), length[i, c0:c1, None, None])
            d2.append(torch.addcmul(ni * ni, over, over))
            nn.append(ni)
        # nearest edge, the first on ties (a pixel nearest to a shared vertex: both edges give it the same gradient)
        nearer1 = d2[1] < d2[0]
        dist2 = torch.where(nearer1, d2[1], d2[0])
        nearer2 = d2[2] < dist2
        dist2 = torch.where(nearer2, d2[2], dist2)
        code = torch.where(nearer2, 2, nearer1.to(torch.uint8))
        inside = torch.minimum(torch.minimum(nn[0], nn[1]), nn[2]) > 0
        keep = (inside | (dist2 < blur_px2)) & row_ok[c0:c1, :, None] & col_ok[c0:c1, None, :]
        idx = keep.view(-1).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        d = dist2.view(-1)[idx]
        x.append(torch.where(inside.view(-1)[idx], -d, d) * scale_over_sigma)
        g = idx + c0 * K * K  # global candidate index: (window·K + row)·K + column
        pix.append((row_pix.view(-1)[g // K] + g % K).to(itype))
        edge.append((edge0[g // (K * K)] + code.view(-1)[idx]).to(itype))
        kept.append(g)
    if not pix:
        return None
    cand = torch.cat(kept)

    def depth(sel: Tensor) -> Tensor:
        """Depth at the pairs ``sel``: clipped barycentric weight of the vertex opposite edge i ∝ max(n_i·len_i, 0)
        (normalised before mixing, so that a pixel clipped to one vertex gets exactly its depth)."""
        assert z is not None
        g = cand[sel]
        w, row, col = g // (K * K), (g // K) % K, g % K
        zo = z[:, faces[:, [2, 0, 1]]].reshape(B * Fn, 3)[fid[w]].t()
        xs = xr[w, col]
        u = [(torch.addcmul(cn[i, w, row], an[i, w], xs) * length[i, w]).clamp_min_(0.0) for i in range(3)]
        total = u[0] + u[1] + u[2]
        u = [ui.div_(total) for ui in u]
        return torch.addcmul(torch.addcmul(u[0] * zo[0], u[1], zo[1]), u[2], zo[2])

    return WindowPairs(torch.cat(pix), torch.cat(edge), torch.cat(x), None if z is None else depth)
