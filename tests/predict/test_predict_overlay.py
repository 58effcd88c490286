from __future__ import annotations

import warnings

import numpy as np

from tassn.hand.skeleton import BONES
from tassn.predict.overlay import BONE_COLORS, compose_frame, mesh_silhouette, outline
from tassn.predict.writers import PredictionArrays

SQUARE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
SQUARE_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def test_silhouette_is_the_projected_mesh() -> None:
    mask = mesh_silhouette(SQUARE, SQUARE_FACES, np.array([10.0, 20.0, 30.0]), 64, 48)
    assert mask.shape == (48, 64) and mask.dtype == np.uint8
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (20, 30, 30, 40)
    assert 100 <= mask.sum() <= 121
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in the cast of absurd coordinates
        assert mesh_silhouette(SQUARE, SQUARE_FACES, np.array([1e12, 0.0, 0.0]), 64, 48).sum() == 0
    assert mesh_silhouette(SQUARE * np.nan, SQUARE_FACES, np.array([10.0, 0.0, 0.0]), 64, 48).sum() == 0


def test_outline_traces_the_mask_border() -> None:
    image = np.zeros((20, 20, 3), np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 1
    outline(image, mask, (200, 0, 0))
    assert image[5, 10, 0] > 100 and image[14, 10, 0] > 100  # on the border
    assert image[10, 10].sum() == 0 and image[0, 0].sum() == 0  # not inside, not outside


def hand_keypoints() -> np.ndarray:
    """A flat hand: fingers fanned upwards from the wrist at (50, 90)."""
    kp = np.zeros((21, 2))
    kp[0] = (50, 90)
    for finger in range(5):
        for slot in range(4):
            kp[1 + 4 * finger + slot] = (20 + 15 * finger, 70 - 12 * slot)
    return kp


def test_compose_frame_places_every_layer() -> None:
    kp2d = hand_keypoints()
    kp3d = np.concatenate([(kp2d - kp2d[0]) / 12.0, np.zeros((21, 1))], axis=1)
    arrays = PredictionArrays(
        frame_index=np.array([0]), time_s=np.zeros(1), crop_boxes=np.array([[50.0, 60.0, 90.0]]),
        kp2d=kp2d[None], confidence=np.ones((1, 21)), kp3d=kp3d[None], mesh=(SQUARE * 2 - [1, 1, 0])[None],
        faces=SQUARE_FACES, camera=np.array([[12.0, 50.0, 90.0]]), fps=10.0, image_size=(160, 120),
    )
    frame = np.full((120, 160, 3), 60, np.uint8)
    out = compose_frame(frame, arrays, 0)
    assert out.shape == frame.shape and (frame == 60).all()  # the input is not drawn on
    # inside the silhouette (a 24 px square around the wrist), away from the skeleton: the tint
    np.testing.assert_allclose(out[99, 59], 0.65 * 60 + 0.35 * np.array([90, 200, 255]), atol=1.5)
    np.testing.assert_array_equal(out[110, 59], [60, 60, 60])  # below it: untouched
    # bones in their finger's colour, sampled between the joint discs
    for b in (1, 6, 18):
        parent, child = BONES[b]
        x, y = np.round(kp2d[parent] + 0.5 * (kp2d[child] - kp2d[parent])).astype(int)
        np.testing.assert_allclose(out[y, x], BONE_COLORS[b], atol=60)
    unsure = PredictionArrays(**{**arrays.__dict__, "confidence": np.where(np.arange(21) == 8, 0.0, 1.0)[None]})
    x, y = np.round(kp2d[7] + 0.5 * (kp2d[8] - kp2d[7])).astype(int)
    assert (compose_frame(frame, unsure, 0)[y, x] == 60).all()  # the unsure index tip's bone is left out
    side = round(120 * 0.3)
    inset = out[2 : 2 + side, 160 - side - 2 : 158]
    assert (inset.reshape(-1, 3) == [32, 32, 32]).all(axis=1).mean() > 0.5  # the 3D view's background
    assert (inset != 32).any()  # … with the skeleton drawn on it
