"""The tracker-response benchmark's measure (benchmarks/tracker_response.py): a scale-blind reader returns f."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from tracker_response import video_response  # noqa: E402


class ScaleBlindReader:
    """Draws the same hand in every crop: a square of joints spanning the crop / 1.4, centred."""

    crop_size = 64

    def restart(self) -> None:
        pass

    def trial(self, crop: np.ndarray):
        s = self.crop_size
        side = s / 1.4
        grid = np.linspace(-side / 2, side / 2, 21)
        kp = np.stack([grid + (s - 1) / 2, grid[::-1] + (s - 1) / 2], axis=1)
        return (kp, np.full(21, 0.9), np.zeros((21, 3)), np.zeros((10, 3))), None


def test_a_scale_blind_reader_settles_on_the_box_it_was_given() -> None:
    rng = np.random.default_rng(0)
    frames = [np.zeros((128, 128, 3), np.uint8) for _ in range(4)]
    kp2d = 60 + rng.uniform(-15, 15, size=(4, 21, 2))
    means, offset, _ = video_response(frames, kp2d, ScaleBlindReader(), (0.6, 1.0, 1.8), every=1, margin=1.4)
    assert means["0.6"] == pytest.approx(0.6, abs=1e-6)
    assert means["1.0"] == pytest.approx(1.0, abs=1e-6)
    assert means["1.8"] == pytest.approx(1.8, abs=1e-6)
    assert offset == pytest.approx(0.0, abs=1e-6)
