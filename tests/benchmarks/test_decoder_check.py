"""benchmarks/decoder_check.py: every sub-pixel decoder it compares reads an exact Gaussian's peak."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import decoder_check  # noqa: E402
from tassn.heatmaps import gaussian_heatmaps  # noqa: E402


@pytest.fixture()
def peaks() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return 3.0 + 10.0 * torch.rand(4, 21, 2, generator=generator)  # inside a 16×16 map, off the border


def test_local_decoders_recover_a_gaussians_sub_pixel_peak(peaks: torch.Tensor) -> None:
    maps = gaussian_heatmaps(peaks, 16, sigma=1.0)
    errors = {name: float((decode(maps) - peaks).abs().max()) for name, decode in decoder_check.decoders().items()}
    assert 0.3 < errors.pop("argmax") <= 0.5 + 1e-6  # rounding to the cell: what the others must remove
    for name, error in errors.items():
        if "parabola" in name or "DARK" in name:  # exact for a Gaussian (DARK up to its blur's edge effects)
            assert error < 0.02, name
        elif "conv_soft_argmax2d" in name:  # a window's soft-argmax is biased towards its centre, less than rounding
            assert error < 0.2, name


def test_score_counts_visible_joints_within_the_threshold() -> None:
    points = torch.zeros(1, 2, 2)  # heatmap cell (0, 0) → crop pixel 1.5 at stride 4
    labels = torch.tensor([[[1.5, 1.5], [1.5, 30.0]]])
    row = decoder_check.score(points, labels, torch.tensor([[True, True]]), stride=4.0)
    assert row["pck2d"] == pytest.approx(0.5) and row["error_px"] == pytest.approx(28.5 / 2)
    assert decoder_check.score(points, labels, torch.tensor([[True, False]]), stride=4.0)["pck2d"] == 1.0


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert decoder_check.main(["--weights", str(tmp_path / "none.ckpt")]) == 2
    assert "none.ckpt" in capsys.readouterr().err
