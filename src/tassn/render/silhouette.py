"""``SilhouetteRenderer``: one module, two interchangeable backends (built-in soft rasterizer or PyTorch3D)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from .pytorch3d_backend import load_pytorch3d, pytorch3d_available, pytorch3d_silhouette
from .soft_rasterizer import METHODS, Method, blur_radius_for, soft_silhouette

Backend = Literal["auto", "soft", "pytorch3d"]


class SilhouetteRenderer(nn.Module):
    """Differentiable soft silhouettes of meshes already projected into the crop.

    Args:
        image_size: S, the side of the square crop in pixels.
        sigma: sharpness of the edge, in PyTorch3D's NDC squared-distance units (1e-4 as in its docs).
        faces_per_pixel: K nearest faces (in z) blended per pixel.
        backend: ``soft`` (built-in, plain PyTorch), ``pytorch3d``, or ``auto`` (PyTorch3D when it imports).
        blur_radius: faces farther than this (squared NDC) are ignored; default ``log(1/1e-4 − 1)·sigma``.
        method: how the built-in rasterizer finds each pixel's faces (``auto``: the compiled loop on the CPU, the
            row-span walk elsewhere; ``windows``: a K×K window per face, fixed-shape work; see
            :func:`~tassn.render.soft_rasterizer.soft_silhouette`). Ignored by PyTorch3D.

    ``forward(vertices_px …×V×3, faces F×3) -> …×1×S×S``: x, y in crop pixels (pixel centres at integers),
    z depth in any units (larger = farther); leading dims (e.g. B×T) are kept.
    """

    def __init__(
        self,
        image_size: int,
        sigma: float = 1e-4,
        faces_per_pixel: int = 50,
        backend: Backend = "auto",
        blur_radius: float | None = None,
        method: Method = "auto",
    ) -> None:
        super().__init__()
        if image_size <= 0:
            raise ValueError(f"image_size must be positive; got {image_size}")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive; got {sigma}")
        if faces_per_pixel <= 0:
            raise ValueError(f"faces_per_pixel must be positive; got {faces_per_pixel}")
        if backend not in ("auto", "soft", "pytorch3d"):
            raise ValueError(f"backend must be 'auto', 'soft' or 'pytorch3d'; got {backend!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
        if backend == "pytorch3d":
            load_pytorch3d()  # fail early, with the install hint
        self.image_size = int(image_size)
        self.sigma = float(sigma)
        self.faces_per_pixel = int(faces_per_pixel)
        self.blur_radius = blur_radius_for(sigma) if blur_radius is None else float(blur_radius)
        self.method: Method = method
        self.backend = (
            "pytorch3d" if backend == "pytorch3d" or (backend == "auto" and pytorch3d_available()) else "soft"
        )

    def forward(self, vertices_px: Tensor, faces: Tensor) -> Tensor:
        if vertices_px.dim() < 3 or vertices_px.shape[-1] != 3:
            raise ValueError(f"vertices_px must be …×V×3 (x, y px, depth); got {tuple(vertices_px.shape)}")
        lead = vertices_px.shape[:-2]
        flat = vertices_px.reshape(-1, *vertices_px.shape[-2:])
        options = {"sigma": self.sigma, "faces_per_pixel": self.faces_per_pixel, "blur_radius": self.blur_radius}
        if self.backend == "pytorch3d":
            alpha = pytorch3d_silhouette(flat, faces, self.image_size, **options)
        else:
            alpha = soft_silhouette(flat, faces, self.image_size, method=self.method, **options)
        return alpha.reshape(*lead, 1, self.image_size, self.image_size)

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, sigma={self.sigma}, faces_per_pixel={self.faces_per_pixel}, "
            f"backend={self.backend!r}, method={self.method!r}"
        )
