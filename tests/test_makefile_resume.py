"""The Makefile resumes a stage only when it has a last.ckpt (Lightning warns on `--ckpt_path=last` without one),
retrains a stage only when its inputs change, and starts the pre-training beside the target data."""

from __future__ import annotations

import os
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


FAKE_TASSN = """#!/bin/sh
# stands in for `python -m tassn`: a fit writes a checkpoint naming its run, counted in calls.log
for arg in "$@"; do case "$arg" in --trainer.default_root_dir=*) root="${arg#*=}";; esac; done
echo "$1" >> "$CALLS"
if [ "$1" = fit ]; then mkdir -p "$root/checkpoints"; echo "$*" > "$root/checkpoints/last.ckpt"; fi
"""


NEEDS_INSTALLED_MAKE = pytest.mark.skipif(shutil.which("make") is None or not (REPO / ".install.stamp").exists(),
                                          reason="needs make and an installed checkout")


def _fake_runs(tmp_path: Path, script: str) -> tuple[Path, Path]:
    """An executable stand-in for `python -m tassn` running ``script``, and an empty runs folder for it."""
    fake = tmp_path / "fake_tassn"
    fake.write_text(script)
    fake.chmod(0o755)
    runs = tmp_path / "runs"
    runs.mkdir()
    return fake, runs


def _make_pretrain(runs: Path, fake: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "pretrain", f"RUNS={runs}", f"TASSN={fake}", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CALLS": str(runs / "calls.log")})


@NEEDS_INSTALLED_MAKE
def test_a_finished_stage_trains_again_only_when_its_inputs_change_and_keeps_its_checkpoints(tmp_path) -> None:
    fake, runs = _fake_runs(tmp_path, FAKE_TASSN)
    calls = runs / "calls.log"
    stage = runs / "source-cpu" / "pretrain"

    first = _make_pretrain(runs, fake)
    assert first.returncode == 0, first.stderr
    assert calls.read_text().split() == ["prepare", "fit"]
    assert (stage / "fit.done").read_text() == (stage / "inputs.sha256").read_text()

    again = _make_pretrain(runs, fake)  # nothing changed: nothing runs
    assert again.returncode == 0 and calls.read_text().split() == ["prepare", "fit"]

    changed = _make_pretrain(runs, fake, "TRAIN_ARGS=--trainer.max_steps=5")
    assert changed.returncode == 0, changed.stderr
    assert calls.read_text().split() == ["prepare", "fit", "fit"]
    assert "checkpoints.1" in changed.stderr
    kept = (stage / "checkpoints.1" / "last.ckpt").read_text()
    assert "max_steps" not in kept and "max_steps" in (stage / "checkpoints" / "last.ckpt").read_text()

    back = _make_pretrain(runs, fake, "TRAIN_ARGS=--trainer.max_steps=5")
    assert back.returncode == 0 and calls.read_text().split() == ["prepare", "fit", "fit"]
    dry = subprocess.run(["make", "-n", "pretrain", f"RUNS={runs}", f"TASSN={fake}"], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"{fake} fit" in dry and "checkpoints.$n" in dry  # the original inputs again: a new run, set aside first


OVERLAP_TASSN = """#!/bin/sh
# as FAKE_TASSN, but the target's data take a second longer and log when they end
for arg in "$@"; do case "$arg" in --trainer.default_root_dir=*) root="${arg#*=}";; esac; done
case "$*" in *prepare*stage1.yaml*) sleep 1; echo "prepare-target-done" >> "$CALLS"; exit 0;; esac
echo "$1" >> "$CALLS"
if [ "$1" = fit ]; then mkdir -p "$root/checkpoints"; echo "$*" > "$root/checkpoints/last.ckpt"; fi
"""


@NEEDS_INSTALLED_MAKE
def test_the_pretraining_starts_before_the_target_data_are_done(tmp_path) -> None:
    fake, runs = _fake_runs(tmp_path, OVERLAP_TASSN)
    calls = runs / "calls.log"
    done = subprocess.run(["make", "--no-print-directory", "data-and-pretrain", f"RUNS={runs}", f"TASSN={fake}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "CALLS": str(calls)})
    assert done.returncode == 0, done.stderr
    assert calls.read_text().split() == ["prepare", "fit", "prepare-target-done"]
    assert (runs / "synthetic-cpu" / "data.done").is_file() and (runs / "source-cpu" / "pretrain" / "fit.done").is_file()
