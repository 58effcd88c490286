"""3D and 2D keypoint metrics as torchmetrics ``Metric`` s whose states are counts, so DDP sync is a sum, and
temporal metrics over whole videos (:class:`TemporalMetrics3D`, per-frame states concatenated across processes).

Protocol (Zimmermann & Brox 2017; Ge et al. 2019; the TASSN paper §4.2):

1. Predictions are root-relative and scale-normalised (``tassn.hand.normalize``). They are put back in
   millimetres with the ground truth's root and reference-bone length (middle MCP→PIP):
   ``pred_mm = (pred − pred_root)·bone_gt + root_gt`` (root-aligned; the root then has zero error and, as in
   the reference evaluations, still counts among the 21 keypoints unless ``include_root=False``).
2. Per keypoint, ``e = ‖pred_mm − gt_mm‖₂``. EPE = mean of e (and its median).
3. ``PCK(t)`` = fraction of keypoints with ``e ≤ t``. The curve uses Zimmermann's grid ``linspace(0, 50, 20)`` mm.
4. ``AUC = trapz(PCK, t) / (t_max − t_min)``. AUC 0–50 on that grid; AUC 20–50 on its own grid
   ``linspace(20, 50, 31)`` (1 mm steps, exactly the 20–50 mm range). Some public evaluations instead keep the
   thresholds ≥ 20 mm of the 0–50 grid (21.05…50 mm); pass those as ``auc_20_50_thresholds_mm`` to match them
   (the two differ by well under 0.01 for smooth curves).

Two further alignments replace step 1 where a method's skeleton convention differs from ours (a peer whose
reference bone is shorter relative to its hand than ours is inflated by the bone rescaling, though its whole hand
has the right size), so that a comparison does not hinge on one bone (``alignment=``):

- ``"scale_translation"`` (ST-EPE): per frame, the least-squares scale and translation of the prediction onto the
  ground truth, ``min_{s ≥ 0, t} Σ‖s·p_j + t − g_j‖²`` over the 21 joints.
- ``"procrustes"`` (PA-EPE, as FreiHAND and HO3D report): per frame, the least-squares similarity (scale, proper
  rotation, translation; Umeyama 1991) — a reflection is never used, since a mirrored hand is a wrong hand.

Both are invariant to the prediction's own scale and position, so they take normalised or mm input alike.

The median comes from a histogram state (``histogram_bin_mm`` = 0.05 mm bins up to ``histogram_max_mm`` =
500 mm, plus an overflow bin), exact to within one bin below the maximum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from tassn.hand.normalize import reference_bone_length
from tassn.hand.skeleton import ROOT

#: Zimmermann & Brox's PCK thresholds (mm), used for the curve and AUC 0–50.
PCK_THRESHOLDS_MM: tuple[float, ...] = tuple(torch.linspace(0, 50, 20).tolist())
#: Thresholds (mm) for AUC 20–50: 1 mm steps over exactly 20–50 mm.
AUC_20_50_THRESHOLDS_MM: tuple[float, ...] = tuple(torch.linspace(20, 50, 31).tolist())
#: The scalar entries of :meth:`PoseMetrics3D.compute` (the others are the PCK curve).
SCALAR_KEYS: tuple[str, ...] = ("epe_mm", "epe_median_mm", "auc_0_50", "auc_20_50")
#: The alignments of step 1 and the prefix their entries carry in results (``pa_epe_mm``, ``st_auc_20_50``, …).
ALIGNMENT_PREFIXES: dict[str, str] = {"root_bone": "", "scale_translation": "st_", "procrustes": "pa_"}
Alignment = Literal["root_bone", "scale_translation", "procrustes"]


def auc(thresholds: Tensor, pck: Tensor) -> Tensor:
    """Normalised area under a PCK curve: ``trapz(pck, t) / (t_max − t_min)``."""
    return torch.trapezoid(pck, thresholds) / (thresholds[-1] - thresholds[0])


def align_to_ground_truth(pred: Tensor, target_mm: Tensor, input_space: str = "normalized") -> Tensor:
    """Step 1 of the protocol: ``pred …×21×3`` in mm with the ground truth's root (and, for normalised input, its
    reference-bone length): ``(pred − pred_root)·bone_gt + root_gt`` (float64, detached)."""
    pred = pred.detach().double()
    gt = target_mm.detach().double()
    rel = pred - pred[..., ROOT : ROOT + 1, :]
    if input_space == "normalized":
        rel = rel * reference_bone_length(gt)[..., None, None]
    return rel + gt[..., ROOT : ROOT + 1, :]


def similarity_align(pred: Tensor, target: Tensor, rotation: bool = True, eps: float = 1e-12) -> Tensor:
    """``pred …×N×3`` moved by the per-sample least-squares similarity onto ``target …×N×3`` (float64, detached).

    ``rotation=True``: scale, proper rotation and translation (Procrustes/Umeyama, one batched SVD of the 3×3
    cross-covariances; the sign of the smallest singular direction is flipped where the best orthogonal map would be
    a reflection). ``rotation=False``: non-negative scale and translation only. Neither ever reflects. A degenerate prediction (all points equal) is
    mapped to the target's centroid.
    """
    p = pred.detach().double()
    g = target.detach().double()
    mu_p, mu_g = p.mean(dim=-2, keepdim=True), g.mean(dim=-2, keepdim=True)
    x, y = p - mu_p, g - mu_g
    var = (x * x).sum(dim=(-2, -1))
    if not rotation:
        # a negative scale would be a point inversion, i.e. a reflection in 3D: never used
        scale = ((x * y).sum(dim=(-2, -1)) / var.clamp_min(eps)).clamp_min(0)
        return scale[..., None, None] * x + mu_g
    u, sigma, vh = torch.linalg.svd(x.transpose(-1, -2) @ y)  # x^T y = U Σ V^T; best R (x·R ≈ y) = U D V^T
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    d = torch.ones_like(sigma)
    d[..., -1] = sign
    rot = (u * d[..., None, :]) @ vh
    scale = (sigma * d).sum(dim=-1) / var.clamp_min(eps)
    return scale[..., None, None] * (x @ rot) + mu_g


def _thresholds(values: Sequence[float] | None, default: tuple[float, ...], name: str) -> Tensor:
    t = torch.tensor(default if values is None else list(values), dtype=torch.float64)
    if t.numel() < 2 or not bool((t[1:] > t[:-1]).all()) or float(t[0]) < 0:
        raise ValueError(f"{name} must be ≥ 2 increasing non-negative thresholds; got {t.tolist()}")
    return t


class PoseMetrics3D(Metric):
    """3D EPE (mean, median), PCK curve, AUC 0–50 mm and AUC 20–50 mm under the protocol in this module's doc.

    ``alignment``: ``"root_bone"`` (the protocol's step 1, the default), ``"scale_translation"`` or
    ``"procrustes"`` (see the module doc; ``input_space`` then does not matter).

    ``update(pred …×21×3, target_mm …×21×3, visible …×21 | None)``: ``pred`` is root-relative and scale-normalised
    (``input_space="normalized"``, what the networks predict) or already in mm (``"mm"``, still root-aligned).
    ``compute()`` → ``{"epe_mm", "epe_median_mm", "auc_0_50", "auc_20_50"}`` (scalars) plus the curve
    ``"thresholds_mm"`` and ``"pck"`` (1-D, for plots; :data:`SCALAR_KEYS` are the loggable ones);
    ``pck_curve()`` → ``(thresholds_mm, pck)`` alone.
    """

    full_state_update = False
    higher_is_better = None
    is_differentiable = False

    def __init__(
        self,
        pck_thresholds_mm: Sequence[float] | None = None,
        auc_20_50_thresholds_mm: Sequence[float] | None = None,
        input_space: Literal["normalized", "mm"] = "normalized",
        include_root: bool = True,
        alignment: Alignment = "root_bone",
        histogram_bin_mm: float = 0.05,
        histogram_max_mm: float = 500.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if input_space not in ("normalized", "mm"):
            raise ValueError(f"input_space must be 'normalized' or 'mm'; got {input_space!r}")
        if alignment not in ALIGNMENT_PREFIXES:
            raise ValueError(f"alignment must be one of {sorted(ALIGNMENT_PREFIXES)}; got {alignment!r}")
        if histogram_bin_mm <= 0 or histogram_max_mm <= histogram_bin_mm:
            raise ValueError(
                f"need 0 < histogram_bin_mm < histogram_max_mm; got {histogram_bin_mm}, {histogram_max_mm}"
            )
        self.input_space = input_space
        self.include_root = include_root
        self.alignment = alignment
        self.bin_mm = float(histogram_bin_mm)
        self.num_bins = int(round(histogram_max_mm / histogram_bin_mm))
        # buffers (move with the module) but not in checkpoints: they are configuration, not state
        t = _thresholds(pck_thresholds_mm, PCK_THRESHOLDS_MM, "pck_thresholds_mm")
        t2050 = _thresholds(auc_20_50_thresholds_mm, AUC_20_50_THRESHOLDS_MM, "auc_20_50_thresholds_mm")
        self.register_buffer("thresholds", t, persistent=False)
        self.register_buffer("thresholds_20_50", t2050, persistent=False)
        long = torch.long
        self.add_state("error_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=long), dist_reduce_fx="sum")
        self.add_state("pck_counts", torch.zeros(self.thresholds.numel(), dtype=long), dist_reduce_fx="sum")
        self.add_state(
            "pck_counts_20_50", torch.zeros(self.thresholds_20_50.numel(), dtype=long), dist_reduce_fx="sum"
        )
        self.add_state("histogram", torch.zeros(self.num_bins + 1, dtype=long), dist_reduce_fx="sum")

    def errors_mm(self, pred: Tensor, target_mm: Tensor) -> Tensor:
        """Per-keypoint errors ``…×21`` (mm) after this metric's alignment to the ground truth."""
        if pred.shape != target_mm.shape or pred.shape[-1] != 3 or pred.dim() < 2:
            raise ValueError(
                f"pred and target must both be …×21×3; got {tuple(pred.shape)}, {tuple(target_mm.shape)}"
            )
        gt = target_mm.detach().double()
        if self.alignment == "root_bone":
            aligned = align_to_ground_truth(pred, gt, self.input_space)
        else:
            aligned = similarity_align(pred, gt, rotation=self.alignment == "procrustes")
        return (aligned - gt).norm(dim=-1)

    def update(self, pred: Tensor, target_mm: Tensor, visible: Tensor | None = None) -> None:
        err = self.errors_mm(pred, target_mm)
        mask = torch.ones_like(err, dtype=torch.bool) if visible is None else visible.to(err.device).bool()
        if mask.shape != err.shape:
            raise ValueError(f"visible must be …×21 {tuple(err.shape)}; got {tuple(mask.shape)}")
        if not self.include_root:
            mask = mask.clone()
            mask[..., ROOT] = False
        e = err[mask]
        self.error_sum += e.sum()
        self.count += e.numel()
        self.pck_counts += (e[:, None] <= self.thresholds[None, :]).sum(0)
        self.pck_counts_20_50 += (e[:, None] <= self.thresholds_20_50[None, :]).sum(0)
        bins = torch.clamp((e / self.bin_mm).floor().long(), max=self.num_bins)
        self.histogram += torch.bincount(bins, minlength=self.num_bins + 1)

    def has_data(self) -> bool:
        """True once any keypoint was measured (on this process)."""
        return bool(self.count > 0)

    def compute(self) -> dict[str, Tensor]:
        n = self.count.clamp_min(1).double()
        pck = self.pck_counts.double() / n
        return {
            "epe_mm": self.error_sum / n,
            "epe_median_mm": self._median(),
            "auc_0_50": auc(self.thresholds, pck),
            "auc_20_50": auc(self.thresholds_20_50, self.pck_counts_20_50.double() / n),
            "thresholds_mm": self.thresholds.clone(),
            "pck": pck,
        }

    def pck_curve(self) -> tuple[Tensor, Tensor]:
        """``(thresholds_mm, pck)`` on the 0–50 grid, synced across processes like ``compute``."""
        with self.sync_context(should_sync=self._to_sync, should_unsync=self._should_unsync):
            return self.thresholds.clone(), self.pck_counts.double() / self.count.clamp_min(1).double()

    def _median(self) -> Tensor:
        if int(self.count) == 0:
            return torch.zeros((), dtype=torch.float64, device=self.count.device)
        cum = self.histogram.cumsum(0).double()
        half = self.count.double() / 2
        i = int(torch.searchsorted(cum, half.reshape(1)).item())
        before = cum[i - 1] if i > 0 else torch.zeros_like(half)
        inside = self.histogram[i].double().clamp_min(1)
        return (i + (half - before) / inside) * self.bin_mm


class PCK2D(Metric):
    """2D PCK in crop pixels: the fraction of (visible) keypoints with ``‖pred − gt‖ ≤ threshold``.

    ``threshold`` is in pixels (``unit="px"``, default 5 px) or a fraction of the crop side ``image_size``
    (``unit="fraction"``, e.g. 0.05 → 12.8 px at 256). ``update(pred …×21×2, target …×21×2, visible …×21 | None)``;
    ``compute()`` → the PCK (scalar); ``epe_px()`` → the mean 2D error.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        threshold: float = 5.0,
        unit: Literal["px", "fraction"] = "px",
        image_size: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if unit not in ("fraction", "px"):
            raise ValueError(f"unit must be 'px' or 'fraction'; got {unit!r}")
        if threshold <= 0 or image_size <= 0:
            raise ValueError(f"threshold and image_size must be positive; got {threshold}, {image_size}")
        self.threshold_px = float(threshold) * (image_size if unit == "fraction" else 1.0)
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("error_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None) -> None:
        if pred.shape != target.shape or pred.shape[-1] != 2:
            raise ValueError(
                f"pred and target must both be …×21×2; got {tuple(pred.shape)}, {tuple(target.shape)}"
            )
        err = (pred.detach().double() - target.detach().double()).norm(dim=-1)
        if visible is not None:
            if visible.shape != err.shape:
                raise ValueError(f"visible must be …×21 {tuple(err.shape)}; got {tuple(visible.shape)}")
            err = err[visible.to(err.device).bool()]
        self.correct += (err <= self.threshold_px).sum()
        self.count += err.numel()
        self.error_sum += err.sum()

    def compute(self) -> Tensor:
        return self.correct.double() / self.count.clamp_min(1).double()

    def epe_px(self) -> Tensor:
        """Mean 2D error in pixels, synced across processes like ``compute``."""
        with self.sync_context(should_sync=self._to_sync, should_unsync=self._should_unsync):
            return self.error_sum / self.count.clamp_min(1).double()


#: The entries of :meth:`TemporalMetrics3D.compute` (all loggable scalars).
TEMPORAL_KEYS: tuple[str, ...] = ("accel_mm", "jitter_mm", "jitter_gt_mm")


def video_key(name: str) -> int:
    """A stable int64 id of a video name (the first 8 bytes of its BLAKE2b digest), the same on every process,
    so that video names can live in tensor states that DDP gathers."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little", signed=True)


