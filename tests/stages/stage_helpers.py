"""Sizes and helpers shared by the stage, CLI and config tests."""

from __future__ import annotations

#: the smallest PME the package builds: 32² crops, 8×8 heatmaps, 8 features.
TINY_NET: dict = {
    "flow": "none",
    "image_size": 32,
    "hourglass_features": 8,
    "hourglass_stacks": 2,
    "hourglass_depth": 1,
    "hourglass_modules": 1,
    "hourglass_stem_features": 8,
    "encoder_output_size": 4,
    "mesh_fc_hidden": 16,
    "mesh_channels": [8, 8, 3],
    "pose_channels": [8, 8],
    "pose_fc_hidden": 16,
}

#: the smallest synthetic target videos: 2 videos of 6 frames per split, 32² frames and crops.
TINY_DATA: dict = {
    "num_train_videos": 2,
    "num_val_videos": 2,
    "num_test_videos": 2,
    "frames_per_video": 6,
    "image_size": 32,
    "crop_size": 32,
    "batch_size": 2,
    "clip_len": 3,
    "clip_stride": 3,
    "grabcut_iterations": 1,
}


def first_batch(datamodule, split: str = "train") -> dict:
    datamodule.prepare_data()
    datamodule.setup("fit" if split in ("train", "val") else split)
    return next(iter(getattr(datamodule, f"{split}_dataloader")()))
