"""The peer on the same split: MediaPipe Hands, zero-shot, scored by the project's own metrics on the same crops.

A user choosing a 3D hand-pose tool first asks how it compares with what they would run instead; MediaPipe Hands
(21 keypoints and metric world 3D, no training) is that tool. It runs on the original frames of each video, frame by
frame (``static``: ``static_image_mode=True``) and as a tracker (``tracking``), in its own virtual environment
(``benchmarks/mediapipe_runner.py``). Its keypoints are then mapped into each frame's evaluation crop with the
crop transform the data modules use (``data_modules.clips.crop_frame``: the same mirroring, box and size, 64 px at
``--config cpu``) and scored like our models:

- detection rate: frames with a hand found;
- 2D PCK@5px in the crop (:class:`~tassn.metrics.PCK2D`) on found frames, and with every visible keypoint of a
  missed frame counted as a failure;
- 3D on found frames (:class:`~tassn.metrics.PoseMetrics3D`): EPE and AUC under the protocol (root + middle
  MCP→PIP bone), after per-frame scale + translation (``st_``) and after Procrustes alignment (``pa_``), and the
  acceleration error over whole videos (:class:`~tassn.metrics.TemporalMetrics3D`; a missed frame breaks the chain);
- ms per frame: the wall time of MediaPipe's ``process`` call alone, on this machine's CPU.

Default: the synthetic target test videos and the synthetic source validation videos. Real data (STB, MHP)::

    python benchmarks/peer_mediapipe.py --data experiments/data/stb.yaml --root /path/to/STB

Writes ``benchmarks/results/peer_mediapipe.json`` and ``docs/images/peer_mediapipe.png`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PYTHON = ".venv-mediapipe/bin/python"
RUNNER = Path(__file__).with_name("mediapipe_runner.py")
MODES = ("static", "tracking")
PCK2D_PX = 5.0
#: the pixel thresholds of the 2D curve in the PNG
CURVE_PX = tuple(float(t) for t in np.linspace(0, 20, 41))


@dataclass
class Domain:
    """One split of one dataset: a name for the table, its data config and split."""

    name: str
    data: str
    split: str


DEFAULT_DOMAINS = (
    Domain("synthetic target, test", "experiments/data/synthetic.yaml", "test"),
    Domain("synthetic source, val", "experiments/data/synthetic_source.yaml", "val"),
)


def load_split(domain: Domain, config: str, root: str | None) -> tuple[list[Any], Any]:
    """The videos of ``domain`` and the crop configuration, from the data module ``tassn test`` would build with
    these config files (so crops, mirroring and joint order are the evaluation's own). Nothing is generated."""
    from tassn.cli import TassnCLI

    for path in (domain.data, f"experiments/{config}.yaml"):
        if not Path(path).is_file():
            raise SystemExit(f"peer_mediapipe: config {path} not found; expected a YAML file under experiments/")
    args = ["--config", "experiments/stage3.yaml", "--config", domain.data, "--config", f"experiments/{config}.yaml",
            "--trainer.logger=false"]
    if root:
        args.append(f"--data.init_args.root={root}")
    dm = TassnCLI(args=args, run=False).datamodule
    videos = [v for v in dm.load_videos(domain.split) if len(v)]
    if not videos:
        raise SystemExit(f"peer_mediapipe: no {domain.split} videos in {dm.data_root} ({domain.data}); "
                         "pass --root with the dataset's folder")
    return videos, dm.crop


def run_mediapipe(python: str, videos: Sequence[Any], modes: Sequence[str]) -> dict[str, np.ndarray]:
    """MediaPipe's raw output for every frame of ``videos`` (see ``mediapipe_runner.py``), from its own env."""
    if not Path(python).is_file():
        raise SystemExit(f"peer_mediapipe: MediaPipe's Python {python} not found; `make peer-mediapipe` creates it "
                         "(or pass --python)")
    spec = {"modes": list(modes), "videos": [{"name": v.name, "frames": [str(f.image_path) for f in v.frames]}
                                             for v in videos]}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "frames.json", Path(tmp) / "out.npz"
        spec_path.write_text(json.dumps(spec))
        subprocess.run([python, str(RUNNER), str(spec_path), str(out_path)], check=True)
        with np.load(out_path) as data:
            return {k: data[k] for k in data.files}


def crop_labels(videos: Sequence[Any], crop: Any) -> dict[str, Any]:
    """Per frame (videos concatenated): the crop transform, crop-pixel 2D labels, visibility, 3D labels (mirrored
    like the evaluation's), and the video name and frame index for the temporal metric."""
    from data_modules.clips import crop_frame, read_image

    out: dict[str, list[Any]] = {k: [] for k in ("A", "kp2d", "visible", "kp3d", "mirror", "video", "frame")}
    for video in videos:
        for index, frame in enumerate(video.frames):
            cropped = crop_frame(frame, video.mirror, crop, image=read_image(frame.image_path), with_3d=True)
            out["A"].append(cropped.A)
            out["kp2d"].append(cropped.kp2d)
            out["visible"].append(cropped.visible > 0)
            out["kp3d"].append(cropped.kp3d if cropped.kp3d is not None else np.full((21, 3), np.nan))
            out["mirror"].append(video.mirror)
            out["video"].append(video.name)
            out["frame"].append(index)
    return {k: (v if k == "video" else np.stack(v)) for k, v in out.items()}


def score(labels: dict[str, Any], raw: dict[str, np.ndarray], mode: str) -> dict[str, Any]:
    """The figures of one mode with the project's metrics (see the module doc)."""
    import torch
    from data_modules.clips import MIRROR_3D

    from tassn.hand.normalize import normalize_3d
    from tassn.metrics import ALIGNMENT_PREFIXES, PCK2D, SCALAR_KEYS, PoseMetrics3D, TemporalMetrics3D

    found = raw[f"{mode}/found"].astype(bool)
    n = len(found)
    if n != len(labels["A"]):
        raise ValueError(f"MediaPipe returned {n} frames for {len(labels['A'])}")
    A = labels["A"][found]
    image = raw[f"{mode}/image"][found]
    pred2d = np.einsum("nij,nkj->nki", A[:, :2, :2], image) + A[:, None, :2, 2]  # original → crop px, mirror incl.
    visible = torch.from_numpy(labels["visible"])
    target2d = torch.from_numpy(labels["kp2d"][found])
    curve2d = []
    for t in (*CURVE_PX, PCK2D_PX):
        metric = PCK2D(threshold=t) if t > 0 else PCK2D(threshold=1e-9)
        metric.update(torch.from_numpy(pred2d), target2d, visible[found])
        curve2d.append((int(metric.correct), int(metric.count), float(metric.compute()), metric))
    correct, count_found, pck_found, pck_metric = curve2d.pop()
    missed_keypoints = int(visible[~found].sum())
    total = count_found + missed_keypoints
    result: dict[str, Any] = {
        "mode": mode, "frames": n, "found": int(found.sum()), "detection_rate": float(found.mean()),
        "pck2d_5px_found": pck_found, "pck2d_5px_with_misses": correct / max(total, 1),
        "epe2d_px_found": float(pck_metric.epe_px()),
        "ms_per_frame": float(raw[f"{mode}/seconds"].mean() * 1000.0),
        "curve2d_with_misses": {"thresholds_px": list(CURVE_PX), "pck": [c / max(total, 1) for c, *_ in curve2d]},
    }
    kp3d = labels["kp3d"][found]
    if found.any() and np.isfinite(kp3d).all():
        world = raw[f"{mode}/world"][found]
        world = np.where(labels["mirror"][found, None, None], world @ MIRROR_3D, world)  # as the labels are
        pred = normalize_3d(torch.from_numpy(world))[0]  # our networks' output space: root-relative, own bone
        target = torch.from_numpy(kp3d)
        for alignment, prefix in ALIGNMENT_PREFIXES.items():
            metric = PoseMetrics3D(alignment=alignment)
            metric.update(pred, target, visible[found])
            values = metric.compute()
            result.update({prefix + k: float(values[k]) for k in SCALAR_KEYS})
            result[f"{prefix}curve3d"] = {"thresholds_mm": values["thresholds_mm"].tolist(),
                                          "pck": values["pck"].tolist()}
        temporal = TemporalMetrics3D()
        temporal.update(pred, target, [v for v, f in zip(labels["video"], found, strict=True) if f],
                        torch.from_numpy(labels["frame"][found]), visible[found])
        values = temporal.compute()
        result["accel_mm"] = float(values["accel_mm"]) if int(values["count"]) else None
    return result


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The printed table (one row per domain × mode)."""
    def cell(row: dict[str, Any], key: str, digits: int) -> str:
        value = row.get(key)
        return "–" if value is None else f"{value:.{digits}f}"

    head = (f"{'data':<26s} {'mode':<9s} {'found':>6s} {'PCK@5 found':>11s} {'PCK@5 all':>9s} {'EPE':>6s} "
            f"{'ST-EPE':>6s} {'PA-EPE':>6s} {'AUC20-50':>8s} {'PA-AUC20-50':>11s} {'ms/frame':>8s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['domain']:<26s} {r['mode']:<9s} {r['detection_rate']:>6.1%} {cell(r, 'pck2d_5px_found', 3):>11s} "
            f"{cell(r, 'pck2d_5px_with_misses', 3):>9s} {cell(r, 'epe_mm', 1):>6s} {cell(r, 'st_epe_mm', 1):>6s} "
            f"{cell(r, 'pa_epe_mm', 1):>6s} {cell(r, 'auc_20_50', 3):>8s} {cell(r, 'pa_auc_20_50', 3):>11s} "
            f"{cell(r, 'ms_per_frame', 1):>8s}")
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """2D PCK (misses count as failures) and 3D PCK after Procrustes alignment, one line per domain × mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax2, ax3) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        label = f"{r['domain']}, {r['mode']}"
        ax2.plot(r["curve2d_with_misses"]["thresholds_px"], r["curve2d_with_misses"]["pck"], label=label)
        if "pa_curve3d" in r:
            ax3.plot(r["pa_curve3d"]["thresholds_mm"], r["pa_curve3d"]["pck"], label=label)
    ax2.set(xlabel="threshold (px of the evaluation crop)", ylabel="2D PCK (misses count as failures)",
            title="MediaPipe Hands: 2D in the evaluation crop", ylim=(0, 1))
    ax3.set(xlabel="threshold (mm)", ylabel="3D PCK after Procrustes (found frames)",
            title="MediaPipe Hands: 3D, Procrustes-aligned", ylim=(0, 1))
    for ax in (ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a data config (e.g. experiments/data/stb.yaml); default: the synthetic "
                        "target test and source validation videos")
    parser.add_argument("--split", default="test", help="the split of --data (default test)")
    parser.add_argument("--root", help="the dataset's folder (--data.init_args.root)")
    parser.add_argument("--config", default="cpu", help="sizes overlay experiments/<config>.yaml (the crop size)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--max-videos", type=int, help="only the first N videos of each split (a quick check)")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="the Python of MediaPipe's own environment")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/peer_mediapipe.json"))
    parser.add_argument("--png", type=Path, default=Path("docs/images/peer_mediapipe.png"))
    args = parser.parse_args(argv)

    domains = [Domain(Path(args.data).stem, args.data, args.split)] if args.data else list(DEFAULT_DOMAINS)
    rows, version = [], None
    for domain in domains:
        videos, crop = load_split(domain, args.config, args.root)
        videos = videos[: args.max_videos] if args.max_videos else videos
        labels = crop_labels(videos, crop)
        raw = run_mediapipe(args.python, videos, args.modes)
        version = str(raw.get("version", version))
        for mode in args.modes:
            rows.append({"domain": domain.name, "data": domain.data, "split": domain.split, "videos": len(videos),
                         "crop_size": crop.size, **score(labels, raw, mode)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"peer": "MediaPipe Hands", "mediapipe_version": version, "config": args.config,
               "command": "python benchmarks/peer_mediapipe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "rows": rows}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    plot(rows, args.png)
    print(f"MediaPipe Hands {version} on the evaluation crops ({args.config}: {rows[0]['crop_size']} px); "
          "3D on found frames")
    print(table(rows))
    print(f"→ {args.out}, {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
