"""GrabCut silhouettes: seeding, accuracy on frames with known masks, and the on-disk cache."""

from __future__ import annotations

import os

import cv2
import numpy as np
from data_modules.clips import CropConfig, crop_frame
from data_modules.grabcut import GrabCutCache, GrabCutConfig, grabcut_silhouette, initial_mask, mask_iou


def test_initial_mask_labels(tiny_video):
    out = crop_frame(tiny_video.frames[0], mirror=False, crop=CropConfig(size=64))
    m = initial_mask((64, 64), out.kp2d, None, GrabCutConfig())
    assert m[0, 0] == cv2.GC_BGD  # the crop's corner is outside the hand box
    wrist = np.round(out.kp2d[0]).astype(int)
    assert m[wrist[1], wrist[0]] == cv2.GC_FGD
    assert {cv2.GC_BGD, cv2.GC_PR_BGD, cv2.GC_PR_FGD, cv2.GC_FGD} <= set(np.unique(m).tolist())


def test_grabcut_recovers_drawn_hand(tiny_video):
    ious = []
    for frame in tiny_video.frames:
        out = crop_frame(frame, mirror=False, crop=CropConfig(size=64), with_true_mask=True)
        ious.append(mask_iou(grabcut_silhouette(out.image, out.kp2d), out.true_mask))
    assert np.mean(ious) > 0.7, ious


def test_grabcut_is_deterministic(tiny_video):
    out = crop_frame(tiny_video.frames[1], mirror=False, crop=CropConfig(size=64))
    a = grabcut_silhouette(out.image, out.kp2d)
    b = grabcut_silhouette(out.image, out.kp2d)
    assert np.array_equal(a, b)


def test_cache_reuses_and_recomputes_corrupt_entries(tiny_video, tmp_path):
    cache = GrabCutCache(tmp_path / "grabcut", "tiny")
    out = crop_frame(tiny_video.frames[0], mirror=False, crop=CropConfig(size=64))
    first = cache.get("clip", 0, out.image, out.kp2d, None)
    path = cache.path("clip", 0)
    assert cache.computed == 1 and path.is_file()
    mtime = path.stat().st_mtime_ns

    again = GrabCutCache(tmp_path / "grabcut", "tiny")
    assert np.array_equal(again.get("clip", 0, out.image, out.kp2d, None), first)
    assert again.computed == 0 and path.stat().st_mtime_ns == mtime

    path.write_bytes(b"garbage")
    fixed = GrabCutCache(tmp_path / "grabcut", "tiny")
    assert np.array_equal(fixed.get("clip", 0, out.image, out.kp2d, None), first)
    assert fixed.computed == 1
    # a wrongly sized entry is not trusted either
    cv2.imwrite(str(path), np.zeros((10, 10), np.uint8))
    assert fixed.load("clip", 0, (64, 64)) is None
    # no temporary files are left behind
    assert not [p for p in os.listdir(path.parent) if p.startswith(".")]


def test_changed_key_uses_a_new_folder(tmp_path):
    a = GrabCutCache(tmp_path, "size=64")
    b = GrabCutCache(tmp_path, "size=32")
    assert a.dir != b.dir and a.dir.parent == b.dir.parent


def test_mask_iou():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    a[:2] = 1
    b[1:3] = 1
    assert mask_iou(a, b) == 4 / 12
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_truncated_cache_entry_is_recomputed_with_a_warning_naming_it(tiny_video, tmp_path, caplog):
    cache = GrabCutCache(tmp_path / "grabcut", "tiny")
    out = crop_frame(tiny_video.frames[0], mirror=False, crop=CropConfig(size=64))
    first = cache.get("clip", 0, out.image, out.kp2d, None)
    path = cache.path("clip", 0)
    good = path.read_bytes()
    path.write_bytes(good[:-12])  # the end of the file (IEND) cut off: the pixels alone would still decode
    fixed = GrabCutCache(tmp_path / "grabcut", "tiny")
    with caplog.at_level("WARNING", logger="data_modules.grabcut"):
        assert np.array_equal(fixed.get("clip", 0, out.image, out.kp2d, None), first)
    assert fixed.computed == 1 and path.read_bytes() == good
    assert str(path) in caplog.text and "truncated" in caplog.text
