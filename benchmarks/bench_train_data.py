"""The batches ``bench_train.py`` times each stage on: noise frames with posed hands (default) or, with
``--data-batch``, the synthetic training data the stage trains on.

By default every stage is timed on one batch of noise frames carrying randomly posed procedural hands' 2D labels and
silhouettes (:func:`bench_train.hand_batch`). The stages place the mesh in the crop with a camera fitted from the
*predicted* pose to the batch's 2D labels, and on noise frames a trained network's pose does not match those labels,
so the renderer sees meshes of another size than a real step's (``bench_train_meshes.py``). ``--data-batch`` takes
each stage's batch from its own training data instead: the data module ``make train-stage3`` builds for the stage
(the stage's file, its data file, ``experiments/cpu.yaml`` and ``experiments/cpu/<stage>.yaml``, through
:class:`tassn.cli.TassnCLI` as ``learning_check.py`` does), set to the benchmark's batch, clip length and crop side,
and its first training batch (the loader's seeded shuffle). As in ``make``, the pre-training reads the synthetic
source domain (3D labels, ``experiments/data/synthetic_source.yaml``) and the other stages the target domain (2D
labels and GrabCut silhouettes, ``experiments/data/synthetic.yaml``). The data folder is read, never generated, and
only the CPU size has data generated for it.

The batch's own mesh size, beside which a silhouette stage's rendered meshes are shown: the true meshes projected with
each crop's camera (mean face area, crop px²) and the area fraction of the silhouettes L_m is trained against
(GrabCut's on the target domain; the true silhouettes' fraction is kept too).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench_train import Size, hand_batch, posed_hands
from bench_train_meshes import reference_size

REPO = Path(__file__).resolve().parents[1]
#: where ``make data`` (target) and ``make pretrain`` (source) generate the synthetic videos
DATA_ROOT = REPO / "data" / "synthetic"
#: the benchmark sizes that have generated training data, with the sizes overlay it was made for
DATA_CONFIGS: dict[str, str] = {"cpu": "cpu"}
#: the experiment file of a benchmarked stage that has none of its own
STAGE_FILES: dict[str, str] = {"stage3 w/o L_c": "stage3"}

Batch = dict[str, Any]


@contextlib.contextmanager
def quiet_cli() -> Iterator[None]:
    """Building a stage through the CLI from within the benchmark: without the benchmark's own arguments in
    ``sys.argv`` (LightningCLI warns when it sees both) and without Lightning's INFO lines (accelerators, seed)."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [log.level for log in loggers]
    argv, sys.argv = sys.argv, sys.argv[:1]
    for log in loggers:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        sys.argv = argv
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def to_device(batch: Mapping[str, Any], device: torch.device) -> Batch:
    """The batch's tensors on ``device`` (video names and other values as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-space points ``…×N×3`` (mm) → crop pixels ``…×N×3``: x, y through the crop cameras ``K …×3×3`` (one
    per leading index), z kept."""
    uvw = points @ K.transpose(-1, -2)
    return torch.cat([uvw[..., :2] / uvw[..., 2:].clamp_min(1e-6), points[..., 2:]], dim=-1)


@dataclass
class DataBatches:
    """``--data-batch``: each stage's first training batch from the synthetic data in ``root``, built as ``make``
    builds the stage's data module with the sizes overlay ``config``; ``overrides``: further CLI arguments (after
    every config file). Batches are read once per (stage file, size) and kept."""

    root: Path = DATA_ROOT
    config: str = "cpu"
    overrides: tuple[str, ...] = ()
    cache: dict[tuple[str, str], tuple[Batch, dict[str, float]]] = field(default_factory=dict, repr=False)

    def describe(self) -> dict[str, Any]:
        return {"batches": "data", "data_root": str(self.root), "data_config": self.config}

    def data_module(self, stage: str, size: Size) -> Any:
        """The stage's data module as ``tassn fit`` builds it (nothing is generated or run), at ``size``'s batch,
        clip length and crop side. Raises FileNotFoundError naming the missing folder."""
        from learning_check import build

        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data folder {self.root} does not exist: --data-batch reads the synthetic videos that `make data` "
                f"(target domain) and `make pretrain` (source domain) generate there at CONFIG={self.config}")
        args = [f"--data.init_args.root={self.root.resolve()}", "--data.init_args.generate=false",
                f"--data.init_args.batch_size={size.batch}", f"--data.init_args.clip_len={size.clip_len}",
                f"--data.init_args.crop_size={size.image_size}", "--seed_everything=0", *self.overrides]
        with contextlib.chdir(REPO), quiet_cli():  # the experiment files' paths are relative to the repository
            return build(STAGE_FILES.get(stage, stage), self.config, None, args).datamodule

    def batch(self, stage: str, size: Size, device: torch.device) -> tuple[Batch, dict[str, float]]:
        """The stage's first training batch on ``device`` and its reference mesh size (:func:`batch_reference`)."""
        key = (STAGE_FILES.get(stage, stage), size.name)
        if key not in self.cache:
            dm = self.data_module(stage, size)
            dm.setup("fit")
            batch = next(iter(dm.train_dataloader()))
            shape = tuple(batch["frames"].shape[:2]) + tuple(batch["frames"].shape[-2:])
            expected = (size.batch, size.clip_len, size.image_size, size.image_size)
            if shape != expected:
                raise ValueError(f"--data-batch: the {stage} training data in {self.root} served a first batch of "
                                 f"B×T×H×W {shape}, not the benchmark's {expected} (too few clips?)")
            self.cache[key] = (batch, batch_reference(dm, batch))
        batch, reference = self.cache[key]
        return to_device(batch, device), reference


