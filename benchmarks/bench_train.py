"""Training and inference speed and peak memory of the tassn stages, on CPU or CUDA (``--device``).

Four measurements, each at the CPU configuration (64² crops, the narrow PME of ``experiments/cpu.yaml``, batch 8,
4-frame clips) and at the paper's size (256² crops, the full PME, a small batch, a few steps):

- **train**: one optimiser step of each stage's own ``training_step`` (pretrain, stage 1, stage 2, stage 3 and
  stage 3 without L_c) on a fixed batch, the stages interleaved (A B C … A B C …) over ``--rounds`` (5): median
  clips/s, frames/s, ms per frame, the peak memory of the step, and each stage's time per frame over the first
  stage's, per round, with its median and range across rounds (``--autocast bf16``: the forward under autocast).
  Stage 3 runs every clip forward and reversed and renders both, so its cost per frame is compared with
  stage 2's (a single-frame model: one direction) — the price of the temporal training.
- **render**: the silhouette renderer, forward + backward, per batch of meshes: the built-in soft rasterizer and
  PyTorch3D where it imports (skipped with the reason otherwise).
- **infer**: PME inference per flow backend (eval, no autograd), ms per frame over a clip.
- **profile** (``--profile``): ``torch.profiler`` on the stage-3 step at the first size: forward time of each
  sub-network and of the renderer, the heaviest backward nodes, top operators by self time, and the renderer's
  share of the step (its forward plus its backward node).
- **compare** (``--compare``): two of the soft rasterizer's ways to find covering pairs (the row-span walk against
  the compiled CPU loop, or against the K×K window per face where that does not build or on CUDA), renderer alone
  and stage 3's whole step, interleaved over ``--rounds`` with the per-round speed-up's spread.

``--silhouette-divisor N`` renders L_m's silhouettes at the crop size / N (the stages' ``silhouette_size``) and
``--batch-directions`` runs stage 3's two directions as one PME call (``batch_directions``). The renderer's cost
depends on the meshes: a fresh PME's are not hand-shaped (large overlapping faces), so ``--init-from CKPT`` starts
every PME from a checkpoint of any stage trained at the same size, and each silhouette stage records the mean face
area and silhouette area fraction of the meshes it rendered against the batch's (``bench_train_meshes.py``).
Profiling and comparison live in ``bench_train_profile.py``, the tables in ``bench_train_report.py``, the peak
memory in ``bench_train_memory.py``.

Batches are tensors shaped like the data modules' (frames, heatmaps, 2D keypoints of a posed template hand
placed in the crop, its rendered silhouettes, 3D labels), so the numbers measure the model, not the data
loader or the disk; the frames are noise (``--data-batch``, CPU size only: each stage's first batch of the synthetic
training data it trains on, read before the timings; ``bench_train_data.py``). Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` during the case; on CPU the peak resident set size above the size just before
the case, sampled every 2 ms from ``/proc/self/statm``, with glibc told to return every block over 64 KiB to the
system when it is freed (``MALLOC_MMAP_THRESHOLD_``, set by re-executing the script), so that one case's freed
memory does not hide the next case's.
Prints tables and writes JSON (default ``benchmarks/results/train.json``)::

    python benchmarks/bench_train.py [--device cpu|cuda] [--sizes cpu paper] [--rounds 5] [--autocast none|bf16]
                                     [--threads 2] [--profile] [--compare] [--silhouette-divisor 2]
                                     [--batch-directions] [--init-from CKPT] [--data-batch]
                                     [--layout channels-last|contiguous]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_nets import build_flow, machine  # noqa: E402 (the sibling benchmark's helpers)
from bench_train_memory import PeakMemory  # noqa: E402
from bench_train_meshes import NetInit, apply_init, read_init, watch_renderer  # noqa: E402
from tassn.hand.skeleton import NUM_JOINTS  # noqa: E402
from tassn.nets import PME  # noqa: E402

#: the narrow PME of experiments/cpu.yaml
CPU_NET: dict[str, Any] = dict(
    hourglass_features=32, hourglass_stacks=2, hourglass_depth=2, hourglass_modules=1, hourglass_stem_features=32,
    mesh_fc_hidden=128, mesh_channels=(32, 16, 3), pose_channels=(16, 32), pose_fc_hidden=128,
)


@dataclass(frozen=True)
class Size:
    """One benchmark size: crop side, network arguments, batch and clip length, repetitions."""

    name: str
    image_size: int
    net: Mapping[str, Any]
    batch: int
    clip_len: int
    steps: int
    warmup: int = 1
    render_batch: int = 32


SIZES: dict[str, Size] = {
    # experiments/cpu.yaml: 64² crops, narrow PME, batch 8 of 4-frame clips
    "cpu": Size("cpu-64", 64, CPU_NET, batch=8, clip_len=4, steps=5, render_batch=32),
    # the paper's model and crop (experiments/paper.yaml); a small batch so that a CPU finishes in minutes
    "paper": Size("paper-256", 256, {}, batch=2, clip_len=4, steps=2, render_batch=24),
}
#: glibc: serve (and return on free) every allocation over 64 KiB with mmap
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "65536")
STAGES: tuple[str, ...] = ("pretrain", "stage1", "stage2", "stage3", "stage3 w/o L_c")
#: ``--silhouette-divisor``, ``--batch-directions``: options of the silhouette stages (stage 2 and 3); the renderer's
#: ``method`` (``auto``; ``op_counts.py --method`` sets it)
STAGE_OPTIONS: dict[str, Any] = {"silhouette_divisor": 1, "batch_directions": False, "renderer_method": "auto"}
#: ``--layout``: the memory layout of the PME's convolutions (``PME(channels_last=…)``; the default is the PME's)
NET_OPTIONS: dict[str, Any] = {}
#: ``--init-from``: the weights every PME the benchmark builds starts from (fresh by default)
net_init: NetInit = NetInit()


# ----------------------------------------------------------------------------------------------------- inputs
def posed_hands(n: int, image_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor, torch.Tensor]:
    """``n`` randomly posed template hands placed in an ``S×S`` crop by a weak-perspective camera (about 70% of the
    crop): ``(vertices_px n×V×3, kp2d n×21×2, faces F×3, vertices_mm n×V×3, joints_mm n×21×3)``."""
    from tassn.hand.kinematics import random_pose
    from tassn.hand.template import load_template

    template = load_template("procedural")
    vertices, joints = template.pose(random_pose(n, torch.Generator().manual_seed(seed)))
    centre = joints.mean(dim=1, keepdim=True)
    extent = (joints[..., :2] - centre[..., :2]).abs().amax(dim=(1, 2)).clamp_min(1.0)
    scale = (0.35 * image_size / extent)[:, None, None]

    def to_crop(x: torch.Tensor) -> torch.Tensor:
        xy = (x[..., :2] - centre[..., :2]) * scale + (image_size - 1) / 2
        return torch.cat([xy, x[..., 2:] * scale], dim=-1)

    return to_crop(vertices), to_crop(joints)[..., :2], template.faces, vertices, joints


def hand_batch(size: Size, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch shaped like the data modules': a posed template hand per frame with its heatmaps and rendered
    silhouette (so that the renderer and the camera fit see hand-sized meshes) and the 3D labels the
    pre-training reads; the frames are noise."""
    from tassn.render import SilhouetteRenderer

    b, t, s = size.batch, size.clip_len, size.image_size
    vertices_px, kp2d, faces, vertices, joints = posed_hands(b * t, s, seed)
    with torch.no_grad():
        silhouettes = SilhouetteRenderer(s, backend="soft")(vertices_px, faces) > 0.5
    h = s // 4
    grid = torch.arange(h, dtype=torch.float32)
    kp_h = kp2d / 4
    heat = torch.exp(-((grid[None, None, None, :] - kp_h[..., 0, None, None]) ** 2
                       + (grid[None, None, :, None] - kp_h[..., 1, None, None]) ** 2) / 2.0)
    depth = torch.tensor([0.0, 0.0, 500.0])
    batch = {
        "frames": torch.rand(b, t, 3, s, s, generator=torch.Generator().manual_seed(seed)),
        "heatmaps": heat.reshape(b, t, NUM_JOINTS, h, h),
        "kp2d": kp2d.reshape(b, t, NUM_JOINTS, 2),
        "visible": torch.ones(b, t, NUM_JOINTS),
        "silhouettes": silhouettes.float().reshape(b, t, 1, s, s),
        "kp3d": (joints + depth).reshape(b, t, NUM_JOINTS, 3),
        "mesh3d": (vertices + depth).reshape(b, t, -1, 3),
    }
    return {k: v.to(device) for k, v in batch.items()}


