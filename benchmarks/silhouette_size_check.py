"""What rendering L_m's silhouettes below the crop size does to L_m and to its gradient w.r.t. the mesh vertices.

Hand meshes (``bench_train.posed_hands``) with Gaussian vertex noise (2 % of the crop) play the prediction, their
noise-free silhouette the GrabCut target; L_m and its vertex gradient at the crop size are compared with those at
½ and ¼ of it (target area-downsampled, vertices mapped by ``to_silhouette_pixels``)::

    python benchmarks/silhouette_size_check.py [--size 64] [--meshes 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import posed_hands  # noqa: E402
from tassn.render import SilhouetteRenderer  # noqa: E402
from tassn.stages.silhouette import to_silhouette_pixels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--meshes", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    S = args.size
    v, _, f, _, _ = posed_hands(args.meshes, S, seed=1)
    with torch.no_grad():
        target = (SilhouetteRenderer(S, backend="soft")(v, f) > 0.5).float()
    noise = torch.randn(v.shape[:-1] + (2,), generator=torch.Generator().manual_seed(3)) * S * 0.02
    pred = v + torch.cat([noise, torch.zeros_like(v[..., 2:])], -1)
    ref, ref_loss = None, None
    for size in (S, S // 2, S // 4):
        factor = S // size
        p = pred.clone().requires_grad_(True)
        t0 = time.perf_counter()
        alpha = SilhouetteRenderer(size, backend="soft")(to_silhouette_pixels(p, factor), f)
        loss = ((alpha - F.avg_pool2d(target, factor)) ** 2).mean(dim=(-1, -2, -3)).mean()
        loss.backward()
        seconds = time.perf_counter() - t0
        grad = p.grad[..., :2].flatten(1)
        ref, ref_loss = (grad, loss.item()) if ref is None else (ref, ref_loss)
        cos = F.cosine_similarity(grad, ref, dim=1)
        print(f"{S}² crop, silhouettes {size}²: L_m {loss.item():.4f} (×{loss.item() / ref_loss:.2f}), vertex-gradient "
              f"cosine with {S}² per mesh: median {cos.median().item():.3f}, min {cos.min().item():.3f}; "
              f"fwd+bwd {1e3 * seconds:.0f} ms")


if __name__ == "__main__":
    main()
