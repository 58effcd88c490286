"""The procedural hand: one watertight surface, skinning, joint regressor, posing, determinism and cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from tassn.hand import procedural as builder
from tassn.hand.kinematics import ARTICULATED, CANONICAL_REST, HandPose, HandShape, PoseRanges, random_pose
from tassn.hand.skeleton import JOINT_NAMES, finger_joints
from tassn.hand.template import HandTemplate, load_template


def test_mesh_is_one_watertight_hand_sized_component(procedural: HandTemplate) -> None:
    assert 700 <= procedural.num_vertices <= 1300
    assert procedural.vertices.dtype == torch.float32 and procedural.faces.dtype == torch.int64
    mesh = trimesh.Trimesh(procedural.vertices.numpy(), procedural.faces.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.euler_number == 2  # a sphere-like surface: no handles between fingers
    assert mesh.volume > 0  # outward normals
    lo, hi = procedural.vertices.min(0).values, procedural.vertices.max(0).values
    assert 185.0 < float(-lo[1]) < 195.0  # fingertips just past the middle tip joint (−187 mm)
    assert 60.0 < float(hi[0] - lo[0]) < 200.0


def test_every_finger_has_its_own_tip_of_mesh(procedural: HandTemplate) -> None:
    """Five separate fingertips: near each tip joint there are vertices, and they belong to that finger."""
    v = procedural.vertices
    for f in ("thumb", "index", "middle", "ring", "little"):
        mcp, _, dip, tip = finger_joints(f)
        near = (v - CANONICAL_REST.joints[tip]).norm(dim=-1) < 6.0
        assert int(near.sum()) >= 3, f
        assert float(procedural.skin_weights[near, dip].mean()) > 0.9, f


def test_skin_weights_and_regressor_are_convex(procedural: HandTemplate) -> None:
    w, r = procedural.skin_weights, procedural.joint_regressor
    assert float(w.min()) >= 0 and float(r.min()) >= 0
    torch.testing.assert_close(w.sum(1), torch.ones(procedural.num_vertices), atol=1e-5, rtol=0)
    torch.testing.assert_close(r.sum(1), torch.ones(21), atol=1e-5, rtol=0)
    tips = [finger_joints(f)[3] for f in ("thumb", "index", "middle", "ring", "little")]
    assert float(w[:, tips].abs().sum()) == 0.0  # nothing hangs on a tip
    assert int((r > 0).sum(1).max()) <= 24  # sparse rows


def test_regressor_matches_the_skeleton_at_rest(procedural: HandTemplate) -> None:
    err = (procedural.regress_joints(procedural.vertices) - CANONICAL_REST.joints).norm(dim=-1)
    assert float(err.max()) < 2.0, dict(zip(JOINT_NAMES, err.tolist(), strict=True))


def test_rest_pose_leaves_the_mesh_in_place(procedural: HandTemplate) -> None:
    verts, joints = procedural.pose(HandPose.zeros(1))
    torch.testing.assert_close(verts[0], procedural.vertices, atol=1e-3, rtol=0)
    torch.testing.assert_close(joints[0], CANONICAL_REST.joints, atol=1e-4, rtol=0)


def test_posed_mesh_agrees_with_forward_kinematics(procedural: HandTemplate) -> None:
    ranges = PoseRanges(
        angle_scale=0.6, max_global_rot=math.pi, trans_low=(-50, -50, 300), trans_high=(50, 50, 700)
    )
    pose = random_pose(32, torch.Generator().manual_seed(0), ranges)
    shape = HandShape(
        torch.linspace(0.85, 1.15, 32),
        1.0 + 0.08 * torch.randn(32, 5, generator=torch.Generator().manual_seed(1)),
    )
    verts, joints = procedural.pose(pose, shape)
    assert verts.shape == (32, procedural.num_vertices, 3)
    err = (procedural.regress_joints(verts) - joints).norm(dim=-1)
    assert float(err.mean()) < 1.5 and float(err.max()) < 5.0
    # the mesh really moved with the hand: a 90° index flexion carries the index tip vertices along
    pose = HandPose.zeros(1)
    pose.angles[0, ARTICULATED.index(finger_joints("index")[0]), 0] = math.pi / 2
    verts, joints = procedural.pose(pose)
    tip = finger_joints("index")[3]
    assert float((procedural.regress_joints(verts)[0, tip] - joints[0, tip]).norm()) < 2.0
    assert float(joints[0, tip, 2]) < -85.0


def test_pose_is_differentiable(procedural: HandTemplate) -> None:
    pose = HandPose.zeros(2)
    pose.angles.requires_grad_(True)
    verts, _ = procedural.pose(pose)
    verts[..., 2].sum().backward()
    assert pose.angles.grad is not None and float(pose.angles.grad.abs().sum()) > 0


def test_build_is_deterministic_and_the_cache_is_reused(
    procedural: HandTemplate, hand_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = sorted(hand_cache_dir.glob("procedural-hand-*.npz"))
    assert len(cached) == 1 and builder.ProceduralHandParams().key() in cached[0].name
    fresh = builder.build_procedural_mesh()
    np.testing.assert_array_equal(fresh.faces, procedural.faces.numpy())
    np.testing.assert_array_equal(fresh.vertices, procedural.vertices.numpy())
    np.testing.assert_array_equal(fresh.skin_weights, procedural.skin_weights.numpy())
    np.testing.assert_array_equal(fresh.joint_regressor, procedural.joint_regressor.numpy())

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached mesh should have been read")

    monkeypatch.setattr(builder, "build_procedural_mesh", no_build)
    again = load_template("procedural", cache_dir=hand_cache_dir)
    assert again.hash() == procedural.hash()


def test_cache_key_follows_the_build_parameters() -> None:
    a = builder.ProceduralHandParams()
    assert a.key() == builder.ProceduralHandParams().key()
    assert a.key() != builder.ProceduralHandParams(target_vertices=900).key()
    assert a.key() != builder.ProceduralHandParams(palm_half_thickness=12.0).key()


def test_a_damaged_cache_entry_is_rebuilt(procedural: HandTemplate, tmp_path: Path) -> None:
    path = tmp_path / f"procedural-hand-{builder.ProceduralHandParams().key()}.npz"
    path.write_bytes(b"not an npz file")
    rebuilt = load_template("procedural", cache_dir=tmp_path)
    assert rebuilt.hash() == procedural.hash()
    assert path.stat().st_size > 10_000


def test_hash_is_stable_and_content_sensitive(procedural: HandTemplate) -> None:
    assert procedural.hash() == procedural.hash() and len(procedural.hash()) == 16
    moved = HandTemplate(
        procedural.vertices + 0.5,
        procedural.faces,
        procedural.skin_weights,
        procedural.joint_regressor,
        procedural.name,
    )
    assert moved.hash() != procedural.hash()


def test_bad_inputs_are_rejected(procedural: HandTemplate, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="skin_weights"):
        HandTemplate(
            procedural.vertices,
            procedural.faces,
            procedural.skin_weights[:, :16],
            procedural.joint_regressor,
            "x",
        )
    with pytest.raises(ValueError, match="expected 'procedural' or a path"):
        load_template("mesh-of-my-own")
    with pytest.raises(FileNotFoundError, match="mano.is.tue.mpg.de"):
        load_template(tmp_path / "MANO_RIGHT.pkl")


def test_one_shape_broadcasts_over_a_float64_pose_batch(procedural: HandTemplate) -> None:
    pose = random_pose(3, torch.Generator().manual_seed(5), PoseRanges(angle_scale=0.5)).to(torch.float64)
    shape = HandShape(torch.tensor([1.1], dtype=torch.float64), torch.tensor([[1.0, 1.1, 0.9, 1.0, 1.05]]))
    verts, joints = procedural.pose(pose, shape)
    assert verts.dtype == torch.float64 and verts.shape == (3, procedural.num_vertices, 3)
    hand_length = (joints[:, JOINT_NAMES.index("middle_tip")] - joints[:, 0]).norm(dim=-1)
    palm = float(CANONICAL_REST.joints[JOINT_NAMES.index("middle_mcp")].norm())
    longest = 1.1 * (palm + 0.9 * (46.0 + 28.0 + 24.0))  # palm by size, middle finger by size × 0.9
    assert 0.8 * longest < float(hand_length.max()) <= longest + 1e-6
    assert float((procedural.regress_joints(verts) - joints).norm(dim=-1).mean()) < 1.5
