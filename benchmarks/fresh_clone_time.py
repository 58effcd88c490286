"""Time `make train-stage3` from a fresh clone, step by step, as a new user runs it.

Clones the repository's committed HEAD into a new folder, makes a virtual environment there that sees this
Python's installed packages (so the clone's editable install does not replace the current one, and no package is
downloaded twice), and runs the Make targets that `make train-stage3` chains, one at a time, each timed:
install, the source data and then the pre-training beside the target data, stage 1, stage 2, stage 3 (fit, test
and the table). The sum is the figure README quotes. Prints a table and writes JSON.

    python benchmarks/fresh_clone_time.py --out benchmarks/results/fresh_clone_time.json

Run it on an otherwise idle machine: the figure is wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (name, make target) in the order `make train-stage3` runs them; each target's prerequisites are done by then
STEPS: tuple[tuple[str, str], ...] = (
    ("install", "install"),
    ("source data, then the pre-training beside the target data", "data-and-pretrain"),
    ("stage 1", "train-stage1"),
    ("stage 2", "train-stage2"),
    ("stage 3 + test + table", "train-stage3"),
)


def run_step(name: str, target: str, clone: Path, env: dict[str, str], log: Path) -> float:
    """Run one Make target in the clone, its output appended to ``log``; return its wall time in seconds."""
    start = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n===== {name}: make {target}\n")
        out.flush()
        result = subprocess.run(["make", target], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"fresh_clone_time: `make {target}` failed (exit {result.returncode}); see {log}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where to clone (default: a new temporary folder, removed after)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fresh_clone_time.json")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tassn-fresh-"))
    clone = workdir / "tassn"
    if clone.exists():
        raise SystemExit(f"fresh_clone_time: {clone} exists; give an empty --workdir")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["PYTHON"] = str(venv / "bin" / "python")
    log = workdir / "make.log"

    rows = []
    total = 0.0
    for name, target in STEPS:
        seconds = run_step(name, target, clone, env, log)
        total += seconds
        rows.append({"step": name, "target": target, "seconds": round(seconds, 1)})
        print(f"{name:<24} {seconds:8.1f} s   (total {total / 60:5.1f} min)", flush=True)
    print(f"{'total':<24} {total:8.1f} s = {total / 60:.1f} min")

    report = {
        "commit": commit.stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "steps": rows,
        "total_seconds": round(total, 1),
        "total_minutes": round(total / 60, 1),
        "log": str(log),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
