"""Whole-video prediction on the synthetic target test videos, scored against their labels only afterwards.

Shared by ``bench_confidence.py`` and ``bench_adapt.py``. Each video's frames are linked into a folder that holds
nothing else, and that folder is what ``tassn predict --video`` (and ``tassn adapt``) receive, run through the
commands' own parsers with their defaults (tracking crop from the full frame, forward and backward pass): the
labels (``annotations.npz``, the masks) are not beside the frames, and :func:`load_labels` reads them only after a
video's predictions are made. The test folder is found as ``bench_predict.py`` finds it, and 2D keypoints are
scored by its :func:`~bench_predict.score` (frame pixels); 3D by :mod:`tassn.metrics`:

- EPE and the per-joint errors: the protocol's alignment (the ground truth's root and middle MCP→PIP bone length
  put the normalised prediction into mm, frame by frame; :func:`tassn.metrics.align_to_ground_truth`);
- PA-EPE / ST-EPE: per-frame Procrustes / scale + translation alignment;
- ACCEL, jitter and the ground truth's jitter (mm/frame²) over the whole video (:class:`~tassn.metrics.TemporalMetrics3D`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import find_test_folder, score  # noqa: E402
from tassn.metrics import TEMPORAL_KEYS, PoseMetrics3D, TemporalMetrics3D  # noqa: E402
from tassn.predict.video_io import IMAGE_SUFFIXES  # noqa: E402
from tassn.predict.writers import PREDICTIONS_NPZ, PredictionArrays  # noqa: E402

#: How the per-joint 3D errors (and EPE) are aligned, as written next to the numbers.
ALIGNMENT = ("root + reference bone (EPE's protocol: the ground truth's wrist position and middle MCP→PIP length "
             "put the root-relative, scale-normalised prediction into mm, frame by frame)")
#: The scores of one video (and of all of them together), in the order tables show them.
SCORE_KEYS: tuple[str, ...] = ("pck2d", "error_px", "epe_mm", "pa_epe_mm", "st_epe_mm", *TEMPORAL_KEYS)


@dataclass(frozen=True)
class VideoLabels:
    """One video's labels: 2D keypoints ``F×21×2`` (frame px) and 3D keypoints ``F×21×3`` (mm, camera frame)."""

    kp2d: np.ndarray
    kp3d: np.ndarray


def target_videos(data: Path, split: str = "test", limit: int | None = None) -> tuple[Path, list[str]]:
    """The synthetic ``target-<split>-*`` folder under ``data`` and its video names (from ``videos/``, not from the
    labels), the first ``limit`` of them."""
    folder = find_test_folder(Path(data), split)
    videos = folder / "videos"
    names = sorted(p.name for p in videos.iterdir() if p.is_dir()) if videos.is_dir() else []
    if not names:
        raise FileNotFoundError(f"{videos}: expected one folder of frames per video; found none")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be at least 1, got {limit}")
        names = names[:limit]
    return folder, names


def stage_frames(frames: Path, dest: Path) -> Path:
    """Link (or, where links are not allowed, copy) the image files of ``frames`` into the new folder ``dest``, which
    then holds the frames and nothing else: the input a prediction gets."""
    images = sorted(p for p in Path(frames).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"{frames}: expected frame images ({', '.join(IMAGE_SUFFIXES)}); found none")
    dest.mkdir(parents=True)
    for image in images:
        try:
            os.symlink(image.resolve(), dest / image.name)
        except OSError:
            shutil.copy2(image, dest / image.name)
    return dest


def predict(video: Path, ckpt: Path, out: Path, options: Sequence[str] = (), device: str = "auto") -> PredictionArrays:
    """``tassn predict --video video --ckpt ckpt --out out [options]``, run by the command's own parser and code
    (no overlay, no mesh files); returns the saved predictions."""
    from tassn.predict.__main__ import add_predict_video_arguments, run_from_args

    parser = add_predict_video_arguments(argparse.ArgumentParser(prog="tassn predict"))
    args = parser.parse_args(["--video", str(video), "--ckpt", str(ckpt), "--out", str(out), "--no-overlay",
                              "--mesh-format", "none", "--quiet", "--device", device, *options])
    return PredictionArrays.load_npz(run_from_args(args) / PREDICTIONS_NPZ)


def load_labels(folder: Path, name: str) -> VideoLabels:
    """The labels of video ``name`` from ``folder/annotations.npz``."""
    path = Path(folder) / "annotations.npz"
    try:
        with np.load(path) as ann:
            names = [str(n) for n in ann["names"]]
            if name not in names:
                raise ValueError(f"{path}: no video {name!r} in its names ({len(names)} videos)")
            i = names.index(name)
            return VideoLabels(kp2d=ann["kp2d"][i].astype(np.float64), kp3d=ann["kp3d"][i].astype(np.float64))
    except (OSError, KeyError) as err:
        raise ValueError(f"{path}: expected a synthetic annotations file with names, kp2d and kp3d: {err}") from err


