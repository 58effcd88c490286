"""benchmarks/direction_check.py: the hand-size measure; it and keypoint_sheet.py name a missing checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import direction_check  # noqa: E402
import keypoint_sheet  # noqa: E402


def test_hand_size_is_the_mean_wrist_distance_and_scales_with_the_hand() -> None:
    pose = torch.zeros(2, 21, 3)
    pose[:, 1:, 0] = torch.arange(1, 21, dtype=torch.float32)  # joints 1…20 on a line from the wrist
    pose[1] += 5.0  # a translated copy: same size
    torch.testing.assert_close(direction_check.hand_size(pose), torch.full((2,), 210 / 21))
    torch.testing.assert_close(direction_check.hand_size(0.5 * pose[:1]), torch.tensor([105 / 21]))


@pytest.mark.parametrize("script", [direction_check, keypoint_sheet], ids=["direction_check", "keypoint_sheet"])
def test_missing_checkpoint_is_named(script: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        script.main([str(missing), "--out", str(tmp_path / "out.json")])
    assert exit_info.value.code == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
