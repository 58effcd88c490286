"""The first-box hand detector at prediction time (``tassn predict --detector-ckpt``).

``tassn train-detector`` writes the checkpoint (:mod:`tassn.stages.hand_detector`); here it is read weights-only,
refused with a one-line error when it is not a detector's, and run on whole frames: the frame letterboxed onto the
detector's square (its longer side fills it), the strongest centres decoded to square boxes in frame pixels. The
tracking crop searches from these boxes instead of its grid of candidates (:meth:`TrackingCrop.search_box`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tassn.nets.hand_detector import HandBoxDetector, decode_boxes
from tassn.stages.checkpoints import (
    CheckpointMismatchError,
    checkpoint_stage,
    load_net_state,
    read_checkpoint,
)
from tassn.stages.hand_detector import DETECTOR_STAGE

from .crop_box import CropBox

#: Boxes per frame the tracking crop's search starts from (``--detector-top-k``); chosen with
#: ``benchmarks/bench_predict.py --split val`` (docs/results.md, "Video prediction").
DEFAULT_DETECTOR_TOP_K = 1


@dataclass
class HandDetector:
    """A trained :class:`~tassn.nets.hand_detector.HandBoxDetector` in eval mode, and where it came from.

    ``top_k``: how many boxes a frame yields (the strongest centres, strongest first).
    """

    net: HandBoxDetector
    path: Path
    top_k: int = DEFAULT_DETECTOR_TOP_K

    @classmethod
    def load(cls, ckpt: str | Path, device: str | torch.device = "cpu",
             top_k: int = DEFAULT_DETECTOR_TOP_K) -> HandDetector:
        """Read a ``tassn train-detector`` checkpoint; raises ``FileNotFoundError`` or
        :class:`~tassn.stages.checkpoints.CheckpointMismatchError` naming the file."""
        path = Path(ckpt)
        checkpoint = read_checkpoint(path)
        stage = checkpoint_stage(checkpoint, path)
        if stage != DETECTOR_STAGE:
            raise CheckpointMismatchError(
                f"{path} was written by stage {stage!r}; --detector-ckpt needs a hand detector's checkpoint "
                "(`tassn train-detector`, `make train-detector`)"
            )
        hparams = checkpoint.get("hyper_parameters") or {}
        sizes = {key: hparams.get(key) for key in ("input_size", "width")}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes.values()):
            raise CheckpointMismatchError(f"{path}: hyper_parameters must record the detector's input_size and width "
                                          f"as positive integers, found {sizes}")
        try:
            net = HandBoxDetector(**sizes)
        except ValueError as err:
            raise CheckpointMismatchError(f"{path}: {err}") from None
        load_net_state(net, checkpoint, path, (DETECTOR_STAGE,))
        if top_k < 1:
            raise ValueError(f"top_k (boxes per frame) must be at least 1, got {top_k}")
        return cls(net.eval().to(device), path, top_k)

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> list[tuple[CropBox, float]]:
        """The ``top_k`` hand boxes of an RGB ``H×W×3`` uint8 frame, in frame pixels, with their scores."""
        height, width = frame.shape[:2]
        view = CropBox((width - 1) / 2.0, (height - 1) / 2.0, float(max(width, height)))
        size = self.net.input_size
        device = next(self.net.parameters()).device
        image = torch.from_numpy(np.ascontiguousarray(view.cut(frame, size))).to(device)
        maps = self.net(image.permute(2, 0, 1)[None].float() / 255.0)
        boxes, scores = decode_boxes(maps, size, self.top_k)
        boxes, scores = boxes[0].double().cpu().numpy(), scores[0].double().cpu().numpy()
        scale = view.size / size
        centres = view.to_frame(boxes[:, :2], size)
        return [(CropBox(float(c[0]), float(c[1]), float(b[2] * scale)), float(s))
                for c, b, s in zip(centres, boxes, scores, strict=True)]
