"""Training targets for adapting to an unlabeled video, made by the un-adapted model itself, once, before adapting.

The video runs through the prediction loop (tracked crops, forward and reversed passes). Each frame's crop keeps:
2D keypoints (the mean of both passes' heatmap peaks, crop pixels), a mask of the joints whose forward/backward
confidence (:mod:`tassn.predict.confidence`) reaches ``min_confidence``, Gaussian heatmaps at the kept joints
(L_h's targets) and a GrabCut silhouette seeded from them (L_m's target). Nothing else is read: no keypoint file,
no label of any kind. Frames with fewer than ``min_joints`` confident joints are left out of the clips (GrabCut
needs a hand to seed from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from data_modules.grabcut import GrabCutConfig, grabcut_silhouette
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from tassn.heatmaps import HEATMAP_STRIDE, gaussian_heatmaps, to_heatmap_coords

from .confidence import AGREEMENT_SCALE, forward_backward_confidence
from .detector import HandDetector
from .hand_crop import CropProvider
from .model import LoadedModel
from .passes import CropStore, Stepper, run_forward, run_reverse
from .video_io import FrameSource


@dataclass
class PseudoLabels:
    """Per frame of one video: crops ``F×S×S×3`` uint8 (as the network sees them), keypoints ``F×21×2`` (crop
    px), confidence ``F×21`` and the kept-joint mask ``F×21`` (bool), silhouettes ``F×S×S`` uint8 {0, 1}."""

    crops: np.ndarray
    kp_crop: np.ndarray
    confidence: np.ndarray
    keep: np.ndarray
    silhouettes: np.ndarray

    def usable_frames(self, min_joints: int) -> np.ndarray:
        """``F`` bool: frames with at least ``min_joints`` kept joints."""
        return self.keep.sum(axis=1) >= min_joints


def collect_pseudo_labels(
    source: FrameSource,
    provider: CropProvider,
    model: LoadedModel,
    left_hand: bool = False,
    min_confidence: float = 0.3,
    agreement_scale: float = AGREEMENT_SCALE,
    grabcut: GrabCutConfig | None = None,
    progress: bool = True,
    tracker: LoadedModel | None = None,
    detector: HandDetector | None = None,
) -> PseudoLabels:
    """Run the un-adapted ``model`` over the video forwards and backwards and derive the targets (module doc);
    ``tracker``: a second network that places the tracking crops, ``detector``: a hand detector that gives them their
    first box and checks every frame (:func:`~tassn.predict.passes.run_forward`)."""
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    stepper = Stepper(model)
    store = CropStore(model.net.image_size)
    try:
        forward, _ = run_forward(source, provider, stepper, None, left_hand, store, progress,
                                 locator=None if tracker is None else Stepper(tracker), detector=detector)
        reverse = run_reverse(store, stepper, None, progress)
        crops = np.array(store.read())
    finally:
        store.close()
    f, r = forward.stacked(), reverse.stacked()
    confidence, _ = forward_backward_confidence(f["pose"], r["pose"], f["confidence"], r["confidence"],
                                                agreement_scale)
    kp = 0.5 * (f["kp_crop"] + r["kp_crop"])
    keep = confidence >= min_confidence
    cfg = grabcut or GrabCutConfig()
    silhouettes = np.stack([
        grabcut_silhouette(crop, points, mask, cfg)
        for crop, points, mask in tqdm(zip(crops, kp, keep, strict=True), total=len(crops), unit="frame",
                                       desc="GrabCut silhouettes", disable=not progress, dynamic_ncols=True)
    ])
    return PseudoLabels(crops=crops, kp_crop=kp, confidence=confidence, keep=keep, silhouettes=silhouettes)


class PseudoLabelClips(Dataset):
    """Clips of ``clip_len`` consecutive usable frames (every start), as the batches Stage 3 trains on:
    ``frames T×3×S×S`` in [0, 1], ``kp2d T×21×2``, ``heatmaps T×21×h×w``, ``visible T×21``, ``silhouettes
    T×1×S×S``; ``frame_index T``. No 3D entry exists, so none can be read."""

    def __init__(self, labels: PseudoLabels, clip_len: int = 4, min_joints: int = 6, heatmap_sigma: float = 2.0):
        if clip_len < 2:
            raise ValueError(f"clip_len must be at least 2 (forward and reversed passes must differ), got {clip_len}")
        if heatmap_sigma <= 0:
            raise ValueError(f"heatmap_sigma must be > 0, got {heatmap_sigma}")
        self.labels = labels
        self.clip_len = clip_len
        self.heatmap_sigma = heatmap_sigma
        usable = labels.usable_frames(min_joints)
        run = np.convolve(usable.astype(int), np.ones(clip_len, int), mode="valid")  # usable frames per window
        self.starts = [int(s) for s in np.flatnonzero(run == clip_len)]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        idx = slice(self.starts[i], self.starts[i] + self.clip_len)
        lab = self.labels
        size = lab.crops.shape[1]
        kp = torch.from_numpy(lab.kp_crop[idx]).float()
        visible = torch.from_numpy(lab.keep[idx]).float()
        return {
            "frames": torch.from_numpy(lab.crops[idx]).permute(0, 3, 1, 2).float() / 255.0,
            "kp2d": kp,
            "heatmaps": gaussian_heatmaps(to_heatmap_coords(kp), size // HEATMAP_STRIDE, self.heatmap_sigma, visible),
            "visible": visible,
            "silhouettes": torch.from_numpy(lab.silhouettes[idx]).float()[:, None],
            "frame_index": torch.arange(idx.start, idx.stop),
        }
