"""Hard-negative sticks and discs: skin-coloured, beside the hand, never over it, labels untouched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from data_modules.clips import ClipDataset, CropConfig
from data_modules.distractors import draw_distractors, segment_distances, skin_colour

from tassn.hand.skeleton import BONES

SKIN = np.array([190.0, 130.0, 100.0])


def splayed_hand(size: int = 64, shift: float = 0.0) -> np.ndarray:
    """21×2 keypoints of an open hand, wrist at the bottom centre: five straight fingers fanning out."""
    wrist = np.array([size / 2 + shift, size * 0.8])
    kp = [wrist]
    for angle in np.deg2rad([-70, -35, -10, 12, 35]):
        direction = np.array([np.sin(angle), -np.cos(angle)])
        kp += [wrist + direction * size * r for r in (0.18, 0.27, 0.33, 0.38)]
    return np.stack(kp)


def hand_image(kp: np.ndarray, size: int = 64) -> np.ndarray:
    image = np.full((size, size, 3), 60, np.uint8)
    for a, b in BONES:
        cv2.line(image, tuple(int(v) for v in kp[a]), tuple(int(v) for v in kp[b]), SKIN.tolist(), 3)
    return image


@pytest.mark.parametrize("shapes", [("stick",), ("disc",), ("stick", "disc")])
def test_shapes_are_skin_coloured_beside_the_hand_and_never_over_it(shapes: tuple[str, ...]):
    kps = [splayed_hand(), splayed_hand(shift=2.0)]
    images = [hand_image(k) for k in kps]
    visible = [np.ones(21)] * 2
    assert np.abs(skin_colour(images[0], kps[0], visible[0]) - SKIN).max() < 1.0
    changed_any = False
    for seed in range(10):
        out = draw_distractors(images, kps, visible, 3, np.random.default_rng(seed), shapes)
        for im, new, kp in zip(images, out, kps, strict=True):
            changed = np.abs(new.astype(int) - im.astype(int)).max(axis=2) > 20
            changed_any |= bool(changed.any())
            for a, b in BONES:  # every bone's own pixels are untouched in both frames
                for t in np.linspace(0, 1, 9):
                    x, y = np.rint(kp[a] + t * (kp[b] - kp[a])).astype(int)
                    assert not changed[y, x], (seed, a, b)
            if changed.any():  # what was drawn is the hand's colour, within the tint's range
                colours = new[changed].astype(float)
                assert np.all(np.median(colours, axis=0) > 0.6 * SKIN) and np.all(np.median(colours, axis=0) < 1.4 * SKIN)
    assert changed_any


def test_a_disc_is_a_blob_and_an_unknown_shape_is_an_error():
    kp, image = splayed_hand(), hand_image(splayed_hand())
    inside = 0
    for seed in range(10):
        out = draw_distractors([image], [kp], [np.ones(21)], 1, np.random.default_rng(seed), ("disc",))[0]
        changed = (np.abs(out.astype(int) - image.astype(int)).max(axis=2) > 20).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(changed)
        assert count <= 2  # one blob at most
        if count < 2:
            continue
        x, y, w, h, area = stats[1]
        if x == 0 or y == 0 or x + w == 64 or y + h == 64:
            continue  # cut by the crop's edge
        inside += 1
        assert 0.75 < w / h < 1.33 and area > 0.6 * np.pi * (w / 2) * (h / 2)  # round and filled, not a line
    assert inside >= 1
    with pytest.raises(ValueError, match="shapes"):
        draw_distractors([image], [kp], [np.ones(21)], 1, np.random.default_rng(0), ("square",))


def test_no_sticks_and_no_hand_leave_the_clip_as_it_was():
    kp, image = splayed_hand(), hand_image(splayed_hand())
    assert np.array_equal(draw_distractors([image], [kp], [np.ones(21)], 0, np.random.default_rng(0))[0], image)
    assert np.array_equal(draw_distractors([image], [kp], [np.zeros(21)], 3, np.random.default_rng(0))[0], image)


def test_segment_distances():
    p, q = np.array([0.0, 0.0]), np.array([10.0, 0.0])
    a = np.array([[5.0, 3.0], [-1.0, -1.0], [13.0, 4.0]])
    b = np.array([[5.0, 9.0], [11.0, 1.0], [20.0, 4.0]])
    # above the middle, crossing, end to end
    np.testing.assert_allclose(segment_distances(p, q, a, b), [3.0, 0.0, 5.0], atol=1e-9)


def test_clip_dataset_draws_sticks_per_clip_and_keeps_the_labels(tiny_video):
    kwargs = dict(clip_len=2, clip_stride=1, crop=CropConfig(size=32))
    plain = ClipDataset([tiny_video], **kwargs)[0]
    dataset = ClipDataset([tiny_video], **kwargs, distractors=4)
    torch.manual_seed(0)
    items = [dataset[0] for _ in range(6)]
    for item in items:
        assert torch.equal(item["kp2d"], plain["kp2d"]) and torch.equal(item["heatmaps"], plain["heatmaps"])
    assert any(not torch.equal(item["frames"], plain["frames"]) for item in items)
    torch.manual_seed(0)
    again = dataset[0]
    assert torch.equal(again["frames"], items[0]["frames"])  # from torch's random state: seeded runs repeat


def test_clip_dataset_passes_its_shapes_and_rejects_unknown_ones(tiny_video):
    kwargs = dict(clip_len=2, clip_stride=1, crop=CropConfig(size=32), distractors=4)
    torch.manual_seed(0)
    sticks = ClipDataset([tiny_video], **kwargs)[0]
    torch.manual_seed(0)
    discs = ClipDataset([tiny_video], **kwargs, distractor_shapes=["disc"])[0]
    assert torch.equal(sticks["kp2d"], discs["kp2d"]) and not torch.equal(sticks["frames"], discs["frames"])
    with pytest.raises(ValueError, match="distractor_shapes"):
        ClipDataset([tiny_video], **kwargs, distractor_shapes=["blob"])