def build_net(size: Size, flow: str = "none", init: NetInit | None = None) -> PME:
    """A seeded PME of ``size`` with the weights of ``init`` (default ``net_init``, i.e. ``--init-from``)."""
    torch.manual_seed(0)
    net = PME(flow=flow, image_size=size.image_size, **{**size.net, **NET_OPTIONS})
    return apply_init(net, net_init if init is None else init, f" at size {size.name}")


def build_stage(name: str, size: Size, renderer_backend: str = "soft") -> torch.nn.Module:
    """The stage's LightningModule with the PME of :func:`build_net` (flow ``none``: DIS is OpenCV on the CPU and is
    measured under ``infer``; zero flow keeps the training numbers about the trained networks)."""
    from tassn.render import SilhouetteRenderer
    from tassn.stages import Pretrain, Stage1, Stage2, Stage3

    net = build_net(size)
    if name == "pretrain":
        return Pretrain(net)
    if name == "stage1":
        return Stage1(net)
    silhouette_size = size.image_size // STAGE_OPTIONS["silhouette_divisor"]
    renderer = SilhouetteRenderer(silhouette_size, backend=renderer_backend, method=STAGE_OPTIONS["renderer_method"])
    # a fresh mesh estimator has no BatchNorm statistics worth keeping (at their initial values its meshes miss the
    # crop and the renderer would time empty silhouettes): it normalises by the batch, as it did before
    options = {"renderer": renderer, "silhouette_size": silhouette_size,
               "fixed_norm_stats": None if net_init.path is not None else []}
    if name == "stage2":
        return Stage2(net, **options)
    both = {"batch_directions": STAGE_OPTIONS["batch_directions"]}
    if name == "stage3":
        return Stage3(net, **options, **both)
    if name == "stage3 w/o L_c":
        return Stage3(net, **options, **both, lambda_c_pose=0.0, lambda_c_mesh=0.0)
    raise ValueError(f"unknown stage {name!r}; expected one of {STAGES}")


