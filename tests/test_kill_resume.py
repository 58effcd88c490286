"""A run killed mid-epoch (SIGKILL, no clean-up) resumes from its step checkpoint to the same end, logging every
step exactly once across the killed and the resumed run's ``metrics.csv``."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "stages"))
from stage_fixtures import *  # noqa: E402,F401,F403  (tiny nets, videos and configs)

REPO = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 10  # 2 videos × 5 clips of 2 frames (stride 1), one clip per batch
EVERY = 2

# ``python -c KILL_ON_CHECKPOINT <last.ckpt> fit …``: ``python -m tassn fit …`` that SIGKILLs itself at the first
# audited operation (an open, a rename, …) after ``last.ckpt`` is renamed into place: the kill lands at the worst
# moment, every time — the checkpoint is on disk and nothing after it is (no row, no flush). The audit event comes
# before the rename; the kill waits for the next one, on the same thread, so the rename is done.
KILL_ON_CHECKPOINT = """
import os, runpy, signal, sys, threading
target, main, armed = os.path.abspath(sys.argv.pop(1)), threading.get_ident(), []
def hook(event, args):
    if threading.get_ident() != main:
        return
    if armed:
        armed.clear()
        os.kill(os.getpid(), signal.SIGKILL)
    if event == "os.rename" and os.path.abspath(os.fsdecode(os.fspath(args[1]))) == target:
        armed.append(True)
sys.addaudithook(hook)
sys.argv[0] = "tassn"
runpy.run_module("tassn", run_name="__main__", alter_sys=True)
"""


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


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_run_resumes_mid_epoch_to_the_same_end(write_configs, tmp_path) -> None:
    from tassn.cli import TassnCLI

    # the uninterrupted run and the resume run in this process (the same arguments as the command line); only
    # the run that is killed needs a process of its own. A first fit has no last.ckpt: no --ckpt_path.
    TassnCLI(args=_command(_configs(write_configs, "full"))[3:-1])
    end = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert end == STEPS_PER_EPOCH
    expected = sorted(int(r["step"]) for r in _train_rows(tmp_path / "full" / "version_0" / "metrics.csv"))
    assert expected == list(range(STEPS_PER_EPOCH))

    configs = _configs(write_configs, "killed")
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    killed = [sys.executable, "-c", KILL_ON_CHECKPOINT, str(last), *_command(configs)[3:-1]]
    proc = subprocess.run(killed, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode(errors="replace")[-2000:]
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert killed_at == EVERY  # killed as soon as the first (mid-epoch) step checkpoint appeared
    before = _train_rows(tmp_path / "killed" / "version_0" / "metrics.csv")
    # the checkpoint is never ahead of the log: every step it counts as done has its row, once
    assert sorted(int(r["step"]) for r in before) == list(range(killed_at))

    TassnCLI(args=_command(configs)[3:])
    assert torch.load(last, weights_only=True)["global_step"] == end

    after = _train_rows(tmp_path / "killed" / "version_1" / "metrics.csv")
    # the resumed run starts at the checkpoint's step: it neither redoes a logged step nor skips an unlogged one
    assert sorted(int(r["step"]) for r in after) == list(range(killed_at, end))
    rows = before + after
    assert sorted(int(r["step"]) for r in rows) == expected  # no step missing, none twice
    for key in ("train/loss", "train/loss_h"):
        counts = Counter(int(r["step"]) for r in rows if r.get(key))
        assert set(counts.values()) == {1} and sorted(counts) == expected
    assert not list(last.parent.glob("*.part"))  # every step checkpoint taken was published
