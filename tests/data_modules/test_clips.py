"""Crop, mirror, intrinsics and heatmap conventions of the clip pipeline, on exact synthetic labels."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from data_modules.clips import (
    ClipDataset,
    CropConfig,
    clip_starts,
    crop_frame,
    gaussian_heatmaps,
    hand_box,
    mirror_intrinsics,
    mirror_matrix,
    project,
    to_heatmap_coords,
    transform_points,
)


def test_heatmap_peak_sits_on_the_keypoint():
    kp = torch.tensor([[[3.0, 5.0], [10.25, 7.75], [0.0, 15.0]]])
    maps = gaussian_heatmaps(kp, 16, sigma=1.5)
    assert maps.shape == (1, 3, 16, 16)
    assert maps[0, 0, 5, 3] == pytest.approx(1.0)
    assert maps[0, 2, 15, 0] == pytest.approx(1.0)
    flat = maps[0, 1].flatten().argmax().item()
    assert divmod(flat, 16) == (8, 10)  # nearest pixel to (x 10.25, y 7.75)
    # a true Gaussian: value at one sigma is exp(-1/2)
    assert maps[0, 0, 5, 3 + 3].item() == pytest.approx(np.exp(-9 / (2 * 1.5**2)), rel=1e-5)


def test_heatmap_of_keypoint_far_outside_is_empty_and_invisible_is_zero():
    kp = torch.tensor([[-40.0, 8.0], [8.0, 8.0]])
    maps = gaussian_heatmaps(kp, 16, sigma=1.0, weight=torch.tensor([1.0, 0.0]))
    assert maps.max() < 1e-30


def test_heatmap_coordinates_follow_pixel_centres():
    assert to_heatmap_coords(np.array([1.5, 253.5])).tolist() == [0.0, 63.0]


def test_crop_round_trip_and_box(tiny_video):
    frame = tiny_video.frames[1]
    crop = CropConfig(size=64, margin=1.5)
    out = crop_frame(frame, mirror=False, crop=crop)
    back = transform_points(np.linalg.inv(out.A), out.kp2d)
    np.testing.assert_allclose(back, frame.kp2d, atol=1e-9)
    # hand box centre lands on the crop centre; its longer side spans size / margin px
    cx, cy, side = hand_box(out.kp2d)
    assert (cx, cy) == pytest.approx((31.5, 31.5), abs=1e-9)
    assert side == pytest.approx(64 / 1.5, rel=1e-9)


def test_crop_intrinsics_project_3d_onto_crop_keypoints(tiny_video):
    for mirror in (False, True):
        out = crop_frame(tiny_video.frames[2], mirror=mirror, crop=CropConfig(size=64))
        err = np.abs(project(out.K, out.kp3d) - out.kp2d).max()
        assert err < 1e-6, (mirror, err)


def test_mirroring_is_consistent_between_2d_3d_and_K():
    rng = np.random.default_rng(1)
    X = rng.uniform([-80, -80, 300], [80, 80, 600], (21, 3))
    K = np.array([[500.0, 0.7, 300.0], [0.0, 505.0, 250.0], [0.0, 0.0, 1.0]])
    width = 640
    kp2d_mirrored = transform_points(mirror_matrix(width), project(K, X))
    np.testing.assert_allclose(project(mirror_intrinsics(K, width), X * [-1, 1, 1]), kp2d_mirrored, atol=1e-9)
    assert kp2d_mirrored[:, 0] == pytest.approx(width - 1 - project(K, X)[:, 0])


def test_mirrored_crop_flips_the_image_content(tiny_video):
    frame = tiny_video.frames[0]
    crop = CropConfig(size=64)
    plain = crop_frame(frame, mirror=False, crop=crop, with_true_mask=True)
    flipped = crop_frame(frame, mirror=True, crop=crop, with_true_mask=True)
    # same box width, mirrored about the crop's vertical centre line
    np.testing.assert_allclose(flipped.kp2d[:, 0], 63 - plain.kp2d[:, 0], atol=1e-9)
    np.testing.assert_allclose(flipped.kp2d[:, 1], plain.kp2d[:, 1], atol=1e-9)
    iou = (plain.true_mask[:, ::-1] & flipped.true_mask).sum() / (plain.true_mask[:, ::-1] | flipped.true_mask).sum()
    assert iou > 0.95
    np.testing.assert_allclose(flipped.kp3d[:, 0], -plain.kp3d[:, 0])


def test_image_content_follows_the_keypoints(tiny_video):
    """The drawn limbs (skin colour) sit under the cropped keypoints."""
    out = crop_frame(tiny_video.frames[3], mirror=False, crop=CropConfig(size=64), with_true_mask=True)
    ij = np.round(out.kp2d[:, ::-1]).astype(int).clip(0, 63)
    assert out.true_mask[ij[:, 0], ij[:, 1]].mean() > 0.9
    assert (np.abs(out.image[ij[:, 0], ij[:, 1]].astype(float) - [205, 150, 120]).max(axis=1) < 40).mean() > 0.8


def test_clip_starts():
    assert clip_starts(10, 4, 3) == [0, 3, 6]
    assert clip_starts(10, 4, 1, frame_step=2) == [0, 1, 2, 3]
    assert clip_starts(3, 4, 1) == []
    with pytest.raises(ValueError):
        clip_starts(10, 0, 1)


def test_clip_dataset_items_follow_the_batch_contract(tiny_video):
    ds = ClipDataset([tiny_video], clip_len=3, clip_stride=1, crop=CropConfig(size=32), heatmap_sigma=1.0,
                     serve_3d=True, silhouettes=lambda v, f, c: c.true_mask if c.true_mask is not None else
                     np.zeros((32, 32), np.uint8))
    assert len(ds) == 2
    item = ds[1]
    assert item["frames"].shape == (3, 3, 32, 32) and 0 <= item["frames"].min() and item["frames"].max() <= 1
    assert item["kp2d"].shape == (3, 21, 2)
    assert item["heatmaps"].shape == (3, 21, 8, 8)
    assert item["K"].shape == (3, 3, 3)
    assert item["visible"].shape == (3, 21)
    assert item["kp3d"].shape == (3, 21, 3)
    assert item["silhouettes"].shape == (3, 1, 32, 32)
    assert item["true_silhouettes"].shape == (3, 1, 32, 32)
    assert item["frame_index"].tolist() == [1, 2, 3] and item["video"] == "clip"
    # heatmap peak at the keypoint (¼ resolution)
    kp_h = to_heatmap_coords(item["kp2d"][0, 9])
    peak = divmod(item["heatmaps"][0, 9].flatten().argmax().item(), 8)
    assert peak == (round(kp_h[1].item()), round(kp_h[0].item()))

    no3d = ClipDataset([tiny_video], clip_len=3, clip_stride=1, crop=CropConfig(size=32), serve_3d=False)
    assert {"kp3d", "mesh3d", "true_silhouettes", "silhouettes"}.isdisjoint(no3d[0])


def test_corrupt_frame_skips_the_clip_with_a_warning(tiny_video, caplog):
    bad = tiny_video.frames[0].image_path
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = ClipDataset([tiny_video], clip_len=2, clip_stride=1, crop=CropConfig(size=32))
    with caplog.at_level(logging.WARNING):
        item = ds[0]
    assert item["frame_index"].tolist() == [1, 2]  # the next readable clip
    assert str(bad) in caplog.text and "1 clip(s) skipped" in caplog.text
    assert ds.skipped == 1
    assert item["frames"].abs().sum() > 0


def test_dataset_bbox_sets_the_crop(tiny_video):
    frame = tiny_video.frames[0]
    frame.bbox = (10.0, 20.0, 50.0, 40.0)  # centre (30, 30), longer side 40
    out = crop_frame(frame, mirror=False, crop=CropConfig(size=40, margin=1.0))
    np.testing.assert_allclose(out.A[:2, :2], np.eye(2))
    np.testing.assert_allclose(transform_points(out.A, np.array([[30.0, 30.0]])), [[19.5, 19.5]])
    mirrored = crop_frame(frame, mirror=True, crop=CropConfig(size=40, margin=1.0))
    # the box is mirrored with the image: x centre 95 − 30 = 65 in the flipped frame
    np.testing.assert_allclose(transform_points(mirrored.A, np.array([[30.0, 30.0]])), [[19.5, 19.5]])


def test_gapless_starts_leave_out_clips_across_a_gap():
    from data_modules.clips import gapless_starts

    indices = [0, 1, 2, 3, 4, 6, 7, 8]  # frame 5 missing
    assert gapless_starts(indices, clip_len=3, stride=1) == [0, 1, 2, 5]
    assert gapless_starts(indices, clip_len=8, stride=1) == []
    assert gapless_starts(list(range(8)), clip_len=8, stride=1) == [0]
    assert gapless_starts([0, 1, 2, 3, 5, 6, 7, 8], clip_len=2, stride=1, frame_step=2) == [0, 1, 4, 5]


def test_crop_jitter_moves_the_crop_and_its_labels_together(tiny_video):
    def true_mask(video, frame, cropped):
        return cropped.true_mask

    kwargs = dict(clip_len=2, clip_stride=1, crop=CropConfig(size=32), serve_3d=True, silhouettes=true_mask)
    plain = ClipDataset([tiny_video], **kwargs)
    off = ClipDataset([tiny_video], **kwargs, crop_jitter=0.0, crop_scale_jitter=0.0)
    assert all(torch.equal(plain[0][k], off[0][k]) for k in ("frames", "kp2d", "K", "silhouettes"))  # off: as before
    jittered = ClipDataset([tiny_video], **kwargs, crop_jitter=0.2, crop_scale_jitter=0.4)
    torch.manual_seed(0)
    centres, extents = [], []
    for _ in range(12):
        item = jittered[0]
        kp = item["kp2d"].double()
        # the crop camera moves with the crop: kp3d projects onto the jittered kp2d
        uvw = torch.einsum("tij,tkj->tki", item["K"].double(), item["kp3d"].double())
        torch.testing.assert_close(uvw[..., :2] / uvw[..., 2:], kp, atol=1e-3, rtol=0)
        # the image and the silhouette move with it too: the keypoints sit on the skin and inside the mask
        ij = kp[0].round().long().flip(-1)
        inside = ((ij >= 0) & (ij < 32)).all(dim=1)
        pixels = item["frames"][0].permute(1, 2, 0)[ij[inside, 0], ij[inside, 1]] * 255
        assert ((pixels - torch.tensor([205.0, 150.0, 120.0])).abs().amax(dim=1) < 40).float().mean() > 0.7
        assert item["silhouettes"][0, 0][ij[inside, 0], ij[inside, 1]].mean() > 0.8
        assert torch.equal(item["silhouettes"], item["true_silhouettes"])
        lo, hi = kp[0].amin(dim=0), kp[0].amax(dim=0)
        centres.append(((lo + hi) / 2 - 15.5).abs().max().item())
        extents.append((hi - lo).max().item())
    centred = plain[0]["kp2d"][0]
    extent = (centred.amax(dim=0) - centred.amin(dim=0)).max().item()
    assert max(centres) > 2.0 and max(centres) <= 0.2 * 32 * 1.4 + 0.5  # off-centre, by at most the jitter
    assert min(extents) < 0.9 * extent and max(extents) > 1.1 * extent  # smaller and larger hands
    assert max(extents) <= 1.4 * extent + 1e-3 and min(extents) >= extent / 1.4 - 1e-3
    with pytest.raises(ValueError, match="crop_jitter"):
        ClipDataset([tiny_video], **kwargs, crop_jitter=0.6)


@pytest.mark.parametrize("options", [{"crop_jitter": 0.1, "crop_scale_jitter": 0.2},
                                     {"crop_rotation": 30.0, "colour_jitter": 0.2, "distractors": 3}])
def test_augmentations_are_training_options_only(tiny_video, tmp_path, options):
    from data_modules.synthetic import SyntheticDataModule

    module = SyntheticDataModule(root=str(tmp_path), silhouettes=False, **options)
    module.load_videos = lambda split: [tiny_video]
    train, val = module.make_dataset("train"), module.make_dataset("val")
    assert {k: getattr(train, k) for k in options} == options
    assert all(getattr(val, k) == 0.0 for k in options)
    default = SyntheticDataModule(root=str(tmp_path))
    assert all(getattr(default, k) == 0.0 for k in options)  # off by default


def test_crop_rotation_turns_the_image_and_its_keypoints_together(tiny_video):
    kwargs = dict(clip_len=2, clip_stride=1, crop=CropConfig(size=32))
    plain = ClipDataset([tiny_video], **kwargs)[0]
    turned = ClipDataset([tiny_video], **kwargs, crop_rotation=90.0)
    torch.manual_seed(0)
    centre = torch.tensor([15.5, 15.5], dtype=torch.float64)
    radius = (plain["kp2d"][0].double() - centre).norm(dim=1)
    angles = []
    for _ in range(8):
        item = turned[0]
        kp = item["kp2d"].double()
        # a turn about the crop's centre keeps every keypoint's distance to it
        torch.testing.assert_close((kp[0] - centre).norm(dim=1), radius, atol=1e-3, rtol=0)
        # the image turned with them: the keypoints still sit on the skin
        ij = kp[0].round().long().flip(-1)
        inside = ((ij >= 0) & (ij < 32)).all(dim=1)
        pixels = item["frames"][0].permute(1, 2, 0)[ij[inside, 0], ij[inside, 1]] * 255
        assert ((pixels - torch.tensor([205.0, 150.0, 120.0])).abs().amax(dim=1) < 40).float().mean() > 0.7
        before, after = plain["kp2d"][0, 9].double() - centre, kp[0, 9] - centre
        angles.append(float(torch.atan2(after[1], after[0]) - torch.atan2(before[1], before[0])))
    angles = [(a + np.pi) % (2 * np.pi) - np.pi for a in angles]
    assert max(abs(a) for a in angles) > np.deg2rad(20) and max(abs(a) for a in angles) <= np.deg2rad(90) + 1e-3
    with pytest.raises(ValueError, match="2D labels"):
        ClipDataset([tiny_video], **kwargs, serve_3d=True, crop_rotation=10.0)


def test_colour_jitter_changes_a_clip_once_and_keeps_its_labels(tiny_video):
    kwargs = dict(clip_len=2, clip_stride=1, crop=CropConfig(size=32))
    plain = ClipDataset([tiny_video], **kwargs)[0]
    torch.manual_seed(0)
    item = ClipDataset([tiny_video], **kwargs, colour_jitter=0.3)[0]
    assert torch.equal(item["kp2d"], plain["kp2d"]) and torch.equal(item["heatmaps"], plain["heatmaps"])
    assert not torch.allclose(item["frames"], plain["frames"])
    assert item["frames"].min() >= 0 and item["frames"].max() <= 1
    # one change for the whole clip: a pixel's colour maps the same way in both frames
    from data_modules.clips import colour_jittered

    torch.manual_seed(1)
    frames = torch.full((2, 3, 4, 4), 0.5)
    out = colour_jittered(frames, 0.3)
    assert torch.equal(out[0], out[1])