# ----------------------------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> tuple[list[float], int]:
    """Wall seconds of ``steps`` calls after ``warmup`` calls, and the peak memory (bytes) of the timed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    memory = PeakMemory(device)
    with memory.measure():
        for _ in range(steps):
            t0 = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - t0)
    return times, memory.peak_bytes


#: ``--autocast``: the dtype of ``torch.autocast`` around each training step's forward (None: full precision)
AUTOCAST: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
autocast_dtype: torch.dtype | None = None


def train_step_fn(module: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> Callable[[], None]:
    """One optimiser step of ``module.training_step`` as Lightning runs it (zero_grad, step, backward, update),
    the forward under ``torch.autocast`` when ``autocast_dtype`` is set (``--autocast``, Lightning's bf16-mixed)."""
    optimiser = module.configure_optimizers()
    module.train()
    device_type = next(module.parameters()).device.type

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with (torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()):
            loss = module.training_step(batch, 0)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{type(module).__name__}: non-finite loss {float(loss)}")
        loss.backward()
        optimiser.step()

    return step


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of per-round values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_train(size: Size, device: torch.device, stages: tuple[str, ...], rounds: int = 5
                ) -> list[dict[str, Any]]:
    """One optimiser step per stage, the stages interleaved (round 1: every stage once, round 2 …) so that load
    changes on a shared machine hit every stage alike; median per stage, and per round each stage's time per frame
    over the first stage's (pretrain by default) with its spread across rounds. A silhouette stage's row also has
    the size of the meshes its last step rendered beside the batch's own (``bench_train_data.stage_batches``)."""
    from bench_train_data import stage_batches

    batches, frames = stage_batches(stages, size, device), size.batch * size.clip_len
    steps: dict[str, Callable[[], None]] = {}
    watchers = {}
    for name in stages:
        module = build_stage(name, size).to(device)
        module.log = lambda *a, **k: None  # no trainer: logging is not part of the step's cost
        steps[name] = train_step_fn(module, batches[name][0])
        watchers[name] = watch_renderer(module)
        for _ in range(size.warmup):
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in stages}
    peaks: dict[str, int] = {name: 0 for name in stages}
    for _ in range(max(1, rounds)):
        for name in stages:
            t, peak = timed(steps[name], device, 1, 0)
            times[name] += t
            peaks[name] = max(peaks[name], peak)
    base = stages[0]
    rows = []
    for name in stages:
        t = statistics.median(times[name])
        ratio = spread([a / b for a, b in zip(times[name], times[base], strict=True)])
        watcher = watchers[name]
        rows.append({
            "size": size.name, "stage": name, "batch": size.batch, "clip_len": size.clip_len, "rounds": rounds,
            "s_per_step": t, "clips_per_s": size.batch / t, "frames_per_s": frames / t,
            "ms_per_frame": 1e3 * t / frames, "peak_mem_mb": peaks[name] / 2**20, "ratio_to": base,
            "ratio": ratio["median"], "ratio_min": ratio["min"], "ratio_max": ratio["max"],
            **(watcher.size() | batches[name][1] if watcher is not None else {}), **net_init.describe(),
        })
        print(f"  train {size.name:9s} {name:15s} {1e3 * t / frames:8.1f} ms/frame  ×{ratio['median']:.2f} "
              f"{base} [{ratio['min']:.2f}–{ratio['max']:.2f}] over {rounds} rounds", flush=True)
    return rows


