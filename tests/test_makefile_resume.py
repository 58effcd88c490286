"""The Makefile resumes a stage only when it has a last.ckpt (Lightning warns on `--ckpt_path=last` without one)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _fit_line(runs: Path) -> str:
    out = subprocess.run(["make", "-n", "pretrain", f"RUNS={runs}"], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    (line,) = [x for x in out.splitlines() if " fit " in x]
    return line


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_ckpt_path_last_only_when_a_last_checkpoint_exists(tmp_path) -> None:
    assert "--ckpt_path" not in _fit_line(tmp_path)  # a fresh stage
    last = tmp_path / "source-cpu" / "pretrain" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.touch()
    assert _fit_line(tmp_path).endswith("--ckpt_path=last")  # a stopped stage resumes
