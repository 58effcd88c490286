"""Mesh graph: adjacency, Laplacians, Graclus coarsening, padded order, cache."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import trimesh

from tassn.hand.graph import (
    MeshGraph,
    adjacency_from_faces,
    cache_path,
    hierarchy_for,
    normalized_laplacian,
    pool,
    upsample,
)


@dataclass
class FakeTemplate:
    """The three things the graph needs from a hand template."""

    vertices: np.ndarray
    faces: np.ndarray

    def hash(self) -> str:
        return hashlib.sha1(self.vertices.tobytes() + self.faces.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def sphere() -> FakeTemplate:
    m = trimesh.creation.icosphere(subdivisions=2)  # 162 vertices, 320 faces
    return FakeTemplate(np.asarray(m.vertices, dtype=np.float32), np.asarray(m.faces, dtype=np.int64))


@pytest.fixture(scope="module")
def hierarchy(sphere: FakeTemplate):
    return MeshGraph.from_faces(sphere.faces, len(sphere.vertices)).coarsen(4, seed=0)


def test_adjacency_of_two_triangles() -> None:
    a = adjacency_from_faces(np.array([[0, 1, 2], [0, 2, 3]]), num_vertices=5).toarray()
    expected = np.zeros((5, 5))
    for i, j in [(0, 1), (1, 2), (0, 2), (2, 3), (0, 3)]:
        expected[i, j] = expected[j, i] = 1
    np.testing.assert_array_equal(a, expected)  # the shared edge 0–2 has weight 1, vertex 4 is isolated


def test_bad_faces_are_rejected() -> None:
    with pytest.raises(ValueError, match="F×3"):
        adjacency_from_faces(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="lie in"):
        adjacency_from_faces(np.array([[0, 1, 7]]), num_vertices=4)


def test_normalized_laplacian_of_a_path_and_an_isolated_vertex() -> None:
    a = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=float))
    lap = normalized_laplacian(a).toarray()
    s = 1 / np.sqrt(2)
    expected = np.array([[1, -s, 0, 0], [-s, 1, -s, 0], [0, -s, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(lap, expected, atol=1e-12)  # zero degree → zero row, no division by zero


def test_coarsening_halves_padded_sizes(hierarchy) -> None:
    n = hierarchy.num_vertices
    assert len(n) == 5 and hierarchy.levels == 4
    assert all(n[i] == 2 * n[i + 1] for i in range(4))
    assert n[0] == 16 * n[4]
    assert n[0] >= 162 and n[4] <= 162 // 8  # Graclus merges most vertices in pairs
    assert [lap.shape[0] for lap in hierarchy.laplacians] == n


def test_perm_covers_every_template_vertex_once(hierarchy) -> None:
    perm = hierarchy.perm
    real = perm[perm >= 0]
    assert real.numel() == 162
    assert torch.equal(real.sort().values, torch.arange(162))
    assert int((perm < 0).sum()) == hierarchy.num_vertices[0] - 162


def test_padded_adjacency_keeps_the_mesh_edges(sphere, hierarchy) -> None:
    a0 = adjacency_from_faces(sphere.faces, 162)
    p = hierarchy.perm.numpy()
    padded = hierarchy.adjacencies[0].toarray()
    real = np.nonzero(p >= 0)[0]
    np.testing.assert_array_equal(padded[np.ix_(real, real)], a0.toarray()[np.ix_(p[real], p[real])])
    fake = np.nonzero(p < 0)[0]
    assert not padded[fake].any() and not padded[:, fake].any()
    assert padded.sum() == 2 * 480  # an icosphere with 162 vertices has 480 edges


def test_pooling_merges_graph_neighbours(hierarchy) -> None:
    """Real sibling pairs at level 0 are mesh edges: pooling follows the matching."""
    adj = hierarchy.adjacencies[0]
    real = (hierarchy.perm >= 0).numpy()
    pairs = [(2 * i, 2 * i + 1) for i in range(hierarchy.num_vertices[1]) if real[2 * i] and real[2 * i + 1]]
    assert len(pairs) > 50
    assert all(adj[i, j] == 1 for i, j in pairs)


def test_coarse_graph_is_the_pooled_graph(hierarchy) -> None:
    """Level-1 edge weights are the sums of level-0 edges between the merged pairs."""
    a0 = hierarchy.adjacencies[0].toarray()
    n1 = hierarchy.num_vertices[1]
    summed = a0.reshape(n1, 2, n1, 2).sum(axis=(1, 3))
    np.fill_diagonal(summed, 0)
    np.testing.assert_allclose(hierarchy.adjacencies[1].toarray(), summed)


def test_upsample_inverts_pool() -> None:
    x = torch.randn(2, 32, 3)
    up = upsample(x, 2)
    assert up.shape == (2, 128, 3)
    assert torch.equal(pool(up, 2), x)
    y = torch.randn(2, 8, 4)
    yp = upsample(pool(y, 1), 1)
    assert torch.equal(yp[:, 0::2], yp[:, 1::2])  # constant within matched pairs
    assert torch.equal(yp[:, 0::2], torch.maximum(y[:, 0::2], y[:, 1::2]))
    with pytest.raises(ValueError, match="divisible"):
        pool(torch.zeros(1, 6, 1), 2)


def test_rescaled_spectrum_in_unit_interval(hierarchy) -> None:
    for level, lap in enumerate(hierarchy.laplacians):
        dense = lap.to_dense().double()
        assert torch.allclose(dense, dense.T)
        eig = torch.linalg.eigvalsh(dense)
        assert eig.min() >= -1 - 1e-5 and eig.max() <= 1 + 1e-5, level
        assert eig.max() >= 1 - 1e-5  # λmax is attained: it really is the largest eigenvalue
        assert 1.0 < hierarchy.lambda_max[level] <= 2.0


def test_to_from_padded_round_trip(hierarchy) -> None:
    x = torch.randn(3, 162, 4)
    xp = hierarchy.to_padded(x)
    assert xp.shape == (3, hierarchy.num_vertices[0], 4)
    assert torch.equal(xp[:, hierarchy.perm < 0], torch.zeros_like(xp[:, hierarchy.perm < 0]))
    assert torch.equal(hierarchy.from_padded(xp), x)
    i = int(torch.nonzero(hierarchy.perm == 17)[0])
    assert torch.equal(xp[:, i], x[:, 17])
    with pytest.raises(ValueError, match="162"):
        hierarchy.to_padded(torch.zeros(1, 100, 3))


def test_deterministic(sphere, hierarchy) -> None:
    again = MeshGraph.from_faces(sphere.faces, 162).coarsen(4, seed=0)
    assert torch.equal(again.perm, hierarchy.perm)
    assert again.lambda_max == hierarchy.lambda_max
    other = MeshGraph.from_faces(sphere.faces, 162).coarsen(4, seed=1)
    assert not torch.equal(other.perm, hierarchy.perm)  # the seed really drives the visiting order


def test_cache_reuse(sphere, hierarchy, tmp_path, monkeypatch) -> None:
    h1 = hierarchy_for(sphere, levels=4, cache_dir=tmp_path)
    path = cache_path(sphere.hash(), 4, 0, tmp_path)
    assert path.is_file()
    assert torch.equal(h1.perm, hierarchy.perm)

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although the cache holds it")

    monkeypatch.setattr(MeshGraph, "coarsen", fail)
    h2 = hierarchy_for(sphere, levels=4, cache_dir=tmp_path)
    assert torch.equal(h2.perm, h1.perm) and h2.num_vertices == h1.num_vertices
    for a, b in zip(h1.laplacians, h2.laplacians, strict=True):
        assert torch.allclose(a.to_dense(), b.to_dense(), atol=1e-7)
    with pytest.raises(AssertionError, match="rebuilt"):
        hierarchy_for(sphere, levels=3, cache_dir=tmp_path)  # another key: not served from the cache


def test_corrupt_cache_is_rebuilt(sphere, hierarchy, tmp_path) -> None:
    path = cache_path(sphere.hash(), 4, 0, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an npz")
    h = hierarchy_for(sphere, levels=4, cache_dir=tmp_path)
    assert torch.equal(h.perm, hierarchy.perm)
    assert path.stat().st_size > 1000  # replaced by the rebuilt hierarchy


def test_truncated_cache_is_rebuilt_with_a_warning(sphere, hierarchy, tmp_path, caplog) -> None:
    hierarchy_for(sphere, levels=4, cache_dir=tmp_path)
    path = cache_path(sphere.hash(), 4, 0, tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) - 40])
    with caplog.at_level("WARNING", logger="tassn.hand.graph"):
        h = hierarchy_for(sphere, levels=4, cache_dir=tmp_path)
    assert torch.equal(h.perm, hierarchy.perm) and path.stat().st_size == len(good)
    assert str(path) in caplog.text and "rebuilding" in caplog.text
