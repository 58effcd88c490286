from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_modules.video import VideoDataModule
from predict_testdata import FRAMES, blob_frames

from tassn.predict.hand_crop import CropBox


def test_clips_cover_every_frame_once(blob_folder: Path) -> None:
    dm = VideoDataModule(str(blob_folder), box=[10.0, 12.0, 50.0, 52.0], clip_len=3, crop_size=32, batch_size=2)
    batches = list(dm.predict_dataloader())
    assert [b["frames"].shape for b in batches] == [(2, 3, 3, 32, 32), (1, 3, 3, 32, 32)]
    index = torch.cat([b["frame_index"] for b in batches])
    valid = torch.cat([b["valid"] for b in batches])
    assert index[valid].tolist() == list(range(FRAMES))
    assert index[~valid].tolist() == [FRAMES - 1]  # the last clip is padded with its last frame
    np.testing.assert_allclose(batches[0]["crop_box"][0, 0].numpy(), [30.0, 32.0, 40.0])
    assert batches[0]["video"] == ["frames", "frames"]
    # the crops are the training pipeline's crops of the frames
    expected = CropBox(30.0, 32.0, 40.0).cut(blob_frames()[4], 32)
    got = (batches[0]["frames"][1, 1].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(got, expected)


def test_left_hand_crops_are_mirrored(blob_folder: Path) -> None:
    right = next(iter(VideoDataModule(str(blob_folder), clip_len=2, crop_size=32).predict_dataloader()))
    left = next(iter(VideoDataModule(str(blob_folder), clip_len=2, crop_size=32, left_hand=True).predict_dataloader()))
    assert torch.equal(left["frames"], right["frames"].flip(-1))
    assert left["mirrored"].tolist() == [True] and right["mirrored"].tolist() == [False]


def test_two_workers_serve_each_clip_once(blob_video: Path) -> None:
    dm = VideoDataModule(str(blob_video), clip_len=2, crop_size=32, batch_size=1, num_workers=2)
    index = sorted(i for b in dm.predict_dataloader() for i in b["frame_index"][b["valid"]].tolist())
    assert index == list(range(FRAMES))


def test_predict_only_and_clear_errors(tmp_path: Path, blob_video: Path) -> None:
    with pytest.raises(ValueError, match="tassn predict --video"):
        VideoDataModule(str(blob_video), crop="track")
    with pytest.raises(ValueError, match="needs a box"):
        VideoDataModule(str(blob_video), crop="box")
    dm = VideoDataModule(str(blob_video))
    with pytest.raises(ValueError, match="only `predict`"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="only `predict`"):
        dm.train_dataloader()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        VideoDataModule(str(empty)).setup("predict")
