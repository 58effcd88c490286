"""3D and 2D keypoint metrics as torchmetrics ``Metric`` s whose states are counts, so DDP sync is a sum.

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

The median comes from a histogram state (``histogram_bin_mm`` = 0.05 mm bins up to ``histogram_max_mm`` =
500 mm, plus an overflow bin), exact to within one bin below the maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric

from tassn.hand.normalize import reference_bone_length
from tassn.hand.skeleton import ROOT

#: Zimmermann & Brox's PCK thresholds (mm), used for the curve and AUC 0–50.
PCK_THRESHOLDS_MM: tuple[float, ...] = tuple(torch.linspace(0, 50, 20).tolist())
#: Thresholds (mm) for AUC 20–50: 1 mm steps over exactly 20–50 mm.
AUC_20_50_THRESHOLDS_MM: tuple[float, ...] = tuple(torch.linspace(20, 50, 31).tolist())
#: The scalar entries of :meth:`PoseMetrics3D.compute` (the others are the PCK curve).
SCALAR_KEYS: tuple[str, ...] = ("epe_mm", "epe_median_mm", "auc_0_50", "auc_20_50")


def auc(thresholds: Tensor, pck: Tensor) -> Tensor:
    """Normalised area under a PCK curve: ``trapz(pck, t) / (t_max − t_min)``."""
    return torch.trapezoid(pck, thresholds) / (thresholds[-1] - thresholds[0])


def _thresholds(values: Sequence[float] | None, default: tuple[float, ...], name: str) -> Tensor:
    t = torch.tensor(default if values is None else list(values), dtype=torch.float64)
    if t.numel() < 2 or not bool((t[1:] > t[:-1]).all()) or float(t[0]) < 0:
        raise ValueError(f"{name} must be ≥ 2 increasing non-negative thresholds; got {t.tolist()}")
    return t


class PoseMetrics3D(Metric):
    """3D EPE (mean, median), PCK curve, AUC 0–50 mm and AUC 20–50 mm under the protocol in this module's doc.

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
        histogram_bin_mm: float = 0.05,
        histogram_max_mm: float = 500.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if input_space not in ("normalized", "mm"):
            raise ValueError(f"input_space must be 'normalized' or 'mm'; got {input_space!r}")
        if histogram_bin_mm <= 0 or histogram_max_mm <= histogram_bin_mm:
            raise ValueError(
                f"need 0 < histogram_bin_mm < histogram_max_mm; got {histogram_bin_mm}, {histogram_max_mm}"
            )
        self.input_space = input_space
        self.include_root = include_root
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
        """Per-keypoint errors ``…×21`` (mm) after root alignment and, for normalised input, GT bone scaling."""
        if pred.shape != target_mm.shape or pred.shape[-1] != 3 or pred.dim() < 2:
            raise ValueError(
                f"pred and target must both be …×21×3; got {tuple(pred.shape)}, {tuple(target_mm.shape)}"
            )
        pred = pred.detach().double()
        gt = target_mm.detach().double()
        rel = pred - pred[..., ROOT : ROOT + 1, :]
        if self.input_space == "normalized":
            rel = rel * reference_bone_length(gt)[..., None, None]
        return (rel + gt[..., ROOT : ROOT + 1, :] - gt).norm(dim=-1)

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
