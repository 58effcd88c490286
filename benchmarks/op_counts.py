"""How many operators one training step of each stage dispatches, and how many of them wait on the data.

On a GPU at small batches a step's time is set by how many kernels it launches and by every point where the host
must wait for the device (an operator whose output shape depends on the values, e.g. ``nonzero``), not by its
arithmetic (docs/results.md, "The GPU check on an H200"). Both can be counted on the CPU, without a GPU:
``torch.profiler`` records one training step of each stage (``bench_train``'s stages, batch and optimiser step) and
this prints, per stage, the top-level ``aten`` operators (those a device would run as one or more kernels) and the
data-dependent ones (``nonzero``, ``masked_select``, ``unique``, ``repeat_interleave``, and ``item`` on a tensor
other than the optimiser's CPU step counters), each also over the pre-training's. The renderer finds its covering
pairs by ``--method``: ``spans`` (the row-span walk, what a GPU runs by default), ``windows`` (a K×K window per
face, fixed-shape work) or ``native`` (the compiled CPU loop, the CPU's default)::

    python benchmarks/op_counts.py [--sizes cpu] [--stages pretrain stage2 stage3] [--method spans|windows|native]

Writes JSON (default ``benchmarks/results/op_counts.json``).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: operators whose output size depends on the values: on a GPU the host waits for the device at each
DATA_DEPENDENT = ("aten::nonzero", "aten::masked_select", "aten::unique", "aten::_unique2", "aten::repeat_interleave",
                  "aten::_local_scalar_dense")


def count_step(stage: str, size_key: str) -> dict[str, Any]:
    """Operator counts of one training step of ``stage`` (after one warm-up step)."""
    from torch.profiler import ProfilerActivity, profile

    import bench_train as bt

    size = bt.SIZES[size_key]
    module = bt.build_stage(stage, size)
    step = bt.train_step_fn(module, bt.hand_batch(size, torch.device("cpu")))
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    # Adam keeps its step counters on the CPU whatever the parameters' device: their .item() never waits on a GPU
    adam_steps = sum(1 for e in events if e.name == "aten::_local_scalar_dense" and _under(e, "Optimizer.step"))
    waits = collections.Counter(e.name for e in events if e.name in DATA_DEPENDENT)
    waits["aten::_local_scalar_dense"] -= adam_steps
    return {"stage": stage, "size": size.name, "top_level_ops": len(top), "all_aten_ops": len(events),
            "data_dependent": {k: v for k, v in sorted(waits.items()) if v > 0},
            "data_dependent_total": sum(v for v in waits.values() if v > 0)}


def _under(event: Any, name: str) -> bool:
    """Whether a profiler event runs inside a range whose name starts with ``name``."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(name):
            return True
        parent = parent.cpu_parent
    return False


def table(rows: list[dict[str, Any]]) -> str:
    base = {r["size"]: r for r in rows if r["stage"] == "pretrain"}
    head = f"{'size':<10}{'stage':<16}{'top-level ops':>14}{'× pretrain':>11}{'data-dependent':>15}  which"
    lines = [head, "-" * len(head)]
    for r in rows:
        ref = base.get(r["size"])
        ratio = f"{r['top_level_ops'] / ref['top_level_ops']:.2f}" if ref else "–"
        which = ", ".join(f"{k.removeprefix('aten::')} {v}" for k, v in r["data_dependent"].items())
        lines.append(f"{r['size']:<10}{r['stage']:<16}{r['top_level_ops']:>14}{ratio:>11}"
                     f"{r['data_dependent_total']:>15}  {which}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import bench_train as bt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["cpu"], choices=list(bt.SIZES))
    parser.add_argument("--stages", nargs="+", default=list(bt.STAGES), choices=list(bt.STAGES))
    parser.add_argument("--method", default="spans", choices=["spans", "windows", "native"],
                        help="how the renderer finds its pairs (default spans, a GPU's path)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "op_counts.json")
    args = parser.parse_args(argv)
    bt.STAGE_OPTIONS["renderer_method"] = args.method
    torch.manual_seed(0)
    rows = [count_step(stage, key) for key in args.sizes for stage in args.stages]
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"renderer_method": args.method, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
