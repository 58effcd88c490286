"""The forward/backward confidence and how its ranking of errors is measured (AUROC, plot), on built inputs."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from tassn.predict.confidence import chain_depth, forward_backward_confidence
from tassn.predict.confidence_eval import confidence_auroc, error_by_confidence_bin, plot_error_vs_confidence


def test_agreement_and_peaks_make_the_confidence() -> None:
    pose = np.zeros((2, 21, 3))
    reverse = pose.copy()
    reverse[0, 3, 0] = 0.5  # frame 0, joint 3: the passes disagree by exactly τ
    reverse[1, 4, 2] = 2.0  # frame 1, joint 4: by 4τ
    peaks = np.ones((2, 21))
    peaks[1, 5] = 0.4  # a weak heatmap, passes agreeing
    peaks[1, 6] = 1.7  # peaks above 1 are clamped
    conf, disagreement = forward_backward_confidence(pose, reverse, peaks, peaks, scale=0.5)
    assert conf.shape == disagreement.shape == (2, 21)
    assert disagreement[0, 3] == pytest.approx(0.5) and disagreement[1, 4] == pytest.approx(2.0)
    assert conf[0, 0] == pytest.approx(1.0) and conf[1, 6] == pytest.approx(1.0)
    assert conf[0, 3] == pytest.approx(math.exp(-0.5))
    assert conf[1, 4] == pytest.approx(math.exp(-8.0))
    assert conf[1, 5] == pytest.approx(0.4)
    # the peak is the mean of the two passes'
    conf2, _ = forward_backward_confidence(pose, pose, np.full((2, 21), 0.2), np.full((2, 21), 0.6))
    assert np.allclose(conf2, 0.4)


def test_the_chain_prior_counts_bones_from_the_wrist() -> None:
    depth = chain_depth()
    assert depth[0] == 0 and depth.tolist() == [0] + [1, 2, 3, 4] * 5  # 5 fingers of 4 joints, MCP to tip
    pose, peaks = np.zeros((3, 21, 3)), np.full((3, 21), 0.8)
    plain, _ = forward_backward_confidence(pose, pose, peaks, peaks)
    prior, _ = forward_backward_confidence(pose, pose, peaks, peaks, chain_decay=0.5)
    np.testing.assert_allclose(prior, plain * 0.5 ** depth)  # the wrist keeps its confidence, a tip 1/16 of it
    with pytest.raises(ValueError, match="chain decay"):
        forward_backward_confidence(pose, pose, peaks, peaks, chain_decay=0.0)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="F×21×3"):
        forward_backward_confidence(np.zeros((2, 21, 3)), np.zeros((3, 21, 3)), np.ones((2, 21)), np.ones((2, 21)))
    with pytest.raises(ValueError, match="heatmap peaks"):
        forward_backward_confidence(np.zeros((2, 21, 3)), np.zeros((2, 21, 3)), np.ones((2, 20)), np.ones((2, 20)))
    with pytest.raises(ValueError, match="positive"):
        forward_backward_confidence(np.zeros((1, 21, 3)), np.zeros((1, 21, 3)), np.ones((1, 21)), np.ones((1, 21)), 0)


def test_auroc_of_known_rankings() -> None:
    error = np.array([5.0, 10.0, 15.0, 25.0, 30.0, 40.0])  # the last three are wrong (> 20 mm)
    assert confidence_auroc(np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]), error) == pytest.approx(1.0)
    assert confidence_auroc(np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), error) == pytest.approx(0.0)
    # one wrong joint ranked above one right joint: 8 of 9 (wrong, right) pairs in order
    assert confidence_auroc(np.array([0.9, 0.8, 0.4, 0.5, 0.2, 0.1]), error) == pytest.approx(8 / 9)
    assert confidence_auroc(np.full(6, 0.5), error) == pytest.approx(0.5)  # ties: chance
    rng = np.random.default_rng(0)
    e = rng.uniform(0, 40, 4000)
    assert confidence_auroc(rng.uniform(0, 1, 4000), e) == pytest.approx(0.5, abs=0.03)
    assert confidence_auroc(np.exp(-e / 20) + rng.normal(0, 0.05, 4000), e) > 0.9
    with pytest.raises(ValueError, match="both sides of 20"):
        confidence_auroc(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="one value per joint"):
        confidence_auroc(np.ones(3), np.ones(4))


def test_plot_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    error = rng.uniform(0, 50, (30, 21))
    path = plot_error_vs_confidence(np.exp(-error / 25), error, tmp_path / "images" / "conf.png", title="test")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.std() > 5


def test_error_by_confidence_bin_of_hand_made_joints() -> None:
    confidence = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    error = np.array([40.0, 30.0, 25.0, 10.0, 15.0, 5.0, 4.0, 2.0])
    low, high = error_by_confidence_bin(confidence, error, bins=2)
    assert (low["joints"], high["joints"]) == (4, 4)
    assert low["error_median_mm"] == pytest.approx(27.5) and high["error_median_mm"] == pytest.approx(4.5)
    assert low["wrong_fraction"] == pytest.approx(0.75) and high["wrong_fraction"] == 0.0
    assert low["confidence_mean"] == pytest.approx(0.25) and high["confidence_low"] == pytest.approx(0.5)
    (only,) = error_by_confidence_bin(np.full(5, 0.5), np.arange(5.0), bins=4)  # one tied confidence: one group
    assert only["joints"] == 5 and only["error_mean_mm"] == pytest.approx(2.0)
    assert error_by_confidence_bin(np.zeros(0), np.zeros(0)) == []
