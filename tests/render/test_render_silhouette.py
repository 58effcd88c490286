"""SilhouetteRenderer: backend choice, shapes, and gradients that move a mesh toward a target mask."""

from __future__ import annotations

import os

import pytest
import torch

import tassn.render as render
from tassn.render import SilhouetteRenderer
from tassn.render.pytorch3d_backend import INSTALL_HINT, pytorch3d_available


def grid_square(n: int, x0: float, y0: float, size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat (n×n)-vertex square mesh in pixels."""
    t = torch.linspace(0, 1, n)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    v = torch.stack([x0 + xx * size, y0 + yy * size, torch.ones_like(xx)], -1).reshape(-1, 3)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [[a, b, d], [a, d, c]]
    return v, torch.tensor(faces)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a > 0.5, b > 0.5
    return ((a & b).sum() / (a | b).sum()).item()


def test_renderer_shapes_and_backend() -> None:
    r = SilhouetteRenderer(32, backend="soft")
    v, f = grid_square(3, 4.5, 4.3, 10)  # covers pixel centres 5…14 × 5…14; no centre on a diagonal
    out = r(v.expand(2, 3, -1, -1), f)  # B×T×V×3
    assert out.shape == (2, 3, 1, 32, 32)
    # the soft outer edge gives and takes the same area; alpha dips near internal edges (as in PyTorch3D)
    assert 93.0 < out[0, 0, 0].sum().item() < 100.5
    hard = SilhouetteRenderer(32, sigma=1e-9, backend="soft")(v[None], f)
    assert hard.sum().item() == pytest.approx(100.0, abs=1e-3)
    auto = SilhouetteRenderer(32)
    assert auto.backend == ("pytorch3d" if pytorch3d_available() else "soft")
    with pytest.raises(ValueError, match="backend"):
        SilhouetteRenderer(32, backend="opengl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="…×V×3"):
        r(v[:, :2], f)


def test_renderer_passes_its_pair_method_to_the_rasterizer() -> None:
    v, f = grid_square(4, 4.5, 4.3, 12)
    reference = SilhouetteRenderer(32, backend="soft", method="spans")(v[None], f)
    windows = SilhouetteRenderer(32, backend="soft", method="windows")
    assert "method='windows'" in repr(windows)
    torch.testing.assert_close(windows(v[None], f), reference, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="method"):
        SilhouetteRenderer(32, method="tiles")  # type: ignore[arg-type]


@pytest.mark.skipif(pytorch3d_available(), reason="PyTorch3D is installed here")
def test_pytorch3d_backend_says_how_to_install() -> None:
    with pytest.raises(ImportError, match="PYTORCH3D_FORCE_NO_CUDA=1"):
        SilhouetteRenderer(32, backend="pytorch3d")
    assert "conda" in INSTALL_HINT


def test_gradient_descent_moves_the_silhouette_to_the_target() -> None:
    torch.manual_seed(0)
    S = 32
    renderer = SilhouetteRenderer(S, sigma=1e-2, backend="soft")
    v0, faces = grid_square(4, 6.5, 6.5, 12)
    target_v, _ = grid_square(4, 12.5, 10.5, 14)
    target = renderer(target_v[None], faces).detach()
    verts = v0[None].clone().requires_grad_(True)
    opt = torch.optim.Adam([verts], lr=0.5)
    start = iou(renderer(verts, faces), target)
    for _ in range(60):
        opt.zero_grad()
        loss = ((renderer(verts, faces) - target) ** 2).mean()
        loss.backward()
        opt.step()
    end = iou(renderer(verts, faces), target)
    assert start < 0.3
    assert end > 0.85


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, tassn.render; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    assert render.SilhouetteRenderer is SilhouetteRenderer


def test_weak_perspective_fit_then_render_lands_on_the_keypoints() -> None:
    # a normalised "hand": joints on a line, mesh = a square around them; 2D labels from a known camera
    joints = torch.zeros(1, 21, 3)
    joints[0, :, 1] = torch.linspace(-1.0, 1.0, 21)
    mesh, faces = grid_square(3, -0.5, -1.2, 2.4)
    mesh = mesh[None] - torch.tensor([0.0, 0.0, 1.0])
    kp2d = 10.0 * joints[..., :2] + torch.tensor([40.0, 30.0])
    mesh_px, joints_px, cam = render.fit_and_project(mesh, joints, kp2d)
    assert cam.scale.item() == pytest.approx(10.0, abs=1e-5)
    alpha = SilhouetteRenderer(64, backend="soft")(mesh_px, faces)[0, 0]
    for x, y in kp2d[0].round().long().tolist():
        assert alpha[y, x].item() > 0.5
    assert alpha[30, 20].item() == 0.0 and alpha[5, 40].item() == 0.0
