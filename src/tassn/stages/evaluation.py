"""Validation/test measurements of a stage: 2D PCK on the heatmaps, 3D EPE / PCK / AUC on the pose (under the
protocol's root + reference-bone alignment, and after per-frame scale + translation and Procrustes alignment, keys
``st_…`` and ``pa_…``, so that rows compare with methods of another skeleton convention), PCK curve, and the pose's acceleration error and jitter over whole videos (clips stitched by video and frame index).

One :class:`EvaluationMetrics` per split (``self.val_metrics``, ``self.test_metrics``); its states are
torchmetrics states, so the numbers are synced over DDP processes before they are computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from tassn.heatmaps import heatmap_peaks, heatmap_to_crop
from tassn.metrics import (
    ALIGNMENT_PREFIXES,
    PCK2D,
    SCALAR_KEYS,
    TEMPORAL_KEYS,
    PoseMetrics3D,
    TemporalMetrics3D,
)
from tassn.nets.pme import PMEOutput


class EvaluationMetrics(nn.Module):
    """2D PCK of the last stack's heatmap peaks against ``kp2d`` and, when batches carry ``kp3d``, 3D metrics;
    when they also carry ``video`` and ``frame_index`` (every :class:`~data_modules.clips.ClipDataset` batch does),
    ACCEL and jitter over whole videos (:class:`~tassn.metrics.TemporalMetrics3D`).

    Args:
        pck2d_threshold: crop pixels under which a 2D keypoint is correct.
    """

    def __init__(self, pck2d_threshold: float = 5.0) -> None:
        super().__init__()
        self.pck2d = PCK2D(threshold=pck2d_threshold)
        self.pose3d = PoseMetrics3D()
        self.pose3d_st = PoseMetrics3D(alignment="scale_translation")
        self.pose3d_pa = PoseMetrics3D(alignment="procrustes")
        self.temporal = TemporalMetrics3D()

    def _aligned(self) -> dict[str, PoseMetrics3D]:
        """The extra-alignment 3D metrics by their result prefix (``st_``, ``pa_``)."""
        return {ALIGNMENT_PREFIXES[m.alignment]: m for m in (self.pose3d_st, self.pose3d_pa)}

    def update(self, out: PMEOutput, batch: Mapping[str, Any]) -> None:
        """Add one batch: predictions ``out`` (with a T axis) and the batch's labels."""
        heatmaps = out.heatmaps[:, :, -1].flatten(0, 1)  # (B·T)×21×h×w, last stack
        kp2d = heatmap_to_crop(heatmap_peaks(heatmaps)[0], batch["frames"].shape[-1] / heatmaps.shape[-1])
        self.update_keypoints2d(kp2d, batch)
        self.update_pose(out.pose, batch)

    def update_keypoints2d(self, kp2d: Tensor, batch: Mapping[str, Any]) -> None:
        """Add 2D keypoints ``(B·T)×21×2`` in crop pixels (a model's heatmap peaks, or a baseline's constant)."""
        self.pck2d.update(kp2d, batch["kp2d"].flatten(0, 1), batch["visible"].flatten(0, 1))

    def update_pose(self, pose: Tensor, batch: Mapping[str, Any]) -> None:
        """Add root-relative, scale-normalised poses ``B×T×21×3``; scored only when the batch carries ``kp3d``
        (and over whole videos when it also carries ``video`` and ``frame_index``). A baseline without a network
        (benchmarks/mean_pose.py) goes through here too, so its numbers are the same code's."""
        if "kp3d" not in batch:
            return
        visible = batch["visible"].flatten(0, 1)
        pred, target = pose.flatten(0, 1), batch["kp3d"].flatten(0, 1)
        self.pose3d.update(pred, target, visible)
        for metric in self._aligned().values():
            metric.update(pred, target, visible)
        if "video" in batch and "frame_index" in batch:
            steps = batch["frame_index"].shape[1]
            videos = [name for name in batch["video"] for _ in range(steps)]  # B names → B·T, clip-major
            self.temporal.update(pred, target, videos, batch["frame_index"].flatten(0, 1), visible)

    def compute(self) -> dict[str, Any]:
        """``{"scalars": {pck2d[, epe_mm, epe_median_mm, auc_0_50, auc_20_50, the same prefixed st_ and pa_]
        [, accel_mm, jitter_mm, jitter_gt_mm]}, "curve": {thresholds_mm, pck} or None}``; the 3D entries only when batches carried ``kp3d``, the temporal
        ones when they also carried ``video`` and ``frame_index`` and some frame had both neighbours."""
        scalars = {"pck2d": self.pck2d.compute()}
        curve = None
        if self.pose3d.has_data():
            result = self.pose3d.compute()
            scalars.update({k: result[k] for k in SCALAR_KEYS})
            for prefix, metric in self._aligned().items():
                aligned = metric.compute()
                scalars.update({prefix + k: aligned[k] for k in SCALAR_KEYS})
            curve = {
                "thresholds_mm": [float(t) for t in result["thresholds_mm"]],
                "pck": [float(p) for p in result["pck"]],
            }
        if self.temporal.has_data():
            temporal = self.temporal.compute()
            if int(temporal["count"]) > 0:
                scalars.update({k: temporal[k] for k in TEMPORAL_KEYS})
        return {"scalars": scalars, "curve": curve}

    def reset(self) -> None:
        self.pck2d.reset()
        self.pose3d.reset()
        for metric in self._aligned().values():
            metric.reset()
        self.temporal.reset()


def pck_curve_image(curve: Mapping[str, list[float]], title: str = "", dataset: str | None = None) -> np.ndarray:
    """The PCK curve as an ``H×W×3`` uint8 RGB image; for STB and MHP the legend lists the paper's numbers."""
    from tassn.viz import pck_curve_figure

    reference = dataset if dataset in ("stb", "mhp") else None
    return pck_curve_figure({"ours": curve}, reference=reference, title=title or None)


def save_png(image: np.ndarray, path: Path) -> None:
    """Write an RGB ``H×W×3`` uint8 image (creating the folder)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
