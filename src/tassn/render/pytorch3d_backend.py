"""The same soft silhouette through PyTorch3D's rasterizer, for users who have PyTorch3D installed.

PyTorch3D is optional and imported lazily by :func:`load_pytorch3d`, the one place that knows how to get it.
Vertices arrive in crop pixels (pixel centres at integers) and are mapped to PyTorch3D's NDC, where +x points
left and +y up and pixel ``j`` of ``S`` has its centre at ``1 − (2j + 1)/S``; with that mapping the output's
row ``i`` / column ``j`` is our pixel ``(y = i, x = j)``. Depth may be in any units: it is mapped per mesh to
[1, 2] (order preserved) because PyTorch3D ignores faces behind the camera (z < 0).
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import torch
from torch import Tensor

from .soft_rasterizer import blur_radius_for, check_render_inputs

INSTALL_HINT = (
    "PyTorch3D is not installed. Install it with conda "
    "(`conda install -c pytorch3d -c pytorch -c conda-forge pytorch3d`) or build it from source "
    "(`PYTORCH3D_FORCE_NO_CUDA=1 pip install 'git+https://github.com/facebookresearch/pytorch3d.git'` on CPU); "
    "no wheel for this Python/torch is on PyPI. Or use backend='soft', which needs nothing extra."
)


def load_pytorch3d() -> SimpleNamespace:
    """Import the pieces of PyTorch3D we use, or raise an ImportError that says how to install it."""
    try:
        structures = importlib.import_module("pytorch3d.structures")
        raster = importlib.import_module("pytorch3d.renderer.mesh.rasterize_meshes")
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return SimpleNamespace(Meshes=structures.Meshes, rasterize_meshes=raster.rasterize_meshes)


def pytorch3d_available() -> bool:
    """True when PyTorch3D imports."""
    try:
        load_pytorch3d()
    except ImportError:
        return False
    return True


def pixels_to_ndc(vertices_px: Tensor, image_size: int) -> Tensor:
    """``B×V×3`` crop pixels (+ depth in any units) → PyTorch3D NDC with depth mapped per mesh to [1, 2]."""
    S = image_size
    x = 1.0 - (2.0 * vertices_px[..., 0] + 1.0) / S
    y = 1.0 - (2.0 * vertices_px[..., 1] + 1.0) / S
    z = vertices_px[..., 2].detach()
    zmin = z.amin(dim=1, keepdim=True)
    zspan = (z.amax(dim=1, keepdim=True) - zmin).clamp_min(1e-12)
    return torch.stack((x, y, 1.0 + (z - zmin) / zspan), dim=-1)


def pytorch3d_silhouette(
    vertices_px: Tensor,
    faces: Tensor,
    image_size: int,
    sigma: float = 1e-4,
    faces_per_pixel: int = 50,
    blur_radius: float | None = None,
    bin_size: int | None = None,
    max_faces_per_bin: int | None = None,
) -> Tensor:
    """PyTorch3D's ``rasterize_meshes`` + ``SoftSilhouetteShader`` blending. Same contract as
    :func:`tassn.render.soft_rasterizer.soft_silhouette`; returns alpha ``B×1×S×S``."""
    check_render_inputs(vertices_px, faces, image_size, sigma)
    p3d = load_pytorch3d()
    blur = blur_radius_for(sigma) if blur_radius is None else float(blur_radius)
    B = vertices_px.shape[0]
    verts = pixels_to_ndc(vertices_px, image_size)
    meshes = p3d.Meshes(verts=verts, faces=faces.long()[None].expand(B, -1, -1).contiguous())
    pix_to_face, _zbuf, _bary, dists = p3d.rasterize_meshes(
        meshes,
        image_size=image_size,
        blur_radius=blur,
        faces_per_pixel=faces_per_pixel,
        bin_size=bin_size,
        max_faces_per_bin=max_faces_per_bin,
        perspective_correct=False,
        clip_barycentric_coords=blur > 0,
        cull_backfaces=False,
    )
    # pytorch3d.renderer.blending.sigmoid_alpha_blend, alpha channel only
    prob = torch.sigmoid(-dists / sigma) * (pix_to_face >= 0)
    alpha = 1.0 - torch.prod(1.0 - prob, dim=-1)
    return alpha[:, None]
