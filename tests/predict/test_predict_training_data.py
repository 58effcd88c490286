"""Prediction and adaptation crop and draw targets as the checkpoint's training data did, unless told otherwise."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from predict_testdata import stage_checkpoint
from test_predict_adapt import BOX, TINY

from tassn.predict.adapt import ADAPT_JSON, ADAPTED_CKPT, adapt_video
from tassn.predict.model import DEFAULT_CROP_MARGIN, load_model, training_data
from tassn.predict.runner import predict_video

RECORDED = {"crop_size": 64, "crop_margin": 1.3, "heatmap_sigma": 1.25}
QUICK = dict(mesh_format="none", overlay=False, progress=False, max_frames=4)


def settings(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["settings"]


def test_training_data_keeps_positive_numbers_only() -> None:
    assert training_data({}) == {}
    assert training_data({"datamodule_hyper_parameters": "1.4"}) == {}
    odd = {"crop_margin": "1.4", "heatmap_sigma": -1.0, "crop_size": True}
    assert training_data({"datamodule_hyper_parameters": odd}) == {}
    assert training_data({"datamodule_hyper_parameters": {"crop_margin": math.inf, "heatmap_sigma": math.nan}}) == {}
    assert training_data({"datamodule_hyper_parameters": {**RECORDED, "data_root": "/x"}}) == RECORDED


def test_predict_crops_with_the_recorded_margin(blob_folder: Path, tmp_path: Path, tiny_net_config: dict) -> None:
    recorded = stage_checkpoint(tmp_path / "recorded.ckpt", tiny_net_config, training_data=RECORDED)
    plain = stage_checkpoint(tmp_path / "plain.ckpt", tiny_net_config)
    assert load_model(recorded, device="cpu").crop_margin == 1.3
    assert load_model(plain, device="cpu").crop_margin == DEFAULT_CROP_MARGIN
    assert settings(predict_video(blob_folder, recorded, tmp_path / "a", **QUICK))["crop_margin"] == 1.3
    assert settings(predict_video(blob_folder, plain, tmp_path / "b", **QUICK))["crop_margin"] == DEFAULT_CROP_MARGIN
    given = predict_video(blob_folder, recorded, tmp_path / "c", crop_margin=1.7, **QUICK)
    assert settings(given)["crop_margin"] == 1.7


def test_adapt_draws_pseudo_labels_at_the_training_sigma(blob_folder: Path, tmp_path: Path,
                                                         tiny_net_config: dict) -> None:
    recorded = stage_checkpoint(tmp_path / "recorded.ckpt", tiny_net_config, training_data=RECORDED)
    out = adapt_video(blob_folder, recorded, tmp_path / "adapted", **TINY)
    report = json.loads((out / ADAPT_JSON).read_text())["settings"]
    assert report["heatmap_sigma"] == 1.25 and report["crop_margin"] == 1.3
    # the adapted checkpoint keeps the record, so adapting or predicting from it again crops the same way
    raw = torch.load(out / ADAPTED_CKPT, map_location="cpu", weights_only=True)
    assert raw["datamodule_hyper_parameters"] == RECORDED

    # without a record, the network's own feedback width is the training targets' (the CLI links the two)
    plain = stage_checkpoint(tmp_path / "plain.ckpt", tiny_net_config)
    sigma = load_model(plain, device="cpu").net.feedback_sigma
    out = adapt_video(blob_folder, plain, tmp_path / "plain-adapted", **TINY)
    assert json.loads((out / ADAPT_JSON).read_text())["settings"]["heatmap_sigma"] == sigma
    with pytest.raises(ValueError, match="heatmap_sigma"):
        adapt_video(blob_folder, plain, tmp_path / "bad", **{**TINY, "heatmap_sigma": 0.0})


def test_adapt_cli_passes_sigma_and_loss_weights(blob_folder: Path, tmp_path: Path, tiny_ckpt: Path) -> None:
    from tassn.predict.adapt_main import main

    x0, y0, x1, y1 = BOX
    code = main([
        "--video", str(blob_folder), "--ckpt", str(tiny_ckpt), "--out", str(tmp_path / "cli"), "--steps", "2",
        "--crop", "box", "--box", str(x0), str(y0), str(x1), str(y1), "--min-confidence", "0", "--min-joints", "0",
        "--collapse-fraction", "0", "--heatmap-sigma", "1.5", "--lambda-c-pose", "2", "--lambda-c-mesh", "0",
        "--lambda-h", "3", "--lambda-s", "0.5", "--mesh-format", "none", "--no-overlay", "--quiet",
    ])
    assert code == 0
    report = json.loads((tmp_path / "cli" / ADAPT_JSON).read_text())["settings"]
    assert (report["heatmap_sigma"], report["lambda_c_pose"], report["lambda_c_mesh"], report["lambda_h"],
            report["lambda_s"]) == (1.5, 2.0, 0.0, 3.0, 0.5)
