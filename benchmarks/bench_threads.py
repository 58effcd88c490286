"""Compute threads × data-loading workers for one stage's real training steps on this machine.

The CPU recipe trains one process per stage. How many OpenMP threads it computes with and whether its batches are
cut in a loading process beside it (``data.init_args.num_workers``) changes nothing in the recipe but its speed, so
it is measured, not guessed: each setting runs ``--steps`` optimiser steps of the stage's own ``tassn fit`` (its
configs and data, validation off) under Lightning's simple profiler, twice, in turns (A B C D A B C D), and the
mean seconds per step of ``run_training_batch`` (forward, backward, optimiser) and of ``train_dataloader_next``
(waiting for the batch) are read from its report. Their sum is a step's wall time. Needs the stage's data
(``make data-all``) and an idle machine::

    python benchmarks/bench_threads.py --stage pretrain [--steps 120] [--settings 1:0 2:0 1:1 2:1]

Writes ``benchmarks/results/threads-<stage>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = {"pretrain": "experiments/data/synthetic_source.yaml"}
PROFILER_ROW = re.compile(r"^\|\s*(?P<action>[^|]+?)\s*\|\s*(?P<mean>\d[0-9.eE+-]*)\s*\|")


def profiled_means(report: str) -> dict[str, float]:
    """Mean seconds per call of each action in Lightning's simple-profiler table."""
    means = {}
    for line in report.splitlines():
        match = PROFILER_ROW.match(line.strip())
        if match:
            means[match["action"]] = float(match["mean"])
    return means


def step_seconds(means: dict[str, float]) -> tuple[float, float]:
    """(training, waiting for data) seconds per step from :func:`profiled_means`."""
    train = means.get("run_training_batch")
    wait = next((v for k, v in means.items() if k.endswith("train_dataloader_next")), None)
    if train is None or wait is None:
        raise ValueError("the profiler report has no run_training_batch / train_dataloader_next rows")
    return train, wait


def run_setting(stage: str, threads: int, workers: int, steps: int, seed: int, workdir: Path) -> tuple[float, float]:
    """One profiled run of ``steps`` steps with ``threads`` compute threads and ``workers`` loading processes."""
    command = [sys.executable, "-m", "tassn", "fit", "--config", f"experiments/{stage}.yaml",
               "--config", DATA.get(stage, "experiments/data/synthetic.yaml"), "--config", "experiments/cpu.yaml",
               "--config", f"experiments/cpu/{stage}.yaml", f"--seed_everything={seed}",
               f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0", "--trainer.profiler=simple",
               "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false",
               f"--data.init_args.num_workers={workers}",
               f"--trainer.default_root_dir={workdir / f'{stage}-t{threads}-w{workers}'}"]
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "WANDB_MODE": "disabled"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench_threads: `{' '.join(command)}` failed:\n{result.stderr[-3000:]}")
    return step_seconds(profiled_means(result.stdout + result.stderr))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="pretrain", choices=["pretrain", "stage1", "stage2", "stage3"])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting, in turns (default 2)")
    parser.add_argument("--settings", nargs="+", default=["1:0", "2:0", "1:1", "2:1"],
                        help="threads:workers pairs (default 1:0 2:0 1:1 2:1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    settings = [tuple(int(x) for x in s.split(":")) for s in args.settings]

    runs: dict[tuple[int, int], list[tuple[float, float]]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory(prefix="tassn-threads-") as tmp:
        for _ in range(args.repeats):
            for threads, workers in settings:
                runs[(threads, workers)].append(run_setting(args.stage, threads, workers, args.steps, args.seed,
                                                            Path(tmp)))
    base = statistics.mean(sum(r) for r in runs[settings[0]])
    rows = []
    for (threads, workers), measured in runs.items():
        train = statistics.mean(r[0] for r in measured)
        wait = statistics.mean(r[1] for r in measured)
        rows.append({"threads": threads, "workers": workers, "train_s": train, "data_wait_s": wait,
                     "step_s": train + wait, "speedup": base / (train + wait), "runs": len(measured)})
    head = f"{'threads':>7}{'workers':>8}{'train s':>9}{'wait s':>8}{'step s':>8}{'speed-up':>9}"
    print(f"{args.stage}, {args.steps} steps per run, {args.repeats} runs per setting (speed-up against the first)")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['threads']:>7}{r['workers']:>8}{r['train_s']:>9.3f}{r['data_wait_s']:>8.3f}{r['step_s']:>8.3f}"
              f"{r['speedup']:>9.2f}")
    out = args.out or REPO / "benchmarks" / "results" / f"threads-{args.stage}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"stage": args.stage, "steps": args.steps, "cpus": os.cpu_count(), "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