def batch_reference(dm: Any, batch: Mapping[str, Any]) -> dict[str, float]:
    """Mean face area (crop px²) of the batch's true meshes and the area fraction of its silhouettes: the same clips
    served with 3D labels by the module's own training dataset, their meshes projected with each crop's camera.
    Empty for a batch without silhouettes (the pre-training's: no stage renders it)."""
    if "silhouettes" not in batch:
        return {}
    served_3d = dm.serve_3d_in_train
    dm.serve_3d_in_train = True
    try:
        dataset = dm.make_dataset("train")
    finally:
        dm.serve_3d_in_train = served_3d
    where = {(dataset.videos[v].name, dataset.videos[v].frames[s].index): j for j, (v, s) in enumerate(dataset.index)}
    clips = [dataset.load_clip(where[(name, int(first))])
             for name, first in zip(batch["video"], batch["frame_index"][:, 0], strict=True)]
    mesh, K = (torch.stack([c[k] for c in clips]).flatten(0, 1) for k in ("mesh3d", "K"))
    vertices_px = project(mesh, K)
    reference = reference_size(batch, vertices_px, dm.template.faces)
    if all("true_silhouettes" in c for c in clips):
        reference["gt_true_silhouette_fraction"] = float(torch.stack([c["true_silhouettes"] for c in clips]).mean())
    return reference


def ground_truth_size(size: Size, batch: Mapping[str, torch.Tensor], seed: int = 0) -> dict[str, float]:
    """Mean face area and silhouette fraction of the posed hands in :func:`bench_train.hand_batch`'s ``batch``: what
    hand-sized rendered meshes look like at this size."""
    vertices_px, _, faces, _, _ = posed_hands(size.batch * size.clip_len, size.image_size, seed)
    return reference_size(batch, vertices_px, faces)


#: ``--data-batch``: where the timed batches come from (None: :func:`bench_train.hand_batch`'s noise frames)
data_batches: DataBatches | None = None


def describe() -> dict[str, Any]:
    """What the JSON records about the batches."""
    return {"batches": "noise"} if data_batches is None else data_batches.describe()


def stage_batches(stages: tuple[str, ...], size: Size, device: torch.device
                  ) -> dict[str, tuple[Batch, dict[str, float]]]:
    """Each stage's batch and the batch's reference mesh size: one :func:`bench_train.hand_batch` shared by every
    stage by default, the stage's own training batch with ``--data-batch``."""
    if data_batches is None:
        batch = hand_batch(size, device)
        reference = ground_truth_size(size, batch)
        return {name: (batch, reference) for name in stages}
    return {name: data_batches.batch(name, size, device) for name in stages}


def check_data_batches(sizes: list[str], stages: list[str], sized: Mapping[str, Size], root: Path | None = None
                       ) -> DataBatches:
    """``--data-batch``'s batches for ``sizes`` (keys of ``sized``) and ``stages`` from ``root`` (default
    :data:`DATA_ROOT`), read before any timing.

    Raises ValueError for a size without generated data and FileNotFoundError for a missing folder."""
    root = DATA_ROOT if root is None else root
    other = [s for s in sizes if s not in DATA_CONFIGS]
    if other:
        raise ValueError(f"no generated training data for --sizes {' '.join(other)}: only the "
                         f"{', '.join(DATA_CONFIGS)} size's data is generated here ({root}, make data at CONFIG=cpu)")
    batches = DataBatches(root=root, config=DATA_CONFIGS[sizes[0]])
    for key in sizes:
        for stage in stages:
            batches.batch(stage, sized[key], torch.device("cpu"))
    return batches


def configure(parser: argparse.ArgumentParser, wanted: bool, sizes: list[str], stages: list[str],
              sized: Mapping[str, Size]) -> None:
    """Set :data:`data_batches` for ``--data-batch`` (``wanted``; else the noise batches), reading every batch now:
    a size without data or a missing folder ends the command with a message naming it, before any timing."""
    global data_batches
    try:
        data_batches = check_data_batches(sizes, stages, sized) if wanted else None
    except (FileNotFoundError, ValueError) as err:
        parser.error(f"--data-batch: {err}")
