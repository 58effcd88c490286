"""The shared LightningDataModule: splits, batches, 3D gating and silhouette preparation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_modules.base import HandClipDataModule, deterministic_split
from data_modules.records import VideoRecord


class TinyVideos(HandClipDataModule):
    def __init__(self, root: str, draw=None, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.draw = draw

    @property
    def data_root(self) -> Path:
        return self.root

    def load_videos(self, split: str) -> list[VideoRecord]:
        if split == "train":
            return [self.draw(self.root, "a", frames=4, size=64, seed=1),
                    self.draw(self.root, "b", frames=4, size=64, seed=2, mirror=True)]
        if split in ("val", "test", "predict"):
            return [self.draw(self.root, "c", frames=4, size=64, seed=3)]
        return []


@pytest.fixture
def make(tmp_path, draw):
    def build(**kw) -> TinyVideos:
        args = dict(clip_len=2, clip_stride=2, crop_size=32, heatmap_sigma=1.0, batch_size=2)
        return TinyVideos(str(tmp_path), draw, **(args | kw))

    return build


def test_batches_follow_the_contract_and_hide_train_3d(make):
    dm = make()
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (2, 2, 3, 32, 32)
    assert batch["heatmaps"].shape == (2, 2, 21, 8, 8)
    assert batch["silhouettes"].shape == (2, 2, 1, 32, 32)
    assert set(batch["silhouettes"].unique().tolist()) <= {0.0, 1.0}
    assert batch["frame_index"].dtype == torch.int64 and batch["frame_index"].shape == (2, 2)
    assert isinstance(batch["video"], list) and len(batch["video"]) == 2
    assert "kp3d" not in batch and "true_silhouettes" not in batch
    val = next(iter(dm.val_dataloader()))
    assert val["kp3d"].shape == (2, 2, 21, 3)  # eval batches carry 3D; val clips don't overlap
    assert val["frame_index"].tolist() == [[0, 1], [2, 3]]


def test_serve_3d_in_train(make):
    dm = make(serve_3d_in_train=True, silhouettes=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["kp3d"].shape == (2, 2, 21, 3) and "silhouettes" not in batch


def test_prepare_data_caches_silhouettes(tmp_path, make):
    dm = make()
    assert dm.prepare_silhouettes() == 12  # 3 videos × 4 frames
    assert make().prepare_silhouettes() == 0  # second run reuses every entry
    assert make(crop_size=16).prepare_silhouettes() == 12  # new crop → new cache folder
    assert len(list((tmp_path / "grabcut").iterdir())) == 2


def test_shuffle_is_deterministic_by_seed(make):
    def order(seed):
        dm = make(silhouettes=False, clip_stride=1, batch_size=1, seed=seed)
        return [(b["video"][0], b["frame_index"][0, 0].item()) for b in dm.train_dataloader()]

    assert order(0) == order(0)
    assert sorted(order(0)) == sorted(order(1))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="crop_size"):
        TinyVideos(".", crop_size=30)
    with pytest.raises(ValueError, match="clip_len"):
        TinyVideos(".", clip_len=0)


def test_deterministic_split_is_stable():
    names = [f"v{i}" for i in range(20)]
    keep, held = deterministic_split(names, 0.25, seed=3)
    assert len(held) == 5 and sorted(keep + held) == sorted(names)
    assert deterministic_split(names, 0.25, seed=3) == (keep, held)
    # adding a video never moves an existing one into the held-out set
    _, held_more = deterministic_split(names + ["v99"], 0.25, seed=3)
    assert set(held_more) <= set(held) | {"v99"}
