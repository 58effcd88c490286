"""GCN pose regressor: mesh B×V×3 → pose B×21×3."""

from __future__ import annotations

import pytest
import torch

from tassn.nets.pose_estimator import PoseEstimator


def test_structure_and_shapes(sphere_hierarchy) -> None:
    reg = PoseEstimator(sphere_hierarchy, 21, channels=(32, 64), fc_hidden=512)
    convs = [c for block in reg.blocks for c in block]
    assert [c.num_vertices for c in convs] == [208, 208, 52, 52]  # finest, then two levels coarser
    assert [(c.in_features, c.out_features) for c in convs] == [(3, 32), (32, 32), (32, 64), (64, 64)]
    assert reg.fc[0].in_features == 13 * 64 and reg.fc[-1].out_features == 63
    assert reg(torch.randn(2, 162, 3)).shape == (2, 21, 3)


def test_padding_matches_the_hierarchy(sphere_hierarchy) -> None:
    reg = PoseEstimator(sphere_hierarchy, 21, channels=(4, 4), fc_hidden=8)
    mesh = torch.randn(2, 162, 3)
    assert torch.equal(reg.to_padded(mesh), sphere_hierarchy.to_padded(mesh))


def test_gradients_reach_every_parameter_and_the_mesh(sphere_hierarchy) -> None:
    reg = PoseEstimator(sphere_hierarchy, 21, channels=(8, 8), fc_hidden=16)
    mesh = torch.randn(2, 162, 3, requires_grad=True)
    reg(mesh).square().sum().backward()
    assert mesh.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in reg.parameters())


def test_ge_variant_without_activations(sphere_hierarchy) -> None:
    reg = PoseEstimator(sphere_hierarchy, 21, channels=(8, 8), fc_hidden=16, activation=False)
    assert isinstance(reg.fc[1], torch.nn.Identity)
    x = torch.randn(1, 162, 3)
    # no ReLU anywhere: positively homogeneous up to the biases, so scaling a bias-free net scales the output
    for m in reg.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.zeros_(m.bias)
    torch.testing.assert_close(reg(2.5 * x), 2.5 * reg(x), rtol=1e-5, atol=1e-5)


def test_bad_input(sphere_hierarchy) -> None:
    reg = PoseEstimator(sphere_hierarchy, 21, channels=(4, 4), fc_hidden=8)
    with pytest.raises(ValueError, match="B×162×C"):
        reg(torch.zeros(1, 100, 3))
    with pytest.raises(ValueError, match="evenly"):
        PoseEstimator(sphere_hierarchy, 21, channels=(4, 4, 4))


def test_regressor_skip_starts_as_the_linear_regressor_and_learns_a_residual(sphere_hierarchy) -> None:
    torch.manual_seed(0)
    regressor = torch.softmax(torch.randn(21, 162), dim=1)
    reg = PoseEstimator(sphere_hierarchy, 21, channels=(8, 8), fc_hidden=16, joint_regressor=regressor)
    mesh = torch.randn(2, 162, 3)
    assert torch.allclose(reg(mesh), torch.einsum("jv,bvc->bjc", regressor, mesh), atol=1e-6)
    assert "joint_regressor" not in reg.state_dict()  # the template's, not a weight: checkpoints stay Ge et al.'s
    reg(mesh).square().sum().backward()
    assert reg.fc[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="joint_regressor"):
        PoseEstimator(sphere_hierarchy, 21, channels=(8, 8), fc_hidden=16, joint_regressor=regressor[:, :10])
