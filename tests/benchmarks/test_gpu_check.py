"""benchmarks/gpu_check.sh and the CUDA-marked tests fail loudly, never skip, when CUDA is asked for and absent;
the script's dry run checks, without a GPU, that every command it would run parses its arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}


def test_gpu_check_fails_without_cuda(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "FAILED: no CUDA device is available to torch" in proc.stderr
    assert "== cuda_tests" not in proc.stdout  # nothing ran
    assert not out.exists()


def test_cuda_tests_fail_with_require_cuda_and_skip_without() -> None:
    test = str(ROOT / "tests" / "render" / "test_render_cuda.py")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", test]
    required = subprocess.run([*args, "--require-cuda"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=300)
    assert required.returncode == 1 and "2 errors" in required.stdout, required.stdout[-2000:]
    assert "a CUDA-marked test ran without a CUDA device" in required.stdout
    default = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert default.returncode == 0 and "2 skipped" in default.stdout, default.stdout[-2000:]


def test_bench_train_check_args_needs_no_device() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--device", "cuda",
                           "--sizes", "paper", "--autocast", "bf16", "--rounds", "7", "--check-args"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    args = json.loads(proc.stdout.strip().splitlines()[-1])
    assert args["device"] == "cuda" and args["autocast"] == "bf16" and args["rounds"] == 7
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--autocast", "bf32",
                          "--check-args"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--autocast" in bad.stderr


@pytest.mark.slow
def test_gpu_check_dry_run_parses_every_command(tmp_path: Path) -> None:
    """The CUDA tests collect, make bench expands to bench_train with arguments it accepts, and tassn fit accepts
    the stage-3 run's flags with experiments/paper.yaml (50 steps, bf16-mixed, one device)."""
    out = tmp_path / "gpu.json"
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(out)], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "tests/render/test_render_cuda.py::" in proc.stdout and "tests collected" in proc.stdout
    assert "benchmarks/bench_train.py --device cuda --sizes paper --autocast bf16" in proc.stdout
    assert "  max_steps: 50" in proc.stdout and "  precision: bf16-mixed" in proc.stdout
    assert "gpu_check: dry run OK" in proc.stdout and not out.exists()
