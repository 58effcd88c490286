"""What the stages with a silhouette term (L_m, paper Eq. 2) share: the renderer and the rendered silhouettes.

The mesh is placed in the crop by the weak-perspective camera that best maps the predicted pose's joints onto the
2D labels, so only the 2D labels decide where the hand is; its rendered silhouette is compared with GrabCut's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tassn.losses import LossWeights
from tassn.nets.pme import PME, PMEOutput
from tassn.render import SilhouetteRenderer, fit_weak_perspective
from tassn.stages.base import StageModule


class SilhouetteStage(StageModule):
    """A stage with a silhouette term: owns the renderer and computes L_m of a clip's predictions.

    Args:
        lambda_s, lambda_h: weights of L_m and L_h.
        renderer: the silhouette renderer (default: ``SilhouetteRenderer(net.image_size)``).
        net, **kwargs: see :class:`~tassn.stages.base.StageModule`.
    """

    def __init__(
        self,
        net: PME,
        lambda_s: float = 0.1,
        lambda_h: float = 1.0,
        renderer: SilhouetteRenderer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, **kwargs)
        self.keep_loss_weights(lambda_s=lambda_s, lambda_h=lambda_h)
        self.renderer = renderer if renderer is not None else SilhouetteRenderer(net.image_size)

    @property
    def loss_weights(self) -> LossWeights:
        """λh and λs as ``tassn.losses.LossWeights``, without temporal consistency."""
        return LossWeights(heatmap=self.lambda_h, silhouette=self.lambda_s, pose_consistency=0, mesh_consistency=0)

    def render_silhouettes(self, out: PMEOutput, batch: Mapping[str, Any]) -> torch.Tensor:
        """Silhouettes ``B×T×1×S×S`` of the predicted meshes, placed by the camera fitted to the 2D labels.

        The camera is fitted to the detached pose: L_m shapes the mesh, it does not move the camera.
        """
        b, t = out.mesh.shape[:2]
        camera = fit_weak_perspective(
            out.pose.detach().flatten(0, 1), batch["kp2d"].flatten(0, 1), batch["visible"].flatten(0, 1)
        )
        vertices = camera.project(out.mesh.flatten(0, 1))
        rendered = self.renderer(vertices, self.net.template_faces)
        return rendered.unflatten(0, (b, t))

    def grabcut_silhouettes(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The batch's GrabCut ``silhouettes B×T×1×S×S``: the targets of L_m."""
        if "silhouettes" not in batch:
            raise KeyError(
                f"{type(self).__name__} needs GrabCut silhouettes in training batches: "
                "set data.init_args.silhouettes: true"
            )
        return batch["silhouettes"]
