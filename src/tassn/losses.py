"""The paper's losses (Eq. 1–6), one function each, and their weighted sum.

- Eq. 1  ``L_h = 1/K Σ_k ‖H_k − H̄_k‖²_F`` on every hourglass stack (intermediate supervision: the stacks' losses
  are summed by default), averaged over frames.
- Eq. 2  ``L_m = ‖s − s̄‖²_F`` between the rendered and the GrabCut silhouette. The default normalisation is the
  per-pixel mean (``‖·‖²_F / (H·W)``), so that λs = 0.1 means the same at any resolution; ``"sum"`` is the
  equation as printed.
- Eq. 3–4  ``L_c^p = 1/n Σ_i ‖p_i − p̃_i‖²_F`` and ``L_c^m`` alike, between the forward and the reversed-order
  predictions of the same frames (both already in the clip's frame order); both directions get gradients, as
  the two orders supervise each other.
  With ``keep_scale`` the terms' values are unchanged but their gradient loses the component that shrinks both
  directions' predictions together (:func:`without_common_scale_gradient`): a squared difference falls with the
  square of the hand's predicted size, and on this project's data L_c otherwise buys agreement by shrinking the hand.
- Eq. 5  ``L_c = λc^m·L_c^m + λc^p·L_c^p`` (:func:`temporal_consistency_terms`);  Eq. 6
  ``L = λs·L_m + λh·L_h + L_c`` (:func:`total_loss`).

Every loss is a :func:`weighted_sum` of ``{log name: (weight, term)}``, the one place where weights are checked and
terms added. Every input of :func:`total_loss` may be a tensor or a zero-argument callable returning one, so that a
term whose weight is 0 is never computed (e.g. no silhouette is rendered when λs = 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

TensorOrThunk = Tensor | Callable[[], Tensor]
#: ``{log name: (weight, unweighted term)}``: what :func:`weighted_sum` adds up.
LossTerms = dict[str, tuple[float, TensorOrThunk]]
SilhouetteNorm = Literal["mean", "sum"]
StackReduction = Literal["sum", "mean"]


@dataclass
class LossWeights:
    """Weights of Eq. 5–6 (paper §4.3, stage 3: λs = 0.1, λh = 1, λc^p = λc^m = 10). 0 switches a term off."""

    heatmap: float = 1.0
    silhouette: float = 0.1
    pose_consistency: float = 10.0
    mesh_consistency: float = 10.0

    def __post_init__(self) -> None:
        check_weights(vars(self))


def heatmap_loss(
    pred: Tensor, target: Tensor, visible: Tensor | None = None, stack_reduction: StackReduction = "sum"
) -> Tensor:
    """Eq. 1. ``pred …×S×K×h×w`` (S hourglass stacks) or ``…×K×h×w``; ``target …×K×h×w``; ``visible …×K``.

    Per frame and stack: mean over keypoints of ``‖H_k − H̄_k‖²_F``; with ``visible`` the mean runs over the
    labelled keypoints only (a frame with none contributes 0). Stacks are summed (or averaged), frames averaged.
    """
    if pred.dim() == target.dim():
        pred = pred.unsqueeze(-4)
    if (
        pred.dim() != target.dim() + 1
        or pred.shape[:-4] != target.shape[:-3]
        or pred.shape[-3:] != target.shape[-3:]
    ):
        raise ValueError(
            f"heatmaps: pred …×S×K×h×w must match target …×K×h×w; got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    per_kp = (pred - target.unsqueeze(-4)).pow(2).sum(dim=(-1, -2))  # …×S×K
    if visible is None:
        per_stack = per_kp.mean(-1)
    else:
        if visible.shape != target.shape[:-2]:
            raise ValueError(f"visible must be …×K {tuple(target.shape[:-2])}; got {tuple(visible.shape)}")
        w = visible.to(per_kp.dtype).unsqueeze(-2)
        per_stack = (per_kp * w).sum(-1) / w.sum(-1).clamp_min(1.0)
    if stack_reduction not in ("sum", "mean"):
        raise ValueError(f"stack_reduction must be 'sum' or 'mean'; got {stack_reduction!r}")
    per_frame = per_stack.sum(-1) if stack_reduction == "sum" else per_stack.mean(-1)
    return per_frame.mean()


def silhouette_loss(
    rendered: Tensor, target: Tensor, normalization: SilhouetteNorm = "mean", weights: Tensor | None = None
) -> Tensor:
    """Eq. 2 between ``rendered …×1×H×W`` and ``target`` (same shape), averaged over frames.

    ``normalization="mean"`` (default) divides each frame's ``‖s − s̄‖²_F`` by its pixel count; ``"sum"`` keeps
    it as printed. ``weights …`` (per frame, e.g. 0 where GrabCut failed) give a weighted mean over frames.
    """
    if rendered.shape != target.shape or rendered.dim() < 3:
        raise ValueError(
            f"silhouettes: rendered and target must both be …×1×H×W; got {tuple(rendered.shape)}, {tuple(target.shape)}"
        )
    if normalization not in ("mean", "sum"):
        raise ValueError(f"normalization must be 'mean' or 'sum'; got {normalization!r}")
    sq = (rendered - target.to(rendered.dtype)).pow(2)
    per_frame = sq.mean(dim=(-1, -2, -3)) if normalization == "mean" else sq.sum(dim=(-1, -2, -3))
    return _frame_mean(per_frame, weights)


def squared_error(a: Tensor, b: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean over frames of the squared Frobenius norm over the last two dims: ``a``, ``b …×N×C``.

    The form shared by Eq. 3–4 and by supervised 3D losses on synthetic data. ``weights …`` optional per frame.
    """
    if a.shape != b.shape or a.dim() < 2:
        raise ValueError(
            f"squared error: both inputs must be …×N×C of one shape; got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    return _frame_mean((a - b).pow(2).sum(dim=(-1, -2)), weights)


def without_common_scale_gradient(forward: Tensor, reversed_: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Both point sets ``…×N×C`` times ``sg(s)/s``, ``s`` their joint RMS spread about their own centroids (per
    leading index, e.g. per frame): the values are unchanged, but a loss of the pair no longer has a gradient along
    scaling both by one factor, the direction in which any squared difference between them falls for free."""
    def spread2(x: Tensor) -> Tensor:
        return (x - x.mean(dim=-2, keepdim=True)).pow(2).sum(dim=(-1, -2))

    s2 = 0.5 * (spread2(forward) + spread2(reversed_))
    k = (s2.detach() / s2.clamp_min(eps)).sqrt()[..., None, None]
    return forward * k, reversed_ * k


def consistency_loss(
    forward: Tensor, reversed_: Tensor, weights: Tensor | None = None, keep_scale: bool = False
) -> Tensor:
    """Eq. 3 / Eq. 4: mean over frames of ``‖x_i − x̃_i‖²_F`` for ``forward``, ``reversed_ …×T×N×3``.

    Both must be in the clip's frame order (PME.run returns them so). ``weights …×T`` optional frame weights.
    ``keep_scale``: the same value, its gradient without the common-scale component
    (:func:`without_common_scale_gradient`, per frame).
    """
    if forward.shape != reversed_.shape or forward.dim() < 2:
        raise ValueError(
            f"consistency: forward and reversed must match (…×T×N×3); got {tuple(forward.shape)}, {tuple(reversed_.shape)}"
        )
    if keep_scale:
        forward, reversed_ = without_common_scale_gradient(forward, reversed_)
    return squared_error(forward, reversed_, weights)


pose_consistency_loss = consistency_loss  #: L_c^p (Eq. 3) on poses ``…×T×21×3``
mesh_consistency_loss = consistency_loss  #: L_c^m (Eq. 4) on meshes ``…×T×V×3``


def temporal_consistency_terms(
    lambda_pose: float,
    lambda_mesh: float,
    pose: TensorOrThunk | None = None,
    pose_reversed: TensorOrThunk | None = None,
    mesh: TensorOrThunk | None = None,
    mesh_reversed: TensorOrThunk | None = None,
    keep_scale: bool = False,
) -> LossTerms:
    """Eq. 5, ``L_c = λc^p·L_c^p + λc^m·L_c^m``, as the weighted terms ``loss_c_pose`` and ``loss_c_mesh``
    (:func:`weighted_sum` adds them, and computes a term only when its weight is > 0); ``keep_scale``: see
    :func:`consistency_loss`."""
    return {
        "loss_c_pose": (lambda_pose, lambda: pose_consistency_loss(
            _need("pose", pose, "L_c^p"), _need("pose_reversed", pose_reversed, "L_c^p"), keep_scale=keep_scale)),
        "loss_c_mesh": (lambda_mesh, lambda: mesh_consistency_loss(
            _need("mesh", mesh, "L_c^m"), _need("mesh_reversed", mesh_reversed, "L_c^m"), keep_scale=keep_scale)),
    }


def weighted_sum(terms: Mapping[str, tuple[float, TensorOrThunk]]) -> dict[str, Tensor]:
    """``Σ weight·term`` over ``{log name: (weight, term)}``, in order; a term whose weight is 0 is never computed.

    Returns ``{name: unweighted term, …, "loss": total}`` (only the terms computed; the keys are the log names).
    Every loss of every stage is summed here, and the weights are checked here (≥ 0, not all 0).
    """
    check_weights({name: weight for name, (weight, _) in terms.items()})
    out: dict[str, Tensor] = {}
    total: Tensor | None = None
    for name, (weight, term) in terms.items():
        if weight > 0:
            value = term() if callable(term) else term
            out[name] = value
            total = weight * value if total is None else total + weight * value
    if total is None:
        raise ValueError("every loss weight is 0: nothing to optimise")
    out["loss"] = total
    return out


def check_weights(weights: Mapping[str, float], owner: str = "loss") -> None:
    """Raise ``ValueError`` naming every negative weight of ``{name: weight}``."""
    negative = {name: weight for name, weight in weights.items() if weight < 0}
    if negative:
        raise ValueError(f"{owner} weights must be ≥ 0; got {negative}")


def total_loss(weights: LossWeights, **inputs: Any) -> dict[str, Tensor]:
    """Eq. 6 with only the terms whose weight is > 0 computed: :func:`weighted_sum` of :func:`total_loss_terms`
    (``inputs``: its keyword arguments).

    Returns ``{"loss": total, "loss_h": …, "loss_m": …, "loss_c_pose": …, "loss_c_mesh": …}`` (unweighted terms,
    only those computed; the keys are the log names). A term with weight > 0 but a missing input raises.
    """
    return weighted_sum(total_loss_terms(weights, **inputs))


def total_loss_terms(
    weights: LossWeights,
    *,
    heatmaps: TensorOrThunk | None = None,
    heatmap_targets: TensorOrThunk | None = None,
    visible: TensorOrThunk | None = None,
    silhouettes: TensorOrThunk | None = None,
    silhouette_targets: TensorOrThunk | None = None,
    pose: TensorOrThunk | None = None,
    pose_reversed: TensorOrThunk | None = None,
    mesh: TensorOrThunk | None = None,
    mesh_reversed: TensorOrThunk | None = None,
    silhouette_normalization: SilhouetteNorm = "mean",
    heatmap_stack_reduction: StackReduction = "sum",
    consistency_keeps_scale: bool = False,
) -> LossTerms:
    """The weighted terms of Eq. 6, ``λh·L_h + λs·L_m + L_c`` with ``L_c`` from :func:`temporal_consistency_terms`
    (Eq. 5, ``consistency_keeps_scale`` its ``keep_scale``); :func:`total_loss` is their sum. Each input is a
    tensor or a zero-argument callable returning one."""
    return {
        "loss_h": (weights.heatmap, lambda: heatmap_loss(
            _need("heatmaps", heatmaps, "L_h"), _need("heatmap_targets", heatmap_targets, "L_h"),
            visible() if callable(visible) else visible, heatmap_stack_reduction)),
        "loss_m": (weights.silhouette, lambda: silhouette_loss(
            _need("silhouettes", silhouettes, "L_m"), _need("silhouette_targets", silhouette_targets, "L_m"),
            silhouette_normalization)),
        **temporal_consistency_terms(
            weights.pose_consistency, weights.mesh_consistency, pose, pose_reversed, mesh, mesh_reversed,
            keep_scale=consistency_keeps_scale,
        ),
    }


def _need(name: str, value: TensorOrThunk | None, term: str) -> Tensor:
    if value is None:
        raise ValueError(f"loss term {term} has weight > 0 but {name} was not given (set its weight to 0 to skip it)")
    return value() if callable(value) else value


def _frame_mean(per_frame: Tensor, weights: Tensor | None) -> Tensor:
    if weights is None:
        return per_frame.mean()
    if weights.shape != per_frame.shape:
        raise ValueError(
            f"frame weights must have shape {tuple(per_frame.shape)}; got {tuple(weights.shape)}"
        )
    w = weights.to(per_frame.dtype)
    return (per_frame * w).sum() / w.sum().clamp_min(torch.finfo(per_frame.dtype).tiny)
