"""A z-buffered triangle rasterizer in numpy, for the synthetic data generator (no gradients needed).

Vectorised over triangles: every face's bounding box of pixel centres is enumerated at once (faces grouped by box
size so small faces do not pay for large ones), inside pixels are found with edge functions, and the nearest face
per pixel wins by a sort on (pixel, depth). Depth is interpolated as 1/z, which is exact for a perspective camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MAX_CANDIDATES = 1 << 22  # pixel-face pairs tested per chunk (bounds memory)


@dataclass
class Fragments:
    """The visible surface: ``face`` H×W (−1 = background), ``bary`` H×W×3 perspective-correct barycentrics,
    ``depth`` H×W camera z (inf on background)."""

    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


def rasterize(points: np.ndarray, faces: np.ndarray, height: int, width: int, near: float = 1e-3) -> Fragments:
    """Rasterize triangles given in screen space.

    points: V×3 as (x px, y px, z camera depth); pixel ``(i, j)`` has its centre at ``x = j, y = i``.
    faces: F×3 vertex indices. Faces with a vertex at ``z ≤ near`` are dropped (no clipping).
    """
    pts = np.asarray(points, dtype=np.float64)
    tri = pts[np.asarray(faces, dtype=np.int64)]  # F×3×3
    keep = (tri[:, :, 2] > near).all(axis=1)
    face_ids = np.nonzero(keep)[0]
    tri = tri[keep]
    x0 = np.ceil(tri[:, :, 0].min(axis=1)).clip(0, width - 1).astype(np.int64)
    x1 = np.floor(tri[:, :, 0].max(axis=1)).clip(-1, width - 1).astype(np.int64)
    y0 = np.ceil(tri[:, :, 1].min(axis=1)).clip(0, height - 1).astype(np.int64)
    y1 = np.floor(tri[:, :, 1].max(axis=1)).clip(-1, height - 1).astype(np.int64)
    # twice the signed area; degenerate faces cover nothing
    e = tri[:, :, :2]
    area = (e[:, 1, 0] - e[:, 0, 0]) * (e[:, 2, 1] - e[:, 0, 1]) - (e[:, 1, 1] - e[:, 0, 1]) * (e[:, 2, 0] - e[:, 0, 0])
    ok = (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-12)
    tri, face_ids, area, x0, x1, y0, y1 = tri[ok], face_ids[ok], area[ok], x0[ok], x1[ok], y0[ok], y1[ok]

    span = np.maximum(x1 - x0, y1 - y0) + 1
    bucket = np.ceil(np.log2(np.maximum(span, 1))).astype(np.int64)
    pix_all, depth_all, face_all, bary_all = [], [], [], []
    for b in np.unique(bucket):
        size = 1 << int(b)
        sel = np.nonzero(bucket == b)[0]
        oy, ox = np.divmod(np.arange(size * size), size)
        chunk = max(1, _MAX_CANDIDATES // (size * size))
        for start in range(0, len(sel), chunk):
            s = sel[start : start + chunk]
            px = x0[s, None] + ox[None]
            py = y0[s, None] + oy[None]
            inbox = (px <= x1[s, None]) & (py <= y1[s, None])
            t = tri[s]
            # barycentric weights via edge functions, normalised by the signed area (either winding)
            w0 = (t[:, 2, 0, None] - t[:, 1, 0, None]) * (py - t[:, 1, 1, None]) - (t[:, 2, 1, None] - t[:, 1, 1, None]) * (px - t[:, 1, 0, None])  # noqa: E501
            w1 = (t[:, 0, 0, None] - t[:, 2, 0, None]) * (py - t[:, 2, 1, None]) - (t[:, 0, 1, None] - t[:, 2, 1, None]) * (px - t[:, 2, 0, None])  # noqa: E501
            w0 = w0 / area[s, None]
            w1 = w1 / area[s, None]
            w2 = 1.0 - w0 - w1
            inside = inbox & (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
            fi, ci = np.nonzero(inside)
            if len(fi) == 0:
                continue
            bw = np.stack([w0[fi, ci], w1[fi, ci], w2[fi, ci]], axis=1)  # screen-space
            inv_z = bw / t[fi, :, 2]  # perspective-correct: 1/z is affine on screen
            z = 1.0 / inv_z.sum(axis=1)
            pix_all.append(py[fi, ci] * width + px[fi, ci])
            depth_all.append(z)
            face_all.append(face_ids[s][fi])
            bary_all.append(inv_z * z[:, None])

    face_map = np.full(height * width, -1, dtype=np.int64)
    depth_map = np.full(height * width, np.inf)
    bary_map = np.zeros((height * width, 3))
    if pix_all:
        pix = np.concatenate(pix_all)
        depth = np.concatenate(depth_all)
        order = np.lexsort((depth, pix))  # by pixel, then nearest first
        pix_sorted = pix[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = pix_sorted[1:] != pix_sorted[:-1]
        win = order[first]
        face_map[pix[win]] = np.concatenate(face_all)[win]
        depth_map[pix[win]] = depth[win]
        bary_map[pix[win]] = np.concatenate(bary_all)[win]
    return Fragments(face_map.reshape(height, width), bary_map.reshape(height, width, 3),
                     depth_map.reshape(height, width))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``V×3`` (orientation follows the faces' winding)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    return vn / np.linalg.norm(vn, axis=1, keepdims=True).clip(1e-12)


def interpolate(frags: Fragments, faces: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """Per-pixel interpolation of per-vertex ``attributes V×C`` with the fragments' barycentrics (0 off the mesh)."""
    attr = np.asarray(attributes, dtype=np.float64)
    out = np.zeros(frags.face.shape + attr.shape[1:])
    m = frags.mask
    tri = np.asarray(faces)[frags.face[m]]  # N×3
    out[m] = np.einsum("nk,nkc->nc", frags.bary[m], attr[tri])
    return out
