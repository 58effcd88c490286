"""The meshes the benchmarked stages render: the weights their PME starts from and how large the meshes are.

The soft rasterizer's cost grows with the pixels each face covers, so a stage's step is only as realistic as the
meshes it renders. A fresh PME's mesh decoder outputs a tangle of large, overlapping faces rather than a hand;
``--init-from CKPT`` starts every benchmarked PME from a trained checkpoint instead (read weights-only, through the
stages' own loader), and every silhouette stage's step records the mean face area (crop px²) and the silhouette
area fraction of its rendered meshes beside the batch's ground truth, so that a reader sees what was rendered.

Read the figures, not the option's name: the mesh lands in the crop through the weak-perspective camera fitted from
the predicted pose to the batch's 2D labels, and on the benchmark's noise frames a trained network's poses hardly
match those labels (randomly rotated hands), so the fitted scale is small and its hand-shaped meshes render smaller
than the batch's hands (measured at 64² from the CPU recipe's stage-2 checkpoint: faces 0.3 px² and silhouettes
4–6 % of the crop, against 1.1 px² and 24 %; a fresh PME: 14 px² and 25 %). The same holds for any fixed pose,
which is why there is no hand-shaped default without a checkpoint: a mesh decoder set to output the template (its
graph convolutions have one bias per channel, not per vertex, so only a fit gets there) and a pose regressor set to
the template's joints render small too (tried: faces 0.2 px², silhouettes 6 %). ``--data-batch``
(``bench_train_data.py``) takes the batches from the synthetic training data instead, whose frames the pose fits:
from the same checkpoint, stage 3's meshes rendered faces of 1.8 px² and silhouettes 28 % of the crop, against the
batch's true meshes' 1.4 px² and its GrabCut silhouettes' 30 % (a fresh PME: 30 px² and 35 %).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tassn.stages.checkpoints import (
    CheckpointMismatchError,
    checkpoint_stage,
    load_net_state,
    read_checkpoint,
)

#: the sub-networks ``--init-from`` loads: the flow backend is the benchmark's choice (``none`` in training) and a
#: checkpoint may hold another one's weights or none, so its keys are left out on both sides
INIT_MODULES: tuple[str, ...] = ("heatmap", "mesh", "pose")


# ------------------------------------------------------------------------------------------------ initialisation
@dataclass(frozen=True)
class NetInit:
    """The weights every benchmarked PME starts from: fresh (seeded) when ``path`` is None, else the checkpoint's
    (read once, loaded into each PME the benchmark builds)."""

    path: Path | None = None
    stage: str | None = None
    checkpoint: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def describe(self) -> dict[str, Any]:
        """What the JSON records, so that results from fresh and trained weights are never mixed up."""
        if self.path is None:
            return {"init": "fresh", "init_from": None, "init_stage": None, "init_modules": []}
        return {"init": "checkpoint", "init_from": str(self.path), "init_stage": self.stage,
                "init_modules": list(INIT_MODULES)}


def read_init(path: str | Path) -> NetInit:
    """Read a stage checkpoint once, weights-only (a file holding code is refused, not run): any stage's will do,
    the stage that wrote it is recorded."""
    checkpoint = read_checkpoint(path)
    return NetInit(Path(path), checkpoint_stage(checkpoint, path), checkpoint)


def apply_init(net: nn.Module, init: NetInit, built_as: str = "") -> nn.Module:
    """Load ``init``'s heatmap, mesh and pose weights into ``net`` (nothing for a fresh start).

    Raises :class:`~tassn.stages.checkpoints.CheckpointMismatchError` naming the file and every missing,
    unexpected or reshaped key when the checkpoint was trained at another size (``built_as`` says which)."""
    if init.path is None:
        return net
    try:
        load_net_state(net, init.checkpoint, init.path, allowed_stages=(), modules=INIT_MODULES)
    except CheckpointMismatchError as err:
        hint = f"--init-from needs a checkpoint of the PME this benchmark builds{built_as}"
        raise CheckpointMismatchError(f"{err}\n  ({hint})") from None
    return net


# ------------------------------------------------------------------------------------------------ mesh size
def face_areas(vertices_px: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area (px²) of every face of projected meshes ``…×V×(2|3)`` (x, y used), faces ``F×3`` → ``…×F``; front and
    back faces alike, since the rasterizer tests both."""
    xy = vertices_px[..., :2]
    a, b, c = (xy[..., faces[:, i], :] for i in range(3))
    ab, ac = b - a, c - a
    return 0.5 * (ab[..., 0] * ac[..., 1] - ab[..., 1] * ac[..., 0]).abs()


def mesh_size(vertices_px: torch.Tensor, faces: torch.Tensor, silhouettes: torch.Tensor,
              factor: int = 1) -> dict[str, float]:
    """Mean face area in crop px² and mean silhouette area fraction of rendered meshes; ``factor``: crop pixels
    per silhouette pixel along a side (the vertices are in silhouette pixels, ``silhouette_divisor``)."""
    return {"face_area_px": float(face_areas(vertices_px.detach(), faces).mean()) * factor**2,
            "silhouette_fraction": float(silhouettes.detach().float().mean())}


def reference_size(batch: Mapping[str, torch.Tensor], vertices_px: torch.Tensor,
                   faces: torch.Tensor) -> dict[str, float]:
    """The same figures for the batch's ground truth: its posed hands (crop pixels) and their silhouettes."""
    size = mesh_size(vertices_px, faces, batch["silhouettes"])
    return {"gt_face_area_px": size["face_area_px"], "gt_silhouette_fraction": size["silhouette_fraction"]}


class RenderedMeshes:
    """Keeps the inputs and output of a renderer's latest call (a forward hook), to measure them after the timed
    steps: the hook only stores references, so it adds nothing measurable to a step."""

    def __init__(self, renderer: nn.Module, factor: int = 1) -> None:
        self.factor = factor
        self.last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.handle = renderer.register_forward_hook(self._keep, with_kwargs=True)

    def _keep(self, _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        vertices = args[0] if args else kwargs["vertices_px"]
        faces = args[1] if len(args) > 1 else kwargs["faces"]
        self.last = (vertices.detach(), faces, output.detach())

    def size(self) -> dict[str, float]:
        """:func:`mesh_size` of the latest call (empty before any)."""
        return {} if self.last is None else mesh_size(*self.last, factor=self.factor)

    def remove(self) -> None:
        self.handle.remove()


def watch_renderer(module: nn.Module) -> RenderedMeshes | None:
    """A :class:`RenderedMeshes` on a silhouette stage's renderer (None for a stage without one)."""
    renderer = getattr(module, "renderer", None)
    if renderer is None:
        return None
    return RenderedMeshes(renderer, getattr(module, "silhouette_factor", 1))