def bench_render(size: Size, device: torch.device, backends: tuple[str, ...] = ("soft", "pytorch3d")
                 ) -> list[dict[str, Any]]:
    """Forward + backward of the silhouette renderer for ``render_batch`` hand meshes."""
    from tassn.render import SilhouetteRenderer, load_pytorch3d

    b = size.render_batch
    vertices_px, _, faces, _, _ = posed_hands(b, size.image_size, seed=1)
    verts, faces = vertices_px.to(device), faces.to(device)
    with torch.no_grad():
        target = (SilhouetteRenderer(size.image_size, backend="soft")(vertices_px, faces.cpu()) > 0.5).float()
    target = target.to(device)
    rows = []
    for backend in backends:
        row: dict[str, Any] = {"size": size.name, "backend": backend, "batch": b}
        if backend == "pytorch3d":
            try:
                load_pytorch3d()
            except ImportError as err:
                row["skipped"] = str(err).split(". ")[0]
                rows.append(row)
                print(f"  render {size.name:9s} {backend}: skipped ({row['skipped']})", flush=True)
                continue
        renderer = SilhouetteRenderer(size.image_size, backend=backend)
        v = verts.clone().requires_grad_(True)

        def forward(r: SilhouetteRenderer = renderer, v: torch.Tensor = v) -> torch.Tensor:
            return r(v, faces)

        def forward_backward(forward: Callable[[], torch.Tensor] = forward) -> None:
            ((forward() - target) ** 2).mean().backward()

        with torch.no_grad():
            t_fwd, _ = timed(forward, device, size.steps, size.warmup)
        t_all, peak = timed(forward_backward, device, size.steps, size.warmup)
        row.update({"forward_ms": 1e3 * statistics.median(t_fwd), "forward_backward_ms": 1e3 * statistics.median(t_all),
                    "peak_mem_mb": peak / 2**20})
        rows.append(row)
        print(f"  render {size.name:9s} {backend}: {row['forward_backward_ms']:.1f} ms fwd+bwd", flush=True)
    return rows


