"""Forward kinematics: rest skeleton, known poses, limits, shape, sampling, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from tassn.hand.kinematics import (
    ANGLE_LIMITS,
    ARTICULATED,
    CANONICAL_HAND_LENGTH,
    CANONICAL_REST,
    HandPose,
    HandShape,
    PoseRanges,
    clamp_angles,
    forward_kinematics,
    random_pose,
)
from tassn.hand.skeleton import BONES, JOINT_NAMES, finger_joints

J = JOINT_NAMES.index


def _row(joint: str) -> int:
    return ARTICULATED.index(J(joint))


def test_rest_pose_reproduces_the_rest_skeleton_and_its_bone_lengths() -> None:
    joints, transforms = forward_kinematics(HandPose.zeros(2))
    assert joints.shape == (2, 21, 3) and transforms.shape == (2, 21, 4, 4)
    torch.testing.assert_close(joints[1], CANONICAL_REST.joints, atol=1e-4, rtol=0)
    lengths = {(a, b): float((joints[0, b] - joints[0, a]).norm()) for a, b in BONES}
    assert lengths[(J("middle_mcp"), J("middle_pip"))] == pytest.approx(46.0, abs=1e-3)
    assert lengths[(J("index_pip"), J("index_dip"))] == pytest.approx(25.0, abs=1e-3)
    assert lengths[(J("thumb_mcp"), J("thumb_pip"))] == pytest.approx(44.0, abs=1e-3)
    # realistic size: wrist → middle tip 180–190 mm, palm facing the camera with fingers up (−y), thumb at +x
    assert 180.0 <= CANONICAL_HAND_LENGTH <= 190.0
    assert joints[0, J("middle_tip"), 1] < -180.0
    assert joints[0, J("thumb_tip"), 0] > joints[0, J("index_tip"), 0] > joints[0, J("little_tip"), 0]
    # frames are rotations and sit on their joints
    rot = transforms[0, :, :3, :3]
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), torch.eye(3).expand(21, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(transforms[0, :, :3, 3], joints[0])


def test_index_mcp_flexion_of_90_degrees_points_the_finger_at_the_camera() -> None:
    pose = HandPose.zeros(1)
    pose.angles[0, _row("index_mcp"), 0] = math.pi / 2
    joints, _ = forward_kinematics(pose)
    mcp = CANONICAL_REST.joints[J("index_mcp")]
    finger = 43.0 + 25.0 + 23.0
    torch.testing.assert_close(
        joints[0, J("index_tip")], mcp + torch.tensor([0.0, 0.0, -finger]), atol=1e-3, rtol=0
    )
    # the other fingers did not move
    torch.testing.assert_close(
        joints[0, J("middle_tip")], CANONICAL_REST.joints[J("middle_tip")], atol=1e-4, rtol=0
    )


def test_abduction_twist_global_rotation_and_translation() -> None:
    pose = HandPose.zeros(3)
    pose.angles[0, _row("middle_mcp"), 1] = math.radians(15)  # towards the thumb
    pose.angles[1, _row("middle_mcp"), 2] = math.radians(5)  # twist keeps a straight finger in place
    pose.global_rot[2] = torch.tensor([0.0, 0.0, math.pi / 2])
    pose.trans[2] = torch.tensor([10.0, -20.0, 400.0])
    joints, _ = forward_kinematics(pose)
    rest = CANONICAL_REST.joints
    assert joints[0, J("middle_tip"), 0] > rest[J("middle_tip"), 0] + 20.0
    torch.testing.assert_close(joints[1], rest, atol=1e-4, rtol=0)
    rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(joints[2], rest @ rz.T + torch.tensor([10.0, -20.0, 400.0]), atol=1e-3, rtol=0)


def test_flexion_of_every_finger_moves_its_tip_towards_the_palm_side() -> None:
    pose = HandPose.zeros(1)
    for row in range(len(ARTICULATED)):
        pose.angles[0, row, 0] = math.radians(30)
    joints, _ = forward_kinematics(pose)
    for finger in ("index", "middle", "ring", "little", "thumb"):
        tip = finger_joints(finger)[3]
        assert joints[0, tip, 2] < CANONICAL_REST.joints[tip, 2] - 10.0, finger


def test_clamp_angles_applies_anatomical_limits() -> None:
    angles = torch.zeros(2, 15, 3)
    angles[0, _row("index_pip"), 0] = math.radians(170)  # beyond full flexion
    angles[0, _row("index_pip"), 1] = 0.3  # a PIP has no abduction
    angles[1, _row("ring_mcp"), 0] = -1.5  # hyperextension
    angles[1, _row("ring_mcp"), 1] = 0.1  # allowed
    out = clamp_angles(angles)
    assert out[0, _row("index_pip"), 0].item() == pytest.approx(math.radians(110), abs=1e-6)
    assert out[0, _row("index_pip"), 1].item() == 0.0
    assert out[1, _row("ring_mcp"), 0].item() == pytest.approx(math.radians(-25), abs=1e-6)
    assert out[1, _row("ring_mcp"), 1].item() == pytest.approx(0.1)
    assert ANGLE_LIMITS.shape == (15, 3, 2) and bool((ANGLE_LIMITS[..., 0] <= ANGLE_LIMITS[..., 1]).all())


def test_random_pose_is_reproducible_and_within_limits() -> None:
    ranges = PoseRanges(angle_scale=0.8, max_global_rot=0.5, trans_low=(-5, -5, 300), trans_high=(5, 5, 600))
    a = random_pose(64, torch.Generator().manual_seed(3), ranges)
    b = random_pose(64, torch.Generator().manual_seed(3), ranges)
    c = random_pose(64, torch.Generator().manual_seed(4), ranges)
    torch.testing.assert_close(a.angles, b.angles)
    assert not torch.allclose(a.angles, c.angles)
    torch.testing.assert_close(clamp_angles(a.angles), a.angles)
    assert float(a.global_rot.norm(dim=-1).max()) <= 0.5 + 1e-5
    assert float(a.trans[:, 2].min()) >= 300 and float(a.trans[:, 2].max()) <= 600
    # poses are varied: the index tip spreads over several centimetres
    joints, _ = forward_kinematics(a)
    rel = joints - joints[:, :1]
    assert float(rel[:, J("index_tip")].std(0).norm()) > 20.0


def test_shape_scales_the_hand_and_the_fingers() -> None:
    shape = HandShape(torch.tensor([1.0, 1.2]), torch.tensor([[1.0, 1.1, 1.0, 1.0, 1.0], [1.0] * 5]))
    joints, _ = forward_kinematics(HandPose.zeros(2), shape)
    rest = CANONICAL_REST.joints
    bone = (J("index_mcp"), J("index_pip"))
    assert float((joints[0, bone[1]] - joints[0, bone[0]]).norm()) == pytest.approx(1.1 * 43.0, abs=1e-3)
    torch.testing.assert_close(joints[0, J("index_mcp")], rest[J("index_mcp")])  # the palm is unchanged
    torch.testing.assert_close(joints[1], 1.2 * rest, atol=1e-3, rtol=0)
    length = HandShape.from_hand_length(torch.tensor([170.0]))
    j, _ = forward_kinematics(HandPose.zeros(1), length)
    assert float((j[0, J("middle_tip")] - j[0, 0]).norm()) == pytest.approx(170.0, abs=1e-3)


def test_gradients_reach_angles_rotation_translation_and_shape() -> None:
    pose = random_pose(2, torch.Generator().manual_seed(0), PoseRanges(angle_scale=0.5))
    for t in (pose.angles, pose.global_rot, pose.trans):
        t.requires_grad_(True)
    shape = HandShape.default(2)
    shape.size.requires_grad_(True)
    joints, _ = forward_kinematics(pose, shape)
    joints.square().sum().backward()
    for t in (pose.angles, pose.global_rot, pose.trans, shape.size):
        assert t.grad is not None and torch.isfinite(t.grad).all() and float(t.grad.abs().sum()) > 0


def test_bad_angle_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="B×15×3"):
        forward_kinematics(HandPose(torch.zeros(1, 16, 3), torch.zeros(1, 3), torch.zeros(1, 3)))


def test_the_thumb_can_oppose_every_finger_within_the_limits() -> None:
    """Thumb tip to each fingertip (batch of four hands) by gradient descent on clamped angles."""
    tips = [finger_joints(f)[3] for f in ("index", "middle", "ring", "little")]
    raw = torch.zeros(4, 15, 3, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(250):
        pose = HandPose(clamp_angles(raw), torch.zeros(4, 3), torch.zeros(4, 3))
        joints, _ = forward_kinematics(pose)
        gap = (joints[:, J("thumb_tip")] - joints[torch.arange(4), tips]).norm(dim=-1)
        opt.zero_grad()
        gap.sum().backward()
        opt.step()
    assert float(gap.detach().max()) < 4.0, gap.detach().tolist()
