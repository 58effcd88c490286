"""Figures as uint8 RGB arrays (H×W×3) that any logger takes: PCK curves, skeletons, silhouette overlays.

Plots use matplotlib's Agg canvas directly (no pyplot, no display, no global state); drawing on frames uses
OpenCV. Both are imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from tassn.hand.skeleton import BONES, NUM_JOINTS
from tassn.paper_results import TABLE1

ArrayLike = np.ndarray | torch.Tensor

#: RGB colour per finger (thumb, index, middle, ring, little); the wrist is white.
FINGER_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64),
    (255, 192, 0),
    (64, 200, 64),
    (0, 160, 255),
    (200, 80, 255),
)
WRIST_COLOR = (255, 255, 255)


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check_image(image: ArrayLike) -> np.ndarray:
    img = _numpy(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be an H×W×3 uint8 RGB array; got shape {img.shape}, dtype {img.dtype}")
    return img


def frame_to_uint8(frame: ArrayLike) -> np.ndarray:
    """A batch frame ``3×H×W`` float in [0, 1] → ``H×W×3`` uint8 RGB."""
    f = _numpy(frame)
    if f.ndim != 3 or f.shape[0] != 3:
        raise ValueError(f"frame must be 3×H×W; got shape {f.shape}")
    return np.ascontiguousarray((np.clip(f, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))


def joint_color(j: int) -> tuple[int, int, int]:
    """Colour of joint ``j``: its finger's, white for the wrist."""
    return WRIST_COLOR if j == 0 else FINGER_COLORS[(j - 1) // 4]


def draw_skeleton(
    image: ArrayLike,
    kp2d: ArrayLike,
    visible: ArrayLike | None = None,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw the 21-joint hand skeleton (``kp2d 21×2`` pixels, x, y) on a copy of ``image`` (H×W×3 uint8 RGB).

    Bones take their finger's colour; joints are filled discs. ``visible 21`` hides unlabelled joints and bones.
    """
    import cv2

    img = _check_image(image).copy()
    kp = _numpy(kp2d).astype(np.float64)
    if kp.shape != (NUM_JOINTS, 2):
        raise ValueError(f"kp2d must be {NUM_JOINTS}×2 pixel coordinates; got shape {kp.shape}")
    vis = (
        np.ones(NUM_JOINTS, dtype=bool)
        if visible is None
        else _numpy(visible).astype(bool).reshape(NUM_JOINTS)
    )
    side = min(img.shape[:2])
    radius = max(1, side // 96) if radius is None else radius
    thickness = max(1, side // 128) if thickness is None else thickness
    pts = np.round(kp).astype(int)
    for parent, child in BONES:
        if vis[parent] and vis[child] and np.isfinite(kp[[parent, child]]).all():
            cv2.line(img, tuple(pts[parent]), tuple(pts[child]), joint_color(child), thickness, cv2.LINE_AA)
    for j in range(NUM_JOINTS):
        if vis[j] and np.isfinite(kp[j]).all():
            cv2.circle(img, tuple(pts[j]), radius, joint_color(j), -1, cv2.LINE_AA)
    return img


def overlay_silhouette(
    image: ArrayLike, alpha: ArrayLike, color: tuple[int, int, int] = (0, 255, 0), opacity: float = 0.5
) -> np.ndarray:
    """Blend a silhouette ``alpha`` (H×W or 1×H×W, in [0, 1]) onto ``image`` (H×W×3 uint8 RGB) in ``color``."""
    img = _check_image(image)
    a = _numpy(alpha).astype(np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.shape != img.shape[:2]:
        raise ValueError(f"alpha must be H×W {img.shape[:2]} (or 1×H×W); got shape {a.shape}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1]; got {opacity}")
    w = (np.clip(a, 0.0, 1.0) * opacity)[..., None]
    out = img.astype(np.float32) * (1.0 - w) + np.asarray(color, dtype=np.float32) * w
    return (out + 0.5).astype(np.uint8)


def reference_legend(reference: Literal["stb", "mhp"]) -> list[str]:
    """Legend lines with the paper's Table 1 numbers for ``reference``."""
    if reference not in TABLE1:
        raise ValueError(f"reference must be one of {sorted(TABLE1)} or None; got {reference!r}")
    return [
        f"paper {name}: AUC0–50 {a:.3f}, AUC20–50 {b:.3f}, EPE {e:.1f} mm"
        for name, (a, b, e) in TABLE1[reference].items()
    ]


def plot_pck_curves(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike] | Mapping[str, ArrayLike]],
    reference: Literal["stb", "mhp"] | None = None,
    title: str | None = None,
    size: Sequence[float] = (7.2, 6.4),
    dpi: int = 100,
) -> np.ndarray:
    """3D PCK curves like the paper's Fig. 6, one per run: ``{name: (thresholds_mm, pck)}`` (or
    ``{name: {"thresholds_mm": …, "pck": …}}``, as :meth:`tassn.metrics.PoseMetrics3D.compute` gives them).

    Each run's legend gives its AUC over the plotted range; with ``reference`` the paper's TASSN numbers for that
    dataset are listed in the legend (the paper publishes numbers, not curve samples). The legend sits below
    the axes, never over a curve. Returns H×W×3 uint8.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = pck_figure(curves, reference, title, size, dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def pck_figure(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike] | Mapping[str, ArrayLike]],
    reference: Literal["stb", "mhp"] | None = None,
    title: str | None = None,
    size: Sequence[float] = (7.2, 6.4),
    dpi: int = 100,
):  # noqa: ANN201 - a matplotlib Figure (matplotlib is imported lazily)
    """The matplotlib figure of :func:`plot_pck_curves` (for tests and callers that save vector formats)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=tuple(size), dpi=dpi, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in curves.items():
        t, pck = (curve["thresholds_mm"], curve["pck"]) if isinstance(curve, Mapping) else curve
        t_np, p_np = _numpy(t).astype(np.float64), _numpy(pck).astype(np.float64)
        if t_np.shape != p_np.shape or t_np.ndim != 1 or t_np.size < 2:
            raise ValueError(f"curve {name!r}: thresholds and pck must be equal-length 1-D arrays")
        area = np.trapezoid(p_np, t_np) / (t_np[-1] - t_np[0])
        ax.plot(t_np, p_np, marker="o", markersize=3, label=f"{name} (AUC {area:.3f})")
    handles, labels = ax.get_legend_handles_labels()
    if reference is not None:
        for line in reference_legend(reference):
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(line)
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("3D PCK")
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title, fontsize="medium")
    if handles:
        fig.legend(handles, labels, loc="outside lower center", fontsize="small", frameon=False)
    return fig


#: The name the stages use for :func:`plot_pck_curves`.
pck_curve_figure = plot_pck_curves

__all__ = [
    "draw_skeleton",
    "frame_to_uint8",
    "joint_color",
    "overlay_silhouette",
    "pck_curve_figure",
    "plot_pck_curves",
    "reference_legend",
]
