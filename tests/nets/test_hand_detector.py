"""The first-box hand detector: its output decoding, its losses and its box overlap."""

from __future__ import annotations

import pytest
import torch

from tassn.nets.hand_detector import (
    CENTRE,
    LOG_SIDE,
    OFFSET_X,
    OFFSET_Y,
    STRIDE,
    HandBoxDetector,
    decode_boxes,
)
from tassn.stages.hand_detector import HandDetectorModule, box_cells, centre_targets, square_iou


def maps_for(boxes: torch.Tensor, size: int, input_size: int) -> torch.Tensor:
    """The outputs a perfect detector gives for ``boxes`` ``B×3``: a peak, offset and log side at each centre."""
    maps = torch.zeros(len(boxes), 4, size, size)
    maps[:, CENTRE] = -8.0
    centres, _ = box_cells(boxes)
    for b, (u, v) in enumerate(centres.tolist()):
        i, j = round(v), round(u)
        maps[b, CENTRE, i, j] = 6.0
        maps[b, OFFSET_X, i, j] = u - j
        maps[b, OFFSET_Y, i, j] = v - i
        maps[b, LOG_SIDE, i, j] = torch.log(boxes[b, 2] / input_size)
    return maps


def test_decoding_inverts_the_training_targets() -> None:
    boxes = torch.tensor([[40.3, 70.8, 52.0], [100.0, 12.5, 30.0]])
    found, scores = decode_boxes(maps_for(boxes, 32, 128), 128, top_k=1)
    assert torch.allclose(found[:, 0], boxes, atol=1e-4)
    assert (scores > 0.99).all()


def test_decoding_orders_several_peaks_strongest_first() -> None:
    boxes = torch.tensor([[40.0, 70.0, 52.0]])
    maps = maps_for(boxes, 32, 128)
    maps[0, CENTRE, 5, 25] = 2.0  # a weaker, separate peak
    found, scores = decode_boxes(maps, 128, top_k=2)
    assert torch.allclose(found[0, 0], boxes[0], atol=1e-4)
    assert found[0, 1, 0] == pytest.approx(25 * STRIDE + 1.5) and scores[0, 0] > scores[0, 1]


def test_a_perfect_prediction_has_the_smallest_loss_and_gradients_reach_every_layer() -> None:
    module = HandDetectorModule(input_size=64, width=4)
    boxes = torch.tensor([[20.0, 30.0, 24.0], [40.0, 44.0, 16.0]])
    perfect = maps_for(boxes, 16, 64)
    perfect_terms = module.losses(perfect, boxes)
    assert perfect_terms["loss_offset"] < 1e-6 and perfect_terms["loss_side"] < 1e-6
    shifted = maps_for(boxes + torch.tensor([8.0, 0.0, 0.0]), 16, 64)
    assert module.losses(shifted, boxes)["loss_centre"] > perfect_terms["loss_centre"]
    images = torch.rand(2, 3, 64, 64)
    loss = sum(module.losses(module.net(images), boxes).values())
    loss.backward()
    for name, parameter in module.net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_centre_targets_peak_at_the_box_centre() -> None:
    boxes = torch.tensor([[21.5, 9.5, 32.0]])  # cell (5, 2) exactly
    heat = centre_targets(boxes, 16)
    assert heat.shape == (1, 1, 16, 16)
    assert heat[0, 0, 2, 5] == pytest.approx(1.0) and heat[0, 0].argmax() == 2 * 16 + 5


def test_square_iou_of_known_boxes() -> None:
    a = torch.tensor([10.0, 10.0, 10.0])
    assert square_iou(a, a) == pytest.approx(1.0)
    assert square_iou(a, torch.tensor([15.0, 10.0, 10.0])) == pytest.approx(50 / 150)
    assert square_iou(a, torch.tensor([40.0, 10.0, 10.0])) == 0.0


def test_the_detector_refuses_sizes_it_cannot_pool() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        HandBoxDetector(input_size=100)
    assert HandBoxDetector(input_size=64, width=4)(torch.rand(1, 3, 64, 64)).shape == (1, 4, 16, 16)
