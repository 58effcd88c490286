"""How well a confidence ranks errors: AUROC for "joint error > threshold" and a plot of error against confidence.

Used on labelled videos (a benchmark hides the labels from the model and reads them only here, to score).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

#: The error (mm) above which a joint counts as wrong.
ERROR_THRESHOLD_MM = 20.0


def _flat(confidence: np.ndarray | torch.Tensor, error_mm: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, ...]:
    c = torch.as_tensor(np.asarray(confidence), dtype=torch.float64).flatten()
    e = torch.as_tensor(np.asarray(error_mm), dtype=torch.float64).flatten()
    if c.shape != e.shape:
        raise ValueError(f"confidence and error need one value per joint; got {c.numel()} and {e.numel()}")
    keep = torch.isfinite(c) & torch.isfinite(e)
    return c[keep], e[keep]


def confidence_auroc(
    confidence: np.ndarray | torch.Tensor, error_mm: np.ndarray | torch.Tensor, threshold_mm: float = ERROR_THRESHOLD_MM
) -> float:
    """AUROC of ``1 − confidence`` as a detector of ``error_mm > threshold_mm`` (1: every wrong joint is less
    confident than every right one; 0.5: no better than chance). Raises when only one class occurs."""
    c, e = _flat(confidence, error_mm)
    wrong = (e > threshold_mm).long()
    if int(wrong.sum()) in (0, wrong.numel()):
        raise ValueError(
            f"AUROC needs joints on both sides of {threshold_mm} mm; got {int(wrong.sum())} of {wrong.numel()} above"
        )
    # scores outside [0, 1] would be squashed by a sigmoid (monotone, so harmless); confidence is in [0, 1]
    return float(binary_auroc(1.0 - c, wrong))


def error_by_confidence_bin(
    confidence: np.ndarray | torch.Tensor,
    error_mm: np.ndarray | torch.Tensor,
    bins: int = 10,
    threshold_mm: float = ERROR_THRESHOLD_MM,
) -> list[dict[str, float]]:
    """Joints grouped by confidence quantile (``bins`` groups of about equal size; tied confidences share one):
    per group its confidence range and mean, the median and mean error (mm), the fraction above ``threshold_mm``
    and the number of joints. A confidence that ranks errors well shows the error falling from group to group."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    c, e = (t.numpy() for t in _flat(confidence, error_mm))
    if c.size == 0:
        return []
    edges = np.unique(np.quantile(c, np.linspace(0, 1, bins + 1)))
    if len(edges) == 1:
        which = np.zeros(c.shape, np.int64)
        edges = np.array([edges[0], edges[0]])
    else:
        which = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, len(edges) - 2)
    groups = []
    for b in range(len(edges) - 1):
        inside = which == b
        if not inside.any():
            continue
        groups.append({
            "confidence_low": float(edges[b]), "confidence_high": float(edges[b + 1]),
            "confidence_mean": float(c[inside].mean()), "error_median_mm": float(np.median(e[inside])),
            "error_mean_mm": float(e[inside].mean()), "wrong_fraction": float((e[inside] > threshold_mm).mean()),
            "joints": int(inside.sum()),
        })
    return groups


def plot_error_vs_confidence(
    confidence: np.ndarray | torch.Tensor,
    error_mm: np.ndarray | torch.Tensor,
    path: str | Path,
    threshold_mm: float = ERROR_THRESHOLD_MM,
    bins: int = 10,
    title: str | None = None,
) -> Path:
    """Scatter of per-joint error against confidence with the median error per confidence decile, the threshold
    line and the AUROC in the title; written as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, e = _flat(confidence, error_mm)
    c_np, e_np = c.numpy(), e.numpy()
    try:
        auroc = f"AUROC (error > {threshold_mm:g} mm) = {confidence_auroc(c, e, threshold_mm):.3f}"
    except ValueError:
        auroc = f"AUROC undefined: all joints on one side of {threshold_mm:g} mm"
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter(c_np, e_np, s=3, alpha=0.3, color="tab:blue", label="joints")
    groups = error_by_confidence_bin(c, e, bins, threshold_mm)
    if groups:
        ax.plot([g["confidence_mean"] for g in groups], [g["error_median_mm"] for g in groups], "o-",
                color="tab:orange", label="median per confidence bin")
    ax.axhline(threshold_mm, color="tab:red", linestyle="--", linewidth=1, label=f"{threshold_mm:g} mm")
    ax.set_xlabel("confidence")
    ax.set_ylabel("joint error (mm)")
    ax.set_title((title + "\n" if title else "") + auroc, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