def joint_errors_mm(kp3d: np.ndarray, truth_mm: np.ndarray) -> np.ndarray:
    """Per-joint 3D errors ``F×21`` (mm) of normalised predictions ``F×21×3`` under EPE's alignment (:data:`ALIGNMENT`)."""
    return PoseMetrics3D().errors_mm(torch.as_tensor(kp3d), torch.as_tensor(truth_mm)).numpy()


class VideoScorer:
    """Scores videos one at a time (:meth:`add` returns the video's scores) and all of them together
    (:meth:`total`: 2D and per-joint means over every frame, ACCEL and jitter over every frame with both
    neighbours)."""

    def __init__(self, pck_px: float = 5.0) -> None:
        self.pck_px = pck_px
        self.kp2d: list[tuple[np.ndarray, np.ndarray]] = []
        self.metrics = self._metrics()
        self.frames = 0

    @staticmethod
    def _metrics() -> dict[str, Any]:
        return {"epe_mm": PoseMetrics3D(), "pa_epe_mm": PoseMetrics3D(alignment="procrustes"),
                "st_epe_mm": PoseMetrics3D(alignment="scale_translation"), "temporal": TemporalMetrics3D()}

    def _scores(self, metrics: dict[str, Any], pred2d: np.ndarray, truth2d: np.ndarray) -> dict[str, float]:
        two_d = score(pred2d, truth2d, self.pck_px)
        out = {"pck2d": two_d["pck"], "error_px": two_d["error_px"]}
        out |= {k: float(metrics[k].compute()["epe_mm"]) for k in ("epe_mm", "pa_epe_mm", "st_epe_mm")}
        temporal = metrics["temporal"].compute()
        out |= {k: float(temporal[k]) if int(temporal["count"]) > 0 else None for k in TEMPORAL_KEYS}
        return out

    def add(self, name: str, arrays: PredictionArrays, labels: VideoLabels) -> dict[str, Any]:
        """Score one video's predictions against its labels (the same number of frames)."""
        frames = len(arrays.kp3d)
        if labels.kp3d.shape != arrays.kp3d.shape or labels.kp2d.shape != arrays.kp2d.shape:
            raise ValueError(f"video {name}: {frames} predicted frames {arrays.kp3d.shape[1:]} but labels of "
                             f"{labels.kp3d.shape} (3D) and {labels.kp2d.shape} (2D)")
        pred = torch.as_tensor(arrays.kp3d, dtype=torch.float64)
        truth = torch.as_tensor(labels.kp3d, dtype=torch.float64)
        index = torch.as_tensor(arrays.frame_index, dtype=torch.long)
        video = self._metrics()
        for metrics in (video, self.metrics):
            for key in ("epe_mm", "pa_epe_mm", "st_epe_mm"):
                metrics[key].update(pred, truth)
            metrics["temporal"].update(pred, truth, [name] * frames, index)
        self.kp2d.append((arrays.kp2d, labels.kp2d))
        self.frames += frames
        return {"video": name, "frames": frames, **self._scores(video, arrays.kp2d, labels.kp2d)}

    def total(self) -> dict[str, Any]:
        """Scores over every video added so far."""
        if not self.kp2d:
            raise ValueError("no video was scored")
        pred2d = np.concatenate([p for p, _ in self.kp2d])
        truth2d = np.concatenate([t for _, t in self.kp2d])
        return {"videos": len(self.kp2d), "frames": self.frames, **self._scores(self.metrics, pred2d, truth2d)}


def run_benchmark(name: str, make_target: str, args: argparse.Namespace,
                  run: Callable[[argparse.Namespace, Path], dict[str, Any]]) -> dict[str, Any] | None:
    """``run(args, work)`` in ``args.work`` or a temporary folder, after checking ``args.ckpt``; bad input is one
    line on stderr naming what was wrong (None returned: the caller exits 2), never a traceback."""
    try:
        if not args.ckpt.is_file():
            raise FileNotFoundError(f"checkpoint {args.ckpt} not found; pass --ckpt ({make_target} CKPT=…)")
        if args.work is not None:
            return run(args, args.work)
        with tempfile.TemporaryDirectory(prefix=f"{name.replace('_', '-')}-") as tmp:
            return run(args, Path(tmp))
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return None


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every video benchmark takes: which checkpoint, which synthetic videos, how many."""
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint of a trained stage (stage3, stage2, pretrain)")
    parser.add_argument("--data", default=Path("data/synthetic"), type=Path,
                        help="a synthetic target-test-* folder, or the data root holding one (default data/synthetic)")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="target-<split>-* (default test)")
    parser.add_argument("--limit", type=int, help="only the first N videos")