class TemporalMetrics3D(Metric):
    """Acceleration error and jitter of 3D keypoints over whole videos, in mm/frame².

    Per frame and joint, ``a_t = p_{t+1} − 2p_t + p_{t−1}`` of the prediction after the EPE alignment
    (:func:`align_to_ground_truth`: the ground truth's root and reference bone, frame by frame) and of the ground
    truth. ``accel_mm`` = mean ‖a_pred − a_gt‖ (ACCEL, as in the video hand-mesh literature), ``jitter_mm`` =
    mean ‖a_pred‖, ``jitter_gt_mm`` = mean ‖a_gt‖ (the motion's own acceleration, the reference a jitter is read
    against), all over every (frame, joint) that has both neighbours; ``count`` says how many there were (0: the
    three means are 0 and meaningless, e.g. clips of fewer than 3 frames that never touch).

    Stitching: clips are short (a few frames), so second differences inside clips alone would drop most frames and
    miss the jumps between clips where the recurrence restarts. Each ``update`` therefore stores the aligned
    prediction and ground truth of every frame keyed by ``(video id, frame index)`` (list states, concatenated
    across DDP processes); ``compute`` merges the copies of a frame served in several clips (overlapping clips,
    or a sampler's padding duplicates) by their mean, sorts each video by frame index and takes second differences
    over consecutive frames only: a triple counts when its two gaps both equal the video's smallest gap (its frame
    step), so a missing frame (an unreadable clip) breaks the chain instead of being bridged. The unit is mm per
    served frame²; with ``frame_step > 1`` a "frame" is the step. A joint counts when it is visible in all three
    frames. States hold 2·21·3 float64 per frame (about 1 KB), so whole test splits fit easily; every process must
    have seen at least one frame before ``compute`` (a distributed sampler pads each process's share).
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, input_space: Literal["normalized", "mm"] = "normalized", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if input_space not in ("normalized", "mm"):
            raise ValueError(f"input_space must be 'normalized' or 'mm'; got {input_space!r}")
        self.input_space = input_space
        for name in ("video", "frame", "pred_mm", "gt_mm", "visible"):
            self.add_state(name, [], dist_reduce_fx="cat")

    def update(
        self,
        pred: Tensor,
        target_mm: Tensor,
        video: Sequence[str] | Tensor,
        frame_index: Tensor,
        visible: Tensor | None = None,
    ) -> None:
        """``pred, target_mm N×21×3``; ``video``: N names (or :func:`video_key` ids); ``frame_index N``;
        ``visible N×21`` or None."""
        if pred.shape != target_mm.shape or pred.dim() != 3 or pred.shape[-1] != 3:
            raise ValueError(f"pred and target must both be N×21×3; got {tuple(pred.shape)}, {tuple(target_mm.shape)}")
        n = pred.shape[0]
        ids = (video if isinstance(video, Tensor)
               else torch.tensor([video_key(v) for v in video], dtype=torch.long)).to(pred.device).long().reshape(-1)
        frames = frame_index.to(pred.device).long().reshape(-1)
        if ids.numel() != n or frames.numel() != n:
            raise ValueError(f"need one video and one frame index per frame ({n}); got {ids.numel()}, {frames.numel()}")
        mask = torch.ones(pred.shape[:-1], dtype=torch.bool, device=pred.device) if visible is None else visible.bool()
        if mask.shape != pred.shape[:-1]:
            raise ValueError(f"visible must be N×21 {tuple(pred.shape[:-1])}; got {tuple(mask.shape)}")
        self.video.append(ids)
        self.frame.append(frames)
        self.pred_mm.append(align_to_ground_truth(pred, target_mm, self.input_space))
        self.gt_mm.append(target_mm.detach().double())
        self.visible.append(mask.to(pred.device, torch.float64))  # float: gathers on every backend

    def has_data(self) -> bool:
        """True once any frame was stored (on this process)."""
        return len(self.frame) > 0

    def compute(self) -> dict[str, Tensor]:
        cat = dim_zero_cat
        if len(self.frame) == 0 or cat(self.frame).numel() == 0:  # a list here, a tensor once synced
            zero = torch.zeros((), dtype=torch.float64, device=self.device)
            return {**dict.fromkeys(TEMPORAL_KEYS, zero), "count": zero.long()}
        keys = torch.stack([cat(self.video), cat(self.frame)], dim=1)
        unique, inverse = torch.unique(keys, dim=0, return_inverse=True)  # sorted by (video, frame)
        copies = torch.zeros(len(unique), dtype=torch.float64, device=keys.device).index_add_(
            0, inverse, torch.ones(len(inverse), dtype=torch.float64, device=keys.device))

        def merged(values: Tensor) -> Tensor:
            total = torch.zeros((len(unique), *values.shape[1:]), dtype=torch.float64, device=values.device)
            return total.index_add_(0, inverse, values.double()) / copies.view(-1, *([1] * (values.dim() - 1)))

        pred, gt = merged(cat(self.pred_mm)), merged(cat(self.gt_mm))
        visible = merged(cat(self.visible)) > 0.999  # visible in every copy
        centre = consecutive_centres(unique[:, 0], unique[:, 1])
        a_pred = pred[centre + 1] - 2.0 * pred[centre] + pred[centre - 1]
        a_gt = gt[centre + 1] - 2.0 * gt[centre] + gt[centre - 1]
        mask = visible[centre - 1] & visible[centre] & visible[centre + 1]
        count = mask.sum()

        def mean(values: Tensor) -> Tensor:
            return values.norm(dim=-1)[mask].sum() / count.clamp_min(1).double()

        return {"accel_mm": mean(a_pred - a_gt), "jitter_mm": mean(a_pred), "jitter_gt_mm": mean(a_gt),
                "count": count}


def consecutive_centres(video: Tensor, frame: Tensor) -> Tensor:
    """Indices ``i`` of rows sorted by ``(video, frame)`` whose neighbours ``i − 1`` and ``i + 1`` are the same video
    and one frame step away on each side (the step: the video's smallest gap between frames)."""
    if len(frame) < 3:
        return torch.zeros(0, dtype=torch.long, device=frame.device)
    same = video[1:] == video[:-1]
    gap = frame[1:] - frame[:-1]
    _, per_video = torch.unique(video, return_inverse=True)
    big = torch.iinfo(torch.long).max
    step = torch.full((int(per_video.max()) + 1,), big, dtype=torch.long, device=frame.device)
    step = step.scatter_reduce(0, per_video[1:][same], gap[same], reduce="amin")
    ok = same & (gap == step[per_video[1:]])  # ok[i]: rows i and i + 1 are one step apart
    return torch.nonzero(ok[:-1] & ok[1:]).flatten() + 1
