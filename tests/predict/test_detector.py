"""The first-box hand detector at prediction time: its checkpoint, and its boxes in frame pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tassn.nets.hand_detector import HandBoxDetector
from tassn.predict.detector import HandDetector
from tassn.stages.checkpoints import CheckpointMismatchError


def detector_checkpoint(path: Path, net: HandBoxDetector, stage: str = "detector", **hparams) -> Path:
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "tassn_stage": stage,
                "hyper_parameters": {"input_size": net.input_size, "width": net.width, **hparams}}, path)
    return path


class FixedMaps(torch.nn.Module):
    """Stands in for the network: one centre at cell (row 4, column 10) with a known offset and side."""

    input_size = 64

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen = images
        maps = torch.zeros(1, 4, 16, 16)
        maps[0, 0] = -9.0
        maps[0, :, 4, 10] = torch.tensor([5.0, 0.25, -0.5, float(np.log(0.5))])
        return maps


def test_boxes_come_back_in_frame_pixels_of_a_wide_frame() -> None:
    detector = HandDetector(FixedMaps(), Path("fixed"))  # type: ignore[arg-type]
    frame = np.zeros((100, 200, 3), np.uint8)
    (box, score), = detector(frame)
    # input pixel of the centre: (10.25·4 + 1.5, 3.5·4 + 1.5) = (42.5, 15.5); the 64-px square stands for the
    # 200-px letterbox centred on the frame (x from −0.5, y from −50.5), 200/64 frame pixels per input pixel
    k = 200 / 64
    assert box.cx == pytest.approx((42.5 + 0.5) * k - 0.5)
    assert box.cy == pytest.approx((15.5 + 0.5) * k - 50.5)
    assert box.size == pytest.approx(32 * k)
    assert score > 0.99
    seen = detector.net.seen[0]  # type: ignore[attr-defined]
    assert seen.shape == (3, 64, 64) and seen[:, :10].abs().max() == 0  # black letterbox bands above


def test_a_detector_checkpoint_loads_and_others_are_refused(tmp_path: Path) -> None:
    net = HandBoxDetector(input_size=64, width=4)
    loaded = HandDetector.load(detector_checkpoint(tmp_path / "det.ckpt", net), top_k=2)
    for name, value in net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[name], value)
    assert len(loaded(np.zeros((48, 80, 3), np.uint8))) == 2
    with pytest.raises(CheckpointMismatchError, match="stage 'stage3'.*hand detector"):
        HandDetector.load(detector_checkpoint(tmp_path / "stage3.ckpt", net, stage="stage3"))
    with pytest.raises(CheckpointMismatchError, match="input_size and width"):
        HandDetector.load(detector_checkpoint(tmp_path / "odd.ckpt", net, width="wide"))
    other = HandBoxDetector(input_size=64, width=8)
    with pytest.raises(CheckpointMismatchError, match="odd-shapes.ckpt"):
        HandDetector.load(detector_checkpoint(tmp_path / "odd-shapes.ckpt", other, width=4))
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        HandDetector.load(tmp_path / "missing.ckpt")
