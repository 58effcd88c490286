"""benchmarks/error_by_2d.py: per-frame 2D error, EPE and PA-EPE of a network's outputs, on hand-made clips."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from test_mean_pose import rest_pose_mm  # noqa: E402

import error_by_2d  # noqa: E402
from tassn.hand.normalize import normalize_3d  # noqa: E402
from tassn.nets.pme import PMEOutput  # noqa: E402

CROP, CELLS, T = 64, 16, 3


def batch() -> dict:
    """One clip of T frames: the same pose in mm, 2D keypoints on heatmap-cell centres of a 64-px crop."""
    cells = torch.stack([torch.arange(21) % 5 * 3 + 1, torch.arange(21) // 5 * 3 + 1], -1).float()
    kp2d = (cells + 0.5) * (CROP / CELLS) - 0.5
    return {"frames": torch.zeros(1, T, 3, CROP, CROP), "kp2d": kp2d.expand(1, T, 21, 2).clone(),
            "visible": torch.ones(1, T, 21), "kp3d": rest_pose_mm().float().expand(1, T, 21, 3).clone(), "cells": cells}


class Network:
    """Heatmaps peaked at the labels' cells shifted by ``shift_cells``; the true pose, turned about z by ``turn``."""

    def __init__(self, shift_cells: int = 0, turn: float = 0.0) -> None:
        self.shift, self.turn = shift_cells, turn

    def run(self, frames: torch.Tensor) -> PMEOutput:
        b = batch()
        heat = torch.zeros(1, T, 2, 21, CELLS, CELLS)
        for j, (x, y) in enumerate(b["cells"].long().tolist()):
            heat[..., j, y, x + self.shift] = 1.0
        pose = normalize_3d(b["kp3d"])[0]
        c, s = math.cos(self.turn), math.sin(self.turn)
        pose = pose @ torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T
        return PMEOutput(heat, torch.zeros(1), torch.zeros(1, T, 8, 3), pose, torch.zeros(1))


@pytest.mark.parametrize(("shift", "turn"), [(0, 0.0), (2, 0.0), (0, 0.6)])
def test_per_frame_errors_measure_2d_and_the_alignments(monkeypatch: pytest.MonkeyPatch, shift: int,
                                                        turn: float) -> None:
    import tassn.predict.model as model

    monkeypatch.setattr(model, "load_model", lambda *a, **k: SimpleNamespace(net=Network(shift, turn)))
    errors = error_by_2d.per_frame_errors("any.ckpt", [batch()])
    assert errors["err2d_px"].shape == (T,)
    assert errors["err2d_px"] == pytest.approx(shift * CROP / CELLS, abs=1e-4)  # two cells = 8 px
    assert errors["pa_epe_mm"] == pytest.approx(0.0, abs=1e-3)  # a turned hand is the same hand after Procrustes
    if turn:
        assert (errors["epe_mm"] > 5.0).all()
    else:
        assert errors["epe_mm"] == pytest.approx(0.0, abs=1e-3)