def bench_infer(size: Size, device: torch.device, flows: tuple[str, ...]) -> list[dict[str, Any]]:
    """PME inference over a clip (eval, no autograd) per flow backend, in ms per frame."""
    clip = torch.rand(1, size.clip_len, 3, size.image_size, size.image_size, device=device)
    rows = []
    for flow in flows:
        row: dict[str, Any] = {"size": size.name, "flow": flow, "clip_len": size.clip_len}
        if flow == "dis" and device.type != "cpu":
            row["note"] = "DIS runs in OpenCV on the CPU; frames go to the host and back"
        net = build_net(size)
        try:
            net.flow = build_flow(flow)
        except ImportError as err:
            row["skipped"] = str(err)
            rows.append(row)
            continue
        net.freeze("flow")
        net = net.to(device).eval()
        with torch.no_grad():
            times, peak = timed(lambda n=net: n.run(clip), device, size.steps, size.warmup)
        row.update({"ms_per_frame": 1e3 * statistics.median(times) / size.clip_len, "peak_mem_mb": peak / 2**20})
        rows.append(row)
        print(f"  infer  {size.name:9s} flow {flow:9s} {row['ms_per_frame']:8.1f} ms/frame", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 …")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--flows", nargs="+", default=["none", "dis", "flownet2s"],
                        help="flow backends for the inference table (FlowNet2 networks randomly initialised)")
    parser.add_argument("--parts", nargs="*", default=["train", "render", "infer"], choices=["train", "render", "infer"])
    parser.add_argument("--profile", action="store_true", help="also profile stage 3's step at the first size")
    parser.add_argument("--compare", action="store_true",
                        help="also time two renderer methods (row spans against native, or windows) side by side (per size)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per renderer and inference case (default: per size; training: --rounds)")
    parser.add_argument("--autocast", default="none", choices=list(AUTOCAST),
                        help="mixed precision of the training steps' forward (bf16: as Lightning's bf16-mixed; "
                             "fp16 without loss scaling)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds of the stage and before/after timings (median, spread; "
                             "default 5)")
    parser.add_argument("--silhouette-divisor", type=int, default=1,
                        help="stages 2 and 3 render L_m's silhouettes at the crop size / this (silhouette_size)")
    parser.add_argument("--batch-directions", action="store_true",
                        help="stage 3 runs both directions as one PME call (batch_directions)")
    parser.add_argument("--init-from", type=Path, default=None, metavar="CKPT",
                        help="start every PME from this Lightning checkpoint of any stage trained at the same size "
                             "(heatmap, mesh and pose weights; read weights-only) instead of a fresh one, so that "
                             "the renderer sees hand-shaped meshes")
    parser.add_argument("--data-batch", action="store_true", help="time each stage on its first batch of the synthetic "
                        "training data it trains on (data/synthetic, as make builds it; --sizes cpu only), not noise")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--layout", choices=("channels-last", "contiguous"), default=None,
                        help="memory layout of the PME's convolutions (PME channels_last; default: the PME's own, "
                        "channels-last)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train.json")
    parser.add_argument("--check-args", action="store_true",
                        help="check the arguments, print them as JSON and exit (no device needed)")
    args = parser.parse_args(argv)
    if args.check_args:
        try:
            torch.device(args.device)
        except RuntimeError as err:
            parser.error(f"--device {args.device!r}: {err}")
        print(json.dumps(vars(args) | {"check_args": False}, default=str))
        return 0
    if argv is None and MALLOC_ENV[0] not in os.environ:  # see the module doc: honest per-case RSS peaks
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, MALLOC_ENV[0]: MALLOC_ENV[1]})
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        parser.error(f"--device {args.device!r}: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available in this torch ({torch.__version__})")
    if args.threads:
        torch.set_num_threads(args.threads)
    import bench_train_data
    from bench_train_profile import bench_compare, profile_stage3  # (they import this module's helpers)
    from bench_train_report import batches_label, init_label, report, temporal_price

    STAGE_OPTIONS.update(silhouette_divisor=args.silhouette_divisor, batch_directions=args.batch_directions)
    if args.layout is not None:
        NET_OPTIONS["channels_last"] = args.layout == "channels-last"
    global autocast_dtype, net_init
    autocast_dtype = AUTOCAST[args.autocast]
    if args.init_from is not None:
        try:
            init = read_init(args.init_from)
            for key in args.sizes:  # a checkpoint of another size fails here, not after the first size's timings
                build_net(SIZES[key], init=init)
        except (FileNotFoundError, ValueError) as err:  # missing, refused, or not fitting: the file is named
            parser.error(f"--init-from: {err}")
        net_init = init
    bench_train_data.configure(parser, args.data_batch, args.sizes, args.stages, SIZES)  # read before any timing
    print(f"PME weights: {init_label(net_init.describe())}; batches: {batches_label(bench_train_data.describe())}",
          flush=True)
    info = machine()
    info["load_average_1_5_15_min_at_start"] = list(os.getloadavg())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    result: dict[str, Any] = {"device": str(device), "autocast": args.autocast, "layout": args.layout or "default",
                              **net_init.describe(),
                              **bench_train_data.describe(), "machine": info, "train": [], "render": [], "infer": []}
    for key in args.sizes:
        size = SIZES[key]
        if args.steps:
            size = Size(size.name, size.image_size, size.net, size.batch, size.clip_len, args.steps, size.warmup,
                        size.render_batch)
        result.setdefault("sizes", {})[size.name] = {k: v for k, v in vars(size).items() if k != "net"} | {
            "net": dict(size.net)}
        if "train" in args.parts:
            result["train"] += bench_train(size, device, tuple(args.stages), args.rounds)
        if "render" in args.parts:
            result["render"] += bench_render(size, device)
        if "infer" in args.parts:
            result["infer"] += bench_infer(size, device, tuple(args.flows))
        if args.compare:
            result.setdefault("compare", []).extend(bench_compare(size, device, args.rounds))
    result["temporal_price"] = temporal_price(result["train"])
    if args.profile:
        result["profile"] = profile_stage3(SIZES[args.sizes[0]], device)
    info["load_average_1_5_15_min_at_end"] = list(os.getloadavg())
    print(report(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    # the sibling modules import ``bench_train``: let them share this run's module, not a second copy whose options
    # (--silhouette-divisor, --autocast, --init-from …) were never set
    sys.modules.setdefault("bench_train", sys.modules[__name__])
    raise SystemExit(main())
