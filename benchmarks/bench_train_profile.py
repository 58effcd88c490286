"""Where stage 3's training step spends its time (``--profile``) and the renderer's methods side by side
(``--compare``): the profiling half of ``bench_train.py``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from bench_train import Size, build_stage, posed_hands, spread, sync, timed, train_step_fn
from bench_train_data import stage_batches
from bench_train_meshes import RenderedMeshes


def _label_modules(modules: Mapping[str, torch.nn.Module]) -> list[Any]:
    """Wrap each module's forward in a profiler range named ``forward: <name>`` (via hooks; returns the handles)."""
    from torch.autograd.profiler import record_function

    handles = []
    for name, module in modules.items():
        ranges: list[Any] = []

        def pre(_m: Any, _a: Any, n: str = name, r: list[Any] = ranges) -> None:
            r.append(record_function(f"forward: {n}"))
            r[-1].__enter__()

        def post(_m: Any, _a: Any, _o: Any, r: list[Any] = ranges) -> None:
            r.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


def profile_stage3(size: Size, device: torch.device, top: int = 12) -> dict[str, Any]:
    """Where stage 3's training step spends its time (torch.profiler, 2 steps): the forward time of each
    sub-network and of the renderer, the backward time of the heaviest autograd nodes, and the operators with
    the most self time; beside the renderer's share, the size of the meshes it rendered and of the batch's own
    (the share depends on them). The batch: stage 3's of :func:`bench_train_data.stage_batches`."""
    from torch.profiler import ProfilerActivity, profile

    batch, reference = stage_batches(("stage3",), size, device)["stage3"]
    module = build_stage("stage3", size).to(device)
    module.log = lambda *a, **k: None
    step = train_step_fn(module, batch)
    step()
    net = module.net
    handles = _label_modules({"flow": net.flow, "heatmap (hourglass)": net.heatmap, "mesh (GCN)": net.mesh,
                              "pose (GCN)": net.pose, "renderer": module.renderer})
    meshes = RenderedMeshes(module.renderer, module.silhouette_factor)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    steps = 2
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    wall = (time.perf_counter() - t0) / steps
    for h in handles:
        h.remove()
    meshes.remove()
    events = prof.key_averages()

    def row(e: Any, total: bool) -> dict[str, Any]:
        ms = (e.cpu_time_total if total else e.self_cpu_time_total) / 1e3 / steps
        return {"name": e.key, "ms_per_step": ms, "share_of_step": ms / (1e3 * wall), "calls_per_step": e.count / steps}

    sections = [row(e, True) for e in events if e.key.startswith("forward: ")]
    backward = sorted((row(e, True) for e in events if e.key.startswith("autograd::engine::evaluate_function: ")),
                      key=lambda r: -r["ms_per_step"])[:top]
    for r in backward:
        r["name"] = "backward: " + r["name"].removeprefix("autograd::engine::evaluate_function: ")
    ops = sorted((row(e, False) for e in events if not e.key.startswith(("forward: ", "autograd::"))),
                 key=lambda r: -r["ms_per_step"])[:top]
    fwd = sum(r["ms_per_step"] for r in sections if r["name"] == "forward: renderer")
    bwd = sum(row(e, True)["ms_per_step"] for e in events
              if e.key == "autograd::engine::evaluate_function: _SoftSilhouetteBackward")
    renderer = {"forward_ms": fwd, "backward_ms": bwd, "share_of_step": (fwd + bwd) / (1e3 * wall),
                **meshes.size(), **reference}
    return {"step_ms": [{"name": "whole step (profiled)", "ms_per_step": 1e3 * wall, "share_of_step": 1.0,
                         "calls_per_step": 1}],
            "sections": sorted(sections, key=lambda r: -r["ms_per_step"]), "backward": backward, "ops": ops,
            "renderer": renderer}


@contextmanager
def renderer_method(method: str) -> Iterator[None]:
    """Render with the soft rasterizer's ``method`` (``spans``: the row-span walk; ``windows``: a K×K window per
    face; ``native``: the compiled CPU loop) whatever the default, for side-by-side timings in one run."""
    import functools

    import tassn.render.silhouette as silhouette
    from tassn.render.soft_rasterizer import soft_silhouette

    silhouette.soft_silhouette = functools.partial(soft_silhouette, method=method)
    try:
        yield
    finally:
        silhouette.soft_silhouette = soft_silhouette


def compared_methods(device: torch.device) -> dict[str, str]:
    """The renderer methods ``--compare`` times: the row-span walk ("old") against the compiled loop on the CPU where
    it builds, else against the K×K window per face ("new")."""
    from tassn.render.soft_native import load_native

    native = device.type == "cpu" and load_native() is not None
    return {"old": "spans", "new": "native" if native else "windows"}


def bench_compare(size: Size, device: torch.device, rounds: int = 5) -> list[dict[str, Any]]:
    """Two of the renderer's ways to find the covering pairs side by side (:func:`compared_methods`): the renderer
    alone (fwd + bwd) and stage 3's whole step, "old" and "new" columns, interleaved ``rounds`` times so that both
    see the same machine load; medians, the per-round speed-up with its spread, and the largest output difference."""
    from tassn.render.soft_rasterizer import soft_silhouette

    vertices_px, _, faces, _, _ = posed_hands(size.render_batch, size.image_size, seed=1)
    v, faces = vertices_px.to(device).requires_grad_(True), faces.to(device)
    methods = compared_methods(device)

    def render(path: str) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = soft_silhouette(v, faces, size.image_size, method=methods[path])
        (grad,) = torch.autograd.grad(alpha.square().sum(), v)
        return alpha.detach(), grad

    (a_old, g_old), (a_new, g_new) = render("old"), render("new")
    batch, _ = stage_batches(("stage3",), size, device)["stage3"]
    module = build_stage("stage3", size).to(device)
    module.log = lambda *a, **k: None
    step = train_step_fn(module, batch)
    step()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(max(1, rounds)):
        for path in ("old", "new"):
            t, _ = timed(lambda p=path: render(p), device, 1, 0)
            times.setdefault(("renderer fwd+bwd", path), []).extend(t)
            with renderer_method(methods[path]):
                t, _ = timed(step, device, 1, 0)
            times.setdefault(("stage3 step", path), []).extend(t)
    rows = []
    for case in ("renderer fwd+bwd", "stage3 step"):
        old, new = times[(case, "old")], times[(case, "new")]
        speedup = spread([o / n for o, n in zip(old, new, strict=True)])
        rows.append({"size": size.name, "case": case, "old_method": methods["old"], "new_method": methods["new"],
                     "old_ms": 1e3 * statistics.median(old),
                     "new_ms": 1e3 * statistics.median(new), "speedup": speedup["median"],
                     "speedup_min": speedup["min"], "speedup_max": speedup["max"], "rounds": rounds})
    rows[0]["max_alpha_diff"] = float((a_old - a_new).abs().max())
    rows[0]["max_grad_rel_diff"] = float((g_old - g_new).abs().max() / g_old.abs().max().clamp_min(1e-12))
    for r in rows:
        print(f"  compare {r['size']:9s} {r['case']:17s} {r['old_method']} {r['old_ms']:8.1f} ms  "
              f"{r['new_method']} {r['new_ms']:8.1f} ms  "
              f"×{r['speedup']:.2f} [{r['speedup_min']:.2f}–{r['speedup_max']:.2f}]", flush=True)
    return rows
