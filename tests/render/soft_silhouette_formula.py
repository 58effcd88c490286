"""PyTorch3D's soft silhouette blending written out directly in float64 (``SoftSilhouetteShader``: alpha = 1 − ∏ₖ
(1 − sigmoid(−dₖ/σ)) over the K faces nearest in z among those within the blur radius, dₖ the signed squared NDC
distance, negative inside), and the stored golden output computed with it once::

    python tests/render/soft_silhouette_formula.py     # writes tests/render/fixtures/soft_silhouette_golden.npz

Every pixel is compared with every face, so only small inputs are practical.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

#: inputs (an irregular 42-vertex sphere at 16²) and the formula's alpha for each (σ, K) (K = −1: every face).
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "soft_silhouette_golden.npz"


def blur_radius(sigma: float, eps: float = 1e-4) -> float:
    """PyTorch3D's recommended blur radius ``log(1/eps − 1)·σ``."""
    return math.log(1.0 / eps - 1.0) * sigma


def dense_reference(
    verts: torch.Tensor, faces: torch.Tensor, S: int, sigma: float, k: int | None
) -> torch.Tensor:
    """Every pixel against every face in float64, PyTorch3D's rules written out directly (small inputs only)."""
    blur = blur_radius(sigma)
    v = verts.double()
    ys, xs = torch.meshgrid(torch.arange(S, dtype=v.dtype), torch.arange(S, dtype=v.dtype), indexing="ij")
    p = torch.stack([xs, ys], -1).reshape(-1, 1, 2)
    out = []
    for b in range(v.shape[0]):
        fv = v[b][faces]
        a, bb, c = fv[None, :, 0, :2], fv[None, :, 1, :2], fv[None, :, 2, :2]

        def cross(u, w):
            return u[..., 0] * w[..., 1] - u[..., 1] * w[..., 0]

        def seg(u, w):
            e = w - u
            t = (((p - u) * e).sum(-1) / (e * e).sum(-1)).clamp(0, 1)
            return ((p - u - t[..., None] * e) ** 2).sum(-1)

        w0, w1, w2 = cross(bb - p, c - p), cross(c - p, a - p), cross(a - p, bb - p)
        area = w0 + w1 + w2
        inside = (w0 * area > 0) & (w1 * area > 0) & (w2 * area > 0)
        d = torch.minimum(torch.minimum(seg(a, bb), seg(bb, c)), seg(c, a)) * (2 / S) ** 2
        valid = inside | (d < blur)
        bary = (torch.stack([w0, w1, w2], -1) / area[..., None]).clamp_min(0)
        bary = bary / bary.sum(-1, keepdim=True)
        pz = (bary * fv[None, :, :, 2]).sum(-1)
        if k is not None:
            order = torch.argsort(torch.where(valid, pz, torch.full_like(pz, math.inf)), dim=1, stable=True)
            sel = torch.zeros_like(valid).scatter_(1, order[:, :k], True)
            valid &= sel
        logt = F.logsigmoid(torch.where(inside, -d, d) / sigma)
        out.append(-torch.expm1(torch.where(valid, logt, torch.zeros_like(logt)).sum(1)).reshape(S, S))
    return torch.stack(out)[:, None]



def golden_inputs() -> tuple[torch.Tensor, torch.Tensor, int]:
    """A level-1 icosphere (42 vertices, 80 faces), jittered with a fixed generator, in a 16² crop."""
    t = (1.0 + 5.0**0.5) / 2.0
    v = torch.tensor([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                      [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=torch.float64)
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6],
         [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
         [8, 6, 7], [9, 8, 1]]
    verts, faces = [*v], []
    midpoint: dict[tuple[int, int], int] = {}

    def mid(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in midpoint:
            verts.append((verts[a] + verts[b]) / 2)
            midpoint[key] = len(verts) - 1
        return midpoint[key]

    for a, b, c in f:
        ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
        faces += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
    v = torch.stack(verts)
    v = v / v.norm(dim=1, keepdim=True)
    g = torch.Generator().manual_seed(0)
    size = 16
    xy = v[:, :2] * size * 0.3 + size / 2 + torch.randn(len(v), 2, generator=g, dtype=torch.float64) * 0.4
    z = v[:, 2:] * 10 + 20
    return torch.cat([xy, z], 1).float()[None], torch.tensor(faces, dtype=torch.long), size


def write_golden(path: Path = GOLDEN) -> Path:
    verts, faces, size = golden_inputs()
    sigmas, ks = [1e-4, 1e-4, 1e-3, 1e-3], [-1, 3, -1, 3]
    alphas = {f"alpha_{i}": dense_reference(verts, faces, size, s, None if k < 0 else k).numpy()
              for i, (s, k) in enumerate(zip(sigmas, ks, strict=True))}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, verts=verts.numpy(), faces=faces.numpy(), size=size, sigmas=np.array(sigmas),
                        faces_per_pixel=np.array(ks), **alphas)
    return path


if __name__ == "__main__":
    print(write_golden())
