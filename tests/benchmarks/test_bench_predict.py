"""The video prediction benchmark's scoring and verdict (benchmarks/bench_predict.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_predict import TRAINING_MARGIN, GroundTruthCrop, extent, find_test_folder, score, summarise  # noqa: E402


def test_score_is_mean_error_and_pck_in_frame_pixels() -> None:
    truth = np.zeros((2, 21, 2))
    pred = truth.copy()
    pred[0, :, 0] = 3.0  # 3 px off: inside PCK@5
    pred[1, :, 1] = 8.0  # 8 px off: outside
    assert score(pred, truth, 5.0) == {"error_px": pytest.approx(5.5), "pck": pytest.approx(0.5)}


def test_summary_fails_the_goal_on_a_collapse_or_a_large_ratio() -> None:
    row = {"frames": 10, "tracked_error_px": 6.0, "gt_crop_error_px": 5.0, "tracked_pck": 0.5, "gt_crop_pck": 0.6,
           "min_side": 40.0, "max_side": 128.0, "min_side_ratio": 0.8, "collapsed": False}
    assert summarise([row])["goal_met"] and summarise([row])["ratio"] == pytest.approx(1.2)
    assert not summarise([row, row | {"collapsed": True}])["goal_met"]
    assert not summarise([row | {"tracked_error_px": 6.5}])["goal_met"]


def test_ground_truth_crop_is_the_training_crop() -> None:
    import inspect

    from data_modules.synthetic import SyntheticDataModule

    # the synthetic videos train at the data module's default margin (the experiments' configs keep it)
    assert inspect.signature(SyntheticDataModule).parameters["crop_margin"].default == TRAINING_MARGIN
    kp = np.array([[[10.0, 20.0], [30.0, 20.0], [20.0, 60.0]]])
    box = GroundTruthCrop(kp).box(0, 128, 128)
    assert (box.cx, box.cy, box.size) == pytest.approx((20.0, 40.0, 40.0 * TRAINING_MARGIN))
    assert extent(kp).tolist() == [40.0]


def test_summary_reports_the_median_extent_ratio() -> None:
    row = {"frames": 2, "tracked_error_px": 6.0, "gt_crop_error_px": 5.0, "tracked_pck": 0.5, "gt_crop_pck": 0.6,
           "min_side": 40.0, "max_side": 128.0, "min_side_ratio": 0.8, "collapsed": False}
    rows = [row | {"extent_ratios": [0.8, 0.9]}, row | {"extent_ratios": [1.0]}]
    assert summarise(rows)["extent_scale"] == pytest.approx(0.9)


def test_find_test_folder_names_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="target-test"):
        find_test_folder(tmp_path)
    (tmp_path / "target-test-abc").mkdir()
    (tmp_path / "target-test-abc" / "annotations.npz").write_bytes(b"")
    assert find_test_folder(tmp_path).name == "target-test-abc"
    with pytest.raises(FileNotFoundError, match="target-val"):
        find_test_folder(tmp_path, "val")
