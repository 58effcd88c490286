"""The convolutions' memory layout (``PME(channels_last=…)``) timed on the recipe's own training steps.

``bench_train.py --layout`` compares the layouts on its common batch (8 clips of 4 frames, noise frames, a fresh
PME). A stage's gain depends on its batch shape, so this times each stage's real step as ``make train-stage3`` runs
it: the stage's own configuration (``experiments/<stage>.yaml``, the synthetic data file, ``experiments/cpu.yaml`` and
``experiments/cpu/<stage>.yaml``, through ``learning_check.build``), its first training batches, and its network
started from a trained checkpoint where one is given. The two layouts alternate over ``--rounds`` on the same
batches and optimiser, so the machine's drift hits both alike; the table gives the median seconds per step of each
and the speed-up per round. Prints a table and writes JSON::

    OMP_NUM_THREADS=1 python benchmarks/bench_layout.py --stage stage1 \
        [--init-from runs/synthetic-cpu/pretrain/checkpoints/last.ckpt] [--rounds 4] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_check import build  # noqa: E402 (the sibling script's CLI builder)

LAYOUTS = {"channels-last": torch.channels_last, "contiguous": torch.contiguous_format}


def step_seconds(model: Any, optimiser: torch.optim.Optimizer, batches: list[dict], steps: int) -> float:
    """Mean seconds of one optimiser step of the stage's own loss over ``steps`` batches (after one warm-up)."""

    def step(batch: dict) -> None:
        loss = sum(weight * term() for weight, term in model.loss_terms(batch).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    step(batches[0])
    start = time.perf_counter()
    for batch in batches[1: steps + 1]:
        step(batch)
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="stage1", choices=("pretrain", "stage1", "stage2", "stage3"))
    parser.add_argument("--init-from", help="a trained checkpoint the stage starts from (its init_from)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per layout and round")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "layout.json")
    args = parser.parse_args(argv)

    overrides = [] if args.init_from is None else [f"--model.init_args.init_from={args.init_from}"]
    cli = build(args.stage, "cpu", None, overrides)
    model, data = cli.model, cli.datamodule
    data.setup("fit")
    loader = iter(data.train_dataloader())
    batches = [next(loader) for _ in range(args.steps + 1)]
    model.train()
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-4)
    times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for _ in range(args.rounds):
        for name, layout in LAYOUTS.items():
            model.net.heatmap.to(memory_format=layout)
            model.net.mesh.to(memory_format=layout)
            times[name].append(step_seconds(model, optimiser, batches, args.steps))
    speedups = [c / cl for c, cl in zip(times["contiguous"], times["channels-last"], strict=True)]
    shape = tuple(batches[0]["frames"].shape[:2])
    result = {"stage": args.stage, "batch_clips_frames": shape, "init_from": args.init_from,
              "threads": torch.get_num_threads(), "rounds": args.rounds, "steps": args.steps,
              "seconds_per_step": {k: statistics.median(v) for k, v in times.items()},
              "all_seconds": times, "speedup_per_round": speedups}
    print(f"{args.stage}: batch of {shape[0]} clips × {shape[1]} frames, {torch.get_num_threads()} thread(s)")
    print("| layout | s/step (median) | per round |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.4f} | {' '.join(f'{v:.4f}' for v in values)} |")
    print(f"contiguous / channels-last per round: {' '.join(f'{s:.2f}' for s in speedups)} "
          f"(median {statistics.median(speedups):.2f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
