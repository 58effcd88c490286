"""benchmarks/mean_pose.py: the constant prediction scored by ``tassn test``'s metric code, on hand-made clips."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from mean_pose import score  # noqa: E402
from tassn.hand.normalize import normalize_3d  # noqa: E402
from tassn.hand.skeleton import REF_BONE  # noqa: E402

#: The joint that moves in the hand-made videos (neither the root nor an end of the reference bone).
MOVING = 8
FRAMES = 6


def rest_pose_mm() -> torch.Tensor:
    """A 21×3 pose in mm, 500 mm in front of the camera, reference bone 30 mm."""
    pose = torch.arange(63, dtype=torch.float64).reshape(21, 3) % 7 * 10.0
    pose[:, 2] += 500.0
    pose[REF_BONE[1]] = pose[REF_BONE[0]] + torch.tensor([0.0, 30.0, 0.0], dtype=torch.float64)
    return pose


def clips(offsets: list[float]) -> list[dict]:
    """One video of ``len(offsets)`` frames served as clips of 3: joint MOVING shifted by ``offsets[t]`` mm in x,
    root and reference bone still; 2D keypoints all at (10, 10)."""
    rest = rest_pose_mm()
    kp3d = rest.repeat(len(offsets), 1, 1)
    kp3d[:, MOVING, 0] += torch.tensor(offsets, dtype=torch.float64)
    batches = []
    for start in range(0, len(offsets), 3):
        t = torch.arange(start, min(start + 3, len(offsets)))
        batches.append({"kp3d": kp3d[t][None].float(), "kp2d": torch.full((1, len(t), 21, 2), 10.0),
                        "visible": torch.ones(1, len(t), 21), "video": ["v0"], "frame_index": t[None]})
    return batches


def test_constant_pose_scores_epe_and_accel_equal_to_the_ground_truths_jitter() -> None:
    offsets = [0.0, 4.0, 0.0, 4.0, 0.0, 4.0]  # the moving joint zig-zags: ‖a_gt‖ = 8 mm/frame² on it
    pose = normalize_3d(rest_pose_mm())[0].float()  # the rest pose, exactly right on frames 0, 2, 4
    kp2d = torch.tensor([[13.0, 14.0]]).expand(21, 2)  # 5 px off every label: inside PCK@5
    result = score(pose, kp2d, clips(offsets))
    m = result["metrics"]
    assert m["epe_mm"] == pytest.approx(sum(offsets) / (FRAMES * 21), rel=1e-5)
    assert m["pck2d"] == 1.0 and score(pose, kp2d + 0.1, clips(offsets))["metrics"]["pck2d"] == 0.0
    # root and scale still: the aligned constant pose does not move, so ACCEL is the ground truth's own jitter
    assert m["jitter_mm"] == pytest.approx(0.0, abs=1e-6)
    assert m["jitter_gt_mm"] == pytest.approx(8.0 / 21, rel=1e-5)  # 4 centre frames × 21 joints, one moves 8
    assert m["accel_mm"] == pytest.approx(m["jitter_gt_mm"], rel=1e-6)
    assert m["pa_epe_mm"] > 0.0 and m["st_epe_mm"] > 0.0  # the moved joint is wrong under every alignment
    assert result["pck_curve"]["pck"][-1] == 1.0


def test_constant_pose_follows_a_moving_root_under_the_epe_alignment() -> None:
    batches = clips([0.0] * FRAMES)
    for b in batches:  # the whole hand zig-zags 5 mm in x
        b["kp3d"][..., 0] += 5.0 * (b["frame_index"][..., None] % 2)
    pose = normalize_3d(rest_pose_mm())[0].float()
    m = score(pose, torch.zeros(21, 2), batches)["metrics"]
    assert max(m["epe_mm"], m["pa_epe_mm"], m["st_epe_mm"]) == pytest.approx(0.0, abs=1e-4)
    assert m["jitter_mm"] == pytest.approx(m["jitter_gt_mm"], rel=1e-5) and m["jitter_gt_mm"] == pytest.approx(10.0)
    assert m["accel_mm"] == pytest.approx(0.0, abs=1e-4)
