"""Feature encoder + coarse-to-fine Chebyshev mesh GCN."""

from __future__ import annotations

import pytest
import torch

from tassn.nets.mesh_estimator import FeatureEncoder, MeshDecoder, MeshEstimator


def test_encoder_paper_sizes() -> None:
    enc = FeatureEncoder(21, 256, input_size=64, output_size=4)
    assert len(enc.blocks) == 4 and enc.out_features == 4096  # 64² → 4², 256·16


def test_encoder_shapes_and_previous_features() -> None:
    torch.manual_seed(0)
    enc = FeatureEncoder(21, 8, input_size=16, output_size=4, modules=1).eval()
    heat, feat, prev = torch.rand(2, 21, 16, 16), torch.rand(2, 8, 16, 16), torch.rand(2, 8, 16, 16)
    a = enc(heat, feat)
    assert a.shape == (2, 8 * 16) and len(enc.blocks) == 2
    assert (enc(heat, feat, prev) - a).abs().max() > 1e-4
    with pytest.raises(ValueError, match="power of 2"):
        FeatureEncoder(21, 8, input_size=24, output_size=4)
    with pytest.raises(ValueError, match="16×16"):
        enc(torch.rand(1, 21, 8, 8), torch.rand(1, 8, 8, 8))


def test_decoder_levels_and_shapes(sphere_hierarchy) -> None:
    dec = MeshDecoder(32, sphere_hierarchy, channels=(64, 32, 3), fc_hidden=16)
    assert dec.levels_per_block == 2 and dec.coarse_vertices == 13
    assert dec.fc[-1].out_features == 13 * 64
    assert [c.num_vertices for c in dec.convs] == [52, 52, 208, 208]  # coarse → middle → finest (padded)
    assert [(c.in_features, c.out_features) for c in dec.convs] == [(64, 64), (64, 32), (32, 32), (32, 3)]
    assert isinstance(dec.norms[-1], torch.nn.Identity)
    assert dec(torch.randn(2, 32)).shape == (2, 208, 3)


def test_decoder_with_one_level_per_block(sphere_hierarchy) -> None:
    dec = MeshDecoder(8, sphere_hierarchy, channels=(8, 8, 8, 8, 3), fc_hidden=8)
    assert dec.levels_per_block == 1
    assert [c.num_vertices for c in dec.convs[::2]] == [26, 52, 104, 208]
    assert dec(torch.randn(2, 8)).shape == (2, 208, 3)
    with pytest.raises(ValueError, match="evenly"):
        MeshDecoder(8, sphere_hierarchy, channels=(8, 8, 8, 3))


def test_estimator_returns_template_order(sphere_template, sphere_hierarchy, monkeypatch) -> None:
    est = MeshEstimator(sphere_hierarchy, 21, feature_channels=8, feature_size=16, channels=(8, 4, 3), fc_hidden=8)
    verts = torch.from_numpy(sphere_template.vertices)[None].repeat(2, 1, 1)

    class Known(torch.nn.Module):
        def forward(self, x):
            return sphere_hierarchy.to_padded(verts)

    monkeypatch.setattr(est, "decoder", Known())
    out = est(torch.rand(2, 21, 16, 16), torch.rand(2, 8, 16, 16))
    assert torch.equal(out, verts)


def test_estimator_gradients(sphere_hierarchy) -> None:
    est = MeshEstimator(sphere_hierarchy, 21, feature_channels=8, feature_size=16, channels=(8, 4, 3), fc_hidden=8)
    heat = torch.rand(2, 21, 16, 16, requires_grad=True)
    mesh = est(heat, torch.rand(2, 8, 16, 16), torch.rand(2, 8, 16, 16))
    assert mesh.shape == (2, 162, 3)
    mesh.square().mean().backward()
    assert heat.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in est.parameters())
    with pytest.raises(ValueError, match="must be 3"):
        MeshEstimator(sphere_hierarchy, 21, feature_channels=8, feature_size=16, channels=(8, 4, 2))


def test_keypoint_vector_reads_peaks() -> None:
    from tassn.nets.mesh_estimator import keypoint_vector

    heat = torch.zeros(1, 2, 16, 16)
    heat[0, 0, 3, 12] = 0.9  # x = 12, y = 3
    heat[0, 1, 8, 0] = 0.4
    vec = keypoint_vector(heat)
    assert vec.shape == (1, 6)
    assert torch.allclose(vec[0, :4], torch.tensor([12.5 / 8 - 1, 3.5 / 8 - 1, 0.5 / 8 - 1, 8.5 / 8 - 1]))
    assert torch.allclose(vec[0, 4:], torch.tensor([0.9, 0.4]))


def test_estimator_with_keypoint_input_follows_the_peaks(sphere_hierarchy) -> None:
    torch.manual_seed(0)
    est = MeshEstimator(sphere_hierarchy, 21, feature_channels=8, feature_size=16, channels=(8, 4, 3), fc_hidden=8,
                        keypoint_input=True).eval()
    plain = MeshEstimator(sphere_hierarchy, 21, feature_channels=8, feature_size=16, channels=(8, 4, 3), fc_hidden=8)
    assert est.decoder.fc[0].in_features == plain.decoder.fc[0].in_features + 63
    heat, feat = torch.zeros(1, 21, 16, 16), torch.rand(1, 8, 16, 16)
    heat[:, :, 5, 5] = 1.0
    moved = heat.clone()
    moved[0, 3] = 0
    moved[0, 3, 5, 9] = 1.0  # one joint's peak moves; the encoder's pooled input changes little
    with torch.no_grad():
        est.encoder.heatmap_conv.weight.zero_()  # the peak's position reaches the mesh only through the keypoints
        assert not torch.allclose(est(heat, feat), est(moved, feat))
        plain.encoder.heatmap_conv.weight.zero_()
        assert torch.allclose(plain(heat, feat), plain(moved, feat))


def test_decoder_vertex_features_let_siblings_differ(sphere_hierarchy) -> None:
    torch.manual_seed(0)
    dec = MeshDecoder(8, sphere_hierarchy, channels=(8, 4, 3), fc_hidden=8, vertex_features=4)
    assert [tuple(e.shape) for e in dec.vertex_embeddings] == [(52, 4), (208, 4)]
    assert dec.convs[0].in_features == 12 and dec.convs[2].in_features == 8
    out = dec(torch.randn(2, 8))
    assert out.shape == (2, 208, 3)
    out.square().mean().backward()
    assert all(e.grad is not None and e.grad.abs().sum() > 0 for e in dec.vertex_embeddings)
    plain = MeshDecoder(8, sphere_hierarchy, channels=(8, 4, 3), fc_hidden=8)
    assert len(plain.vertex_embeddings) == 0 and plain.convs[0].in_features == 8
