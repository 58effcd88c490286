"""Figures come back as uint8 RGB arrays with the drawing where it belongs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tassn.viz import (
    draw_skeleton,
    frame_to_uint8,
    joint_color,
    overlay_silhouette,
    plot_pck_curves,
    reference_legend,
)


def test_draw_skeleton_marks_the_keypoints() -> None:
    img = np.zeros((96, 96, 3), dtype=np.uint8)
    kp = np.stack([np.linspace(10, 85, 21), np.linspace(85, 10, 21)], 1)
    out = draw_skeleton(img, torch.tensor(kp), radius=2)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert img.sum() == 0  # the input is not modified
    for j in (0, 4, 8, 20):
        x, y = np.round(kp[j]).astype(int)
        assert tuple(out[y, x]) == joint_color(j), j
    assert out[5, 90].sum() == 0  # far from the hand: untouched


def test_draw_skeleton_hides_invisible_joints() -> None:
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    kp = np.full((21, 2), 32.0)
    kp[20] = (5.0, 5.0)
    visible = np.ones(21, dtype=bool)
    visible[20] = False
    out = draw_skeleton(img, kp, visible, radius=1)
    assert out[5, 5].sum() == 0 and out[32, 32].sum() > 0
    with pytest.raises(ValueError, match="21×2"):
        draw_skeleton(img, kp[:20])
    with pytest.raises(ValueError, match="uint8"):
        draw_skeleton(img.astype(np.float32), kp)


def test_overlay_silhouette() -> None:
    img = np.full((8, 8, 3), 100, dtype=np.uint8)
    alpha = torch.zeros(1, 8, 8)
    alpha[0, 2:4, 2:4] = 1.0
    out = overlay_silhouette(img, alpha, color=(0, 255, 0), opacity=0.5)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert tuple(out[2, 2]) == (50, 178, 50)
    assert tuple(out[0, 0]) == (100, 100, 100)
    with pytest.raises(ValueError, match="alpha"):
        overlay_silhouette(img, np.zeros((4, 4)))


def test_frame_to_uint8() -> None:
    frame = torch.zeros(3, 4, 5)
    frame[0] = 1.0
    out = frame_to_uint8(frame)
    assert out.shape == (4, 5, 3) and tuple(out[0, 0]) == (255, 0, 0)


def test_plot_pck_curves_returns_an_rgb_image() -> None:
    t = np.linspace(0, 50, 20)
    curves = {
        "ours": (t, np.clip(t / 40, 0, 1)),
        "baseline": (torch.tensor(t), torch.tensor(np.clip(t / 60, 0, 1))),
    }
    img = plot_pck_curves(curves, reference="stb", title="STB", size=(4, 3), dpi=50)
    assert img.shape == (150, 200, 3) and img.dtype == np.uint8
    assert (img < 200).any() and (img == 255).any()  # drawn lines on a white background
    assert any("0.773" in line and "0.972" in line and "11.3" in line for line in reference_legend("stb"))
    assert any("0.689" in line for line in reference_legend("mhp"))
    with pytest.raises(ValueError, match="reference"):
        reference_legend("rhd")  # type: ignore[arg-type]
    as_mapping = plot_pck_curves(
        {"ours": {"thresholds_mm": t.tolist(), "pck": np.clip(t / 40, 0, 1).tolist()}}
    )
    assert as_mapping.ndim == 3 and as_mapping.dtype == np.uint8
    with pytest.raises(ValueError, match="curve"):
        plot_pck_curves({"bad": (t, t[:5])})


def test_pck_legend_and_title_never_cover_the_axes() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from tassn.viz import pck_figure

    t = np.linspace(0.0, 50.0, 20)
    curves = {f"run {k}": (t, 1.0 - np.exp(-t / s)) for k, s in enumerate((8.0, 12.0, 20.0, 30.0))}
    fig = pck_figure(curves, reference="stb", title="synthetic-cpu/stage3: Stage3 (full), test split")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    axes = fig.axes[0].get_window_extent(renderer)
    (legend,) = fig.legends
    assert not legend.get_window_extent(renderer).overlaps(axes)
    assert not fig._suptitle.get_window_extent(renderer).overlaps(axes)


def test_stage_curve_title_names_run_stage_and_split(tmp_path) -> None:
    from types import SimpleNamespace

    from tassn.stages.base import StageModule

    fake = SimpleNamespace(_trainer=SimpleNamespace(default_root_dir=str(tmp_path / "synthetic-cpu" / "stage3")))
    assert StageModule.run_name(fake) == "synthetic-cpu/stage3"
