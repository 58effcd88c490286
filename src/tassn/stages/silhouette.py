"""What the stages with a silhouette term (L_m, paper Eq. 2) share: the renderer and the rendered silhouettes.

The mesh is placed in the crop by the weak-perspective camera that best maps the predicted pose's joints onto the
2D labels, so only the 2D labels decide where the hand is; its rendered silhouette is compared with GrabCut's.
``silhouette_size`` renders below the crop's resolution (the renderer's cost grows with the pixels) and compares
with the GrabCut silhouette area-downsampled to the same size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from tassn.losses import LossWeights
from tassn.nets.pme import PME, PMEOutput
from tassn.render import SilhouetteRenderer, fit_weak_perspective
from tassn.stages.base import StageModule


def to_silhouette_pixels(vertices_px: torch.Tensor, factor: int) -> torch.Tensor:
    """Crop-pixel vertices ``…×V×3`` in the pixels of an image ``factor`` times smaller showing the same region:
    silhouette pixel i spans crop pixels ``[i·f − ½, (i+1)·f − ½]``, so ``x ↦ (x + ½)/f − ½`` (z unchanged)."""
    if factor == 1:
        return vertices_px
    return torch.cat([(vertices_px[..., :2] + 0.5) / factor - 0.5, vertices_px[..., 2:]], dim=-1)


class SilhouetteStage(StageModule):
    """A stage with a silhouette term: owns the renderer and computes L_m of a clip's predictions.

    Args:
        lambda_s, lambda_h: weights of L_m and L_h.
        renderer: the silhouette renderer (default: ``SilhouetteRenderer(silhouette_size)``); its ``image_size``
            must be ``silhouette_size``.
        silhouette_size: side of the silhouettes compared by L_m, a divisor of the crop size (default: the crop
            size). Below it, the mesh is rendered at this size and the GrabCut silhouette is area-downsampled to it.
        net, **kwargs: see :class:`~tassn.stages.base.StageModule`.

    The mesh estimator's BatchNorm statistics stay those it was trained with on 3D labels (``fixed_norm_stats``):
    re-estimated on the target's small batches of consecutive frames they alone moved the 3D by up to 3 mm, with
    no weight changing (docs/results.md, ninth round).
    """

    default_fixed_norm_stats: ClassVar[tuple[str, ...]] = ("mesh",)

    def __init__(
        self,
        net: PME,
        lambda_s: float = 0.1,
        lambda_h: float = 1.0,
        renderer: SilhouetteRenderer | None = None,
        silhouette_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, **kwargs)
        self.keep_loss_weights(lambda_s=lambda_s, lambda_h=lambda_h)
        crop = net.image_size
        size = crop if silhouette_size is None else int(silhouette_size)
        if size <= 0 or crop % size:
            raise ValueError(
                f"{type(self).__name__}: silhouette_size must be a positive divisor of the crop size {crop}; got {silhouette_size}"
            )
        if renderer is not None and renderer.image_size != size:
            raise ValueError(
                f"{type(self).__name__}: the renderer draws {renderer.image_size}² silhouettes but L_m compares "
                f"{size}² ones (silhouette_size {silhouette_size}, crop {crop}); give the renderer image_size {size}"
            )
        self.silhouette_size = size
        self.renderer = renderer if renderer is not None else SilhouetteRenderer(size)

    @property
    def loss_weights(self) -> LossWeights:
        """λh and λs as ``tassn.losses.LossWeights``, without temporal consistency."""
        return LossWeights(heatmap=self.lambda_h, silhouette=self.lambda_s, pose_consistency=0, mesh_consistency=0)

    @property
    def silhouette_factor(self) -> int:
        """Crop pixels per silhouette pixel along each side (1: silhouettes at the crop's resolution)."""
        return self.net.image_size // self.silhouette_size

    def render_silhouettes(self, *outs: PMEOutput, batch: Mapping[str, Any]) -> torch.Tensor:
        """Silhouettes ``B×T×1×s×s`` (``s = silhouette_size``) of the predicted meshes, placed by the camera fitted to
        the 2D labels; several outputs of the same clip (e.g. forward and reversed) are rendered in one call and
        concatenated along the batch.

        The camera is fitted to the detached pose: L_m shapes the mesh, it does not move the camera.
        """
        b, t = outs[0].mesh.shape[:2]
        n = len(outs)
        pose = torch.cat([o.pose.detach() for o in outs]).flatten(0, 1)
        mesh = torch.cat([o.mesh for o in outs]).flatten(0, 1)
        kp2d, visible = batch["kp2d"].flatten(0, 1), batch["visible"].flatten(0, 1)
        if n > 1:
            kp2d, visible = kp2d.repeat(n, 1, 1), visible.repeat(n, 1)
        vertices = to_silhouette_pixels(fit_weak_perspective(pose, kp2d, visible).project(mesh), self.silhouette_factor)
        rendered = self.renderer(vertices, self.net.template_faces)
        return rendered.unflatten(0, (n * b, t))

    def grabcut_silhouettes(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The batch's GrabCut ``silhouettes B×T×1×s×s``, area-downsampled to ``silhouette_size``: the targets of
        L_m."""
        if "silhouettes" not in batch:
            raise KeyError(
                f"{type(self).__name__} needs GrabCut silhouettes in training batches: "
                "set data.init_args.silhouettes: true"
            )
        target = batch["silhouettes"]
        f = self.silhouette_factor
        if f == 1:
            return target
        return F.avg_pool2d(target.flatten(0, 1).float(), f).unflatten(0, target.shape[:2])
