"""The articulated (skinned-template) start of the mesh decoder."""

from __future__ import annotations

import pytest
import torch

from tassn.hand.kinematics import ANGLE_LIMITS, HandPose
from tassn.hand.normalize import normalize_3d
from tassn.hand.skeleton import ROOT
from tassn.hand.template import load_template
from tassn.nets.articulated import ArticulatedTemplate, rotation_from_6d
from tassn.nets.mesh_estimator import MeshEstimator


@pytest.fixture(scope="module")
def hand():
    return load_template("procedural")


def test_rotation_from_6d_is_a_rotation() -> None:
    torch.manual_seed(0)
    r = rotation_from_6d(torch.randn(50, 6))
    assert torch.allclose(r @ r.transpose(-1, -2), torch.eye(3).expand(50, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(50), atol=1e-5)
    assert torch.allclose(rotation_from_6d(torch.tensor([1.0, 0, 0, 0, 1, 0])), torch.eye(3))


def test_starts_near_the_rest_pose_and_stays_root_relative(hand) -> None:
    head = ArticulatedTemplate(16, hand, hidden=8)
    mesh = head(torch.randn(3, 16))
    rest, joints = hand.pose(HandPose.zeros(1))
    rest, _, _ = normalize_3d(rest, joints)
    assert mesh.shape == (3, hand.num_vertices, 3)
    assert (mesh - rest).abs().max() < 0.05  # rest angles clipped just inside their limits
    posed_joints = hand.regress_joints(mesh)
    root = hand.regress_joints(rest)[0, ROOT]
    assert torch.allclose(posed_joints[:, ROOT], root.expand(3, 3), atol=1e-4)


def test_angles_stay_in_their_limits_and_learn(hand) -> None:
    torch.manual_seed(0)
    head = ArticulatedTemplate(4, hand, hidden=8)
    with torch.no_grad():
        head.angles.weight.normal_(0, 100.0)  # saturate: angles must still stay inside the limits
    h = head.hidden(torch.randn(5, 4))
    angles = head.low + head.span * torch.sigmoid(head.angles(h).view(-1, 15, 3))
    limits = ANGLE_LIMITS
    assert (angles >= limits[..., 0] - 1e-6).all() and (angles <= limits[..., 1] + 1e-6).all()

    # a bent target pulls the angle head: one fist-like pose, a few Adam steps lower the error
    head = ArticulatedTemplate(4, hand, hidden=8)
    bent = HandPose.zeros(1)
    bent.angles[:, :, 0] = 1.0
    target, joints = hand.pose(bent)
    target, _, _ = normalize_3d(target, joints)
    code = torch.randn(1, 4)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = (head(code) - target).pow(2).sum(-1).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_mesh_estimator_adds_the_gcn_residual_on_the_skinned_template(hand) -> None:
    from tassn.hand.graph import MeshGraph

    hierarchy = MeshGraph.from_faces(hand.faces, hand.num_vertices).coarsen(4, seed=0)
    torch.manual_seed(0)
    plain = MeshEstimator(hierarchy, feature_channels=8, feature_size=16, channels=(8, 4, 3), fc_hidden=16)
    skinned = MeshEstimator(hierarchy, feature_channels=8, feature_size=16, channels=(8, 4, 3), fc_hidden=16,
                            articulated_template=hand)
    assert not any(k.startswith("articulated") for k in plain.state_dict())
    assert any(k.startswith("articulated.") for k in skinned.state_dict())
    heat, feat = torch.rand(2, 21, 16, 16), torch.rand(2, 8, 16, 16)
    mesh = skinned(heat, feat)
    assert mesh.shape == (2, hand.num_vertices, 3)
    code = skinned.encoder(heat, feat)
    assert torch.allclose(mesh, skinned.articulated(code), atol=1e-6)  # the residual starts at 0
    mesh.pow(2).sum().backward()
    assert skinned.decoder.convs[-1].linear.weight.grad.abs().sum() > 0  # … and learns
    with pytest.raises(ValueError, match="vertices"):
        MeshEstimator(MeshGraph.from_faces(hand.faces[:10], 12).coarsen(2, seed=0), feature_channels=8,
                      feature_size=16, channels=(8, 3), articulated_template=hand)


def test_the_template_follows_the_module_and_stays_out_of_checkpoints(hand) -> None:
    head = ArticulatedTemplate(8, hand, hidden=8)
    assert not any(k.startswith(("rest_", "skin_weights", "low", "span")) for k in head.state_dict())
    code = torch.randn(2, 8)
    with torch.no_grad():
        head.angles.bias.add_(0.5)
        single = head(code)
        head.double()
        assert head.rest_vertices.dtype == head.skin_weights.dtype == head.rest_frames.dtype == torch.float64
        double = head(code.double())
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, atol=1e-5, rtol=0)
