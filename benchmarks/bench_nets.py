"""Size, FLOPs and CPU speed of the PME sub-networks and of PME per flow backend.

Two configurations: the paper's (256² input, 256 features, 2 stacks, depth 4) and the small CPU one. Every number
is per frame at batch 1 in eval mode without autograd. FLOPs are ``torch.utils.flop_counter.FlopCounterMode``
(dense ops, a multiply-add = 2) plus the sparse Chebyshev products it does not see (2·nnz per column and
product); OpenCV's DIS flow is not counted. FlowNet2 networks are randomly initialised (speed does not depend
on the weights). Prints a table and writes JSON (default ``benchmarks/results/nets.json``)::

    PYTHONPATH=src python benchmarks/bench_nets.py [--threads 1] [--out benchmarks/results/nets.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tassn.hand.skeleton import NUM_JOINTS
from tassn.nets import PME
from tassn.nets.chebconv import ChebConv

CONFIGS: dict[str, dict[str, Any]] = {
    "paper-256": dict(image_size=256),  # the PME defaults are the paper's model
    "cpu-64": dict(
        image_size=64,
        hourglass_features=64,
        hourglass_stacks=2,
        hourglass_depth=2,
        hourglass_modules=1,
        hourglass_stem_features=64,
    ),
}
FLOW_BACKENDS = ("none", "dis", "flownet2s", "flownet2")
HEAVY_FLOWS = {"flownet2"}  # one repetition, no warm-up


def machine() -> dict[str, Any]:
    """CPU model, cores, library versions: numbers are meaningless without them."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "logical_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class RandomFlowNet2(nn.Module):
    """A randomly initialised FlowNet2-family network behind the FlowEstimator call (inputs in [0, 1])."""

    def __init__(self, variant: str):
        super().__init__()
        from tassn.nets.flownet2 import flownet2_model

        self.model = flownet2_model(variant)

    def forward(self, img_a: torch.Tensor, img_b: torch.Tensor) -> torch.Tensor:
        return self.model(torch.stack((img_a, img_b), dim=2) * 255.0)


def build_flow(name: str) -> nn.Module:
    if name.startswith("flownet2"):
        return RandomFlowNet2(name)
    from tassn.nets.flow import build_flow_estimator

    return build_flow_estimator(name)


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops(root: nn.Module, fn: Callable[[], Any]) -> float:
    """FLOPs of one call: FlopCounterMode's dense count plus the sparse ``L̂ @ X`` products of every ChebConv."""
    sparse = 0

    def hook(mod: ChebConv, args: tuple[torch.Tensor, ...], _out: Any) -> None:
        nonlocal sparse
        b, _, fin = args[0].shape
        sparse += 2 * mod.lap_values.numel() * fin * b * (mod.K - 1)

    handles = [m.register_forward_hook(hook) for m in root.modules() if isinstance(m, ChebConv)]
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        for h in handles:
            h.remove()
    return float(counter.get_total_flops() + sparse)


def time_ms(fn: Callable[[], Any], reps: int, warmup: int) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_config(name: str, kwargs: dict[str, Any], reps: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    net = PME(flow="none", **kwargs).eval()
    s, h = net.image_size, net.heatmap_size
    img_a, img_b = torch.rand(1, 3, s, s), torch.rand(1, 3, s, s)
    heat = torch.rand(1, NUM_JOINTS, h, h)
    flow = torch.randn(1, 2, s, s)
    with torch.no_grad():
        hg = net.heatmap(img_b, flow, heat)
        mesh = net.mesh(hg.heatmaps[:, -1], hg.features, hg.previous_features)
    cases: list[tuple[str, nn.Module, Callable[[], Any], int, int, bool]] = [
        ("heatmap (hourglass)", net.heatmap, lambda: net.heatmap(img_b, flow, heat), reps, 1, True),
        (
            "mesh (encoder + GCN)",
            net.mesh,
            lambda: net.mesh(hg.heatmaps[:, -1], hg.features, hg.previous_features),
            reps * 5,
            2,
            True,
        ),
        ("pose (GCN regressor)", net.pose, lambda: net.pose(mesh), reps * 5, 2, True),
    ]
    for backend in FLOW_BACKENDS:
        try:
            flow_net = build_flow(backend).eval()
        except ImportError as err:  # the flow backends are optional here
            print(f"  skipping flow {backend}: {err}")
            continue
        heavy = backend in HEAVY_FLOWS
        n, w = (1, 0) if heavy else (reps, 1)
        countable = backend != "dis"
        cases.append((f"flow {backend}", flow_net, lambda f=flow_net: f(img_a, img_b), n, w, countable))
        pme = PME(flow="none", **kwargs).eval()
        pme.flow = flow_net
        pme.freeze("flow")
        cases.append((f"PME step, flow {backend}", pme, lambda p=pme: p.step(img_a, img_b, heat), n, w, True))

    rows = []
    with torch.no_grad():
        for label, module, fn, n, warmup, countable in cases:
            print(f"  {name:9s} {label} …", flush=True)
            row = {
                "config": name,
                "network": label,
                "params_m": params(module) / 1e6,
                "gflops": flops(module, fn) / 1e9 if countable else None,
                "ms_per_frame": time_ms(fn, n, warmup),
                "reps": n,
            }
            if label.startswith("PME") and "dis" in label:
                row["note"] = "FLOPs exclude DIS (OpenCV)"
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = f"| {'config':9s} | {'network':26s} | {'params (M)':>10s} | {'GFLOPs':>8s} | {'ms/frame':>9s} | reps |"
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        gf = "n/a" if r["gflops"] is None else f"{r['gflops']:.2f}"
        lines.append(
            f"| {r['config']:9s} | {r['network']:26s} | {r['params_m']:10.2f} | {gf:>8s} | "
            f"{r['ms_per_frame']:9.1f} | {r['reps']:4d} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the hourglass-sized cases")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nets.json")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine()
    print(f"CPU: {info['cpu']} ({info['logical_cores']} logical cores), torch {info['torch']}, "
          f"{info['torch_threads']} thread(s)")
    rows: list[dict[str, Any]] = []
    for name in args.configs:
        rows += bench_config(name, CONFIGS[name], args.reps)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"machine": info, "configs": {k: CONFIGS[k] for k in args.configs}, "rows": rows}, indent=2)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
