"""benchmarks/keypoint_sheet.py: a missing checkpoint is named, and nothing is written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import keypoint_sheet  # noqa: E402


def test_missing_checkpoint_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        keypoint_sheet.main([str(missing), "--out", str(tmp_path / "kp.png")])
    assert exit_info.value.code == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "kp.png").exists()
