"""The mesh graph: adjacency, normalised Laplacian, Graclus coarsening and the padded vertex order.

The mesh GCNs (Defferrard et al. 2016; Ge et al. 2019) work on a hierarchy of graphs. Level 0 is the template
mesh; each coarser level merges vertices in pairs by Graclus heavy-edge matching. After the vertices are
re-ordered (``perm``) and padded with disconnected *fake* vertices, the hierarchy is a binary tree whose
children are adjacent: pooling by 2 merges the pairs ``(2i, 2i+1)`` and nearest up-sampling repeats each vertex
twice, so both are plain tensor reshapes. Padded sizes therefore halve exactly: ``N0 = 2·N1 = 4·N2 = …``.

Conventions:
- normalised Laplacian ``L = I − D^{-1/2} A D^{-1/2}`` (scipy's ``csgraph.laplacian(normed=True)``): a vertex
  with zero degree (every fake vertex) has an all-zero row and column, so padding never divides by zero;
- rescaled Laplacian ``L̂ = 2L/λmax − I`` with ``λmax`` the largest eigenvalue of the padded ``L``; its
  spectrum lies in ``[−1, 1]`` (fake vertices sit at ``−1``);
- ``perm[i]`` is the template vertex stored at padded position ``i`` of level 0, or ``−1`` for a fake vertex.

Hierarchies are deterministic (seeded visiting order) and cached on disk keyed by the template's hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import laplacian as _csgraph_laplacian
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

log = logging.getLogger(__name__)

#: bump when the coarsening or the file layout changes so stale caches are ignored.
_CACHE_FORMAT = 1
#: graphs up to this size get their λmax from a dense eigen-solver (exact, and ARPACK needs k < N anyway).
_DENSE_EIG_MAX = 64


class _Template(Protocol):
    vertices: object  # V×3
    faces: object  # F×3

    def hash(self) -> str: ...


def default_cache_dir() -> Path:
    """``~/.cache/tassn/graphs``: where coarsened hierarchies are kept between runs."""
    return Path.home() / ".cache" / "tassn" / "graphs"


# ----------------------------------------------------------------------------------------------------------------
# single-graph maths (scipy.sparse)


def adjacency_from_faces(faces: np.ndarray, num_vertices: int | None = None) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency ``V×V`` of the edges of triangles ``faces F×3``.

    Vertices that no face uses stay isolated (zero rows). ``num_vertices`` defaults to ``faces.max() + 1``.
    """
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"faces: expected a non-empty F×3 integer array, got shape {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces: expected integer vertex indices, got dtype {faces.dtype}")
    faces = faces.astype(np.int64)
    n = int(faces.max()) + 1 if num_vertices is None else int(num_vertices)
    if faces.min() < 0 or faces.max() >= n:
        raise ValueError(f"faces: vertex indices must lie in [0, {n}), got [{faces.min()}, {faces.max()}]")
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    keep = rows != cols  # degenerate triangles would add self-loops
    rows, cols = rows[keep], cols[keep]
    a = sp.coo_matrix((np.ones(2 * rows.size), (np.r_[rows, cols], np.r_[cols, rows])), shape=(n, n)).tocsr()
    a.data[:] = 1.0  # shared edges were summed; every edge has weight 1
    return a


def normalized_laplacian(adjacency: sp.spmatrix) -> sp.csr_matrix:
    """``L = I − D^{-1/2} A D^{-1/2}``; self-loops are ignored and zero-degree vertices get zero rows."""
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    a.setdiag(0.0)
    a.eliminate_zeros()
    return sp.csr_matrix(_csgraph_laplacian(a, normed=True))


def lambda_max(lap: sp.spmatrix) -> float:
    """Largest eigenvalue of a symmetric Laplacian (ARPACK ``eigsh`` with a fixed start vector; dense if tiny)."""
    n = lap.shape[0]
    if n <= _DENSE_EIG_MAX:
        return float(np.linalg.eigvalsh(lap.toarray())[-1])
    try:
        vals = eigsh(lap, k=1, which="LA", v0=np.ones(n), tol=0.0, return_eigenvectors=False)
    except ArpackNoConvergence:  # pragma: no cover - ARPACK converges on mesh Laplacians
        return float(np.linalg.eigvalsh(lap.toarray())[-1])
    return float(vals[0])


def rescale_laplacian(lap: sp.spmatrix, lmax: float | None = None) -> sp.csr_matrix:
    """``L̂ = 2L/λmax − I``: maps the spectrum of ``L`` onto ``[−1, 1]`` as Chebyshev polynomials need."""
    lmax = lambda_max(lap) if lmax is None else lmax
    if lmax <= 0:
        raise ValueError(f"graph without edges: λmax = {lmax}, cannot rescale its Laplacian")
    n = lap.shape[0]
    return sp.csr_matrix(2.0 / lmax * lap - sp.identity(n, format="csr"))


def sparse_to_torch(matrix: sp.spmatrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """scipy sparse → coalesced torch sparse COO tensor."""
    coo = sp.coo_matrix(matrix)
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data).to(dtype)
    return torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=True).coalesce()


# ----------------------------------------------------------------------------------------------------------------
# Graclus coarsening (Dhillon et al.; the variant of Defferrard's cnn_graph used by Ge et al.)


def _graclus_one_level(w: sp.csr_matrix, order: np.ndarray, degree: np.ndarray) -> np.ndarray:
    """Pair vertices by normalised-cut heavy-edge matching; returns the cluster id of every vertex.

    Vertices are visited in ``order``; an unmatched vertex takes the unmatched neighbour maximising
    ``w_ij (1/d_i + 1/d_j)``, or stays alone. Cluster ids follow the visiting order.
    """
    n = w.shape[0]
    indptr, indices, data = w.indptr, w.indices, w.data
    marked = np.zeros(n, dtype=bool)
    cluster = np.full(n, -1, dtype=np.int64)
    count = 0
    for i in order:
        if marked[i]:
            continue
        marked[i] = True
        best, best_score = -1, 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if marked[j]:
                continue
            score = data[p] * (1.0 / degree[i] + 1.0 / degree[j])
            if score > best_score:
                best, best_score = j, score
        cluster[i] = count
        if best >= 0:
            cluster[best] = count
            marked[best] = True
        count += 1
    return cluster


def _graclus(adjacency: sp.csr_matrix, levels: int, rng: np.random.Generator) -> tuple[list, list]:
    """Coarsen ``levels`` times; returns the graphs (finest first, unpadded) and the parent map of each level."""
    w = sp.csr_matrix(adjacency, dtype=np.float64)
    graphs, parents = [w], []
    degree = np.asarray(w.sum(axis=0)).ravel() - w.diagonal()
    order = rng.permutation(w.shape[0])
    for _ in range(levels):
        cluster = _graclus_one_level(w, order, degree)
        parents.append(cluster)
        m = int(cluster.max()) + 1
        p = sp.csr_matrix((np.ones(cluster.size), (np.arange(cluster.size), cluster)), shape=(cluster.size, m))
        w = sp.csr_matrix(p.T @ w @ p)  # edge weights add up; merged pairs leave a self-loop
        w.eliminate_zeros()
        graphs.append(w)
        degree = np.asarray(w.sum(axis=0)).ravel()
        order = np.argsort(degree, kind="stable")  # light vertices first at the next level (cnn_graph)
    return graphs, parents


def _binary_tree_orders(parents: list[np.ndarray]) -> list[np.ndarray]:
    """Orders of every level such that the children of coarse vertex ``i`` sit at ``2i`` and ``2i+1``.

    ``orders[l][k]`` is the level-``l`` vertex at padded position ``k``; values ``≥ N_l`` are fake vertices
    (a singleton gets one fake sibling, a fake vertex two fake children).
    """
    coarsest = int(parents[-1].max()) + 1
    orders = [np.arange(coarsest)]
    for parent in parents[::-1]:
        children: dict[int, list[int]] = {}
        for child, par in enumerate(parent):
            children.setdefault(int(par), []).append(child)
        next_fake = parent.size
        layer: list[int] = []
        for node in orders[-1]:
            kids = list(children.get(int(node), []))
            if len(kids) > 2:  # pragma: no cover - Graclus pairs at most two vertices
                raise RuntimeError("coarsening produced a cluster of more than two vertices")
            while len(kids) < 2:
                kids.append(next_fake)
                next_fake += 1
            layer.extend(kids)
        orders.append(np.asarray(layer, dtype=np.int64))
    return orders[::-1]


def _permute_pad(w: sp.csr_matrix, order: np.ndarray) -> sp.csr_matrix:
    """Adjacency in padded order: entry ``(a, b)`` is ``w[order[a], order[b]]``, zero where either is fake."""
    new_index = np.empty(order.size, dtype=np.int64)
    new_index[order] = np.arange(order.size)  # old id (fake ids ≥ n included) → padded position
    coo = sp.coo_matrix(w)
    keep = coo.row != coo.col
    rows, cols = new_index[coo.row[keep]], new_index[coo.col[keep]]
    return sp.csr_matrix((coo.data[keep], (rows, cols)), shape=(order.size, order.size))


# ----------------------------------------------------------------------------------------------------------------
# the hierarchy


def upsample(x: torch.Tensor, levels: int = 1) -> torch.Tensor:
    """Nearest up-sampling along the vertex axis: ``B×V×C → B×(V·2^levels)×C`` (children are adjacent)."""
    return x.repeat_interleave(2**levels, dim=-2) if levels > 0 else x


def pool(x: torch.Tensor, levels: int = 1) -> torch.Tensor:
    """Max-pooling of sibling vertices: ``B×V×C → B×(V/2^levels)×C`` (``MaxPool1d(2^levels)`` on vertices)."""
    if levels <= 0:
        return x
    f = 2**levels
    if x.shape[-2] % f:
        raise ValueError(f"pool: {x.shape[-2]} vertices are not divisible by {f}")
    return x.unflatten(-2, (x.shape[-2] // f, f)).amax(dim=-2)


@dataclass(frozen=True)
class GraphHierarchy:
    """Coarsened mesh graphs, level 0 finest, every level padded so that ``num_vertices[l] = 2·num_vertices[l+1]``.

    ``laplacians[l]``: rescaled Laplacian ``L̂`` of level ``l`` (torch sparse COO, float32, padded order);
    ``adjacencies[l]``: scipy adjacency in the same order (coarse edge weights are sums of merged edges);
    ``lambda_max[l]``: the ``λmax`` used to rescale; ``perm``: level-0 padded position → template vertex or −1.
    """

    laplacians: list[torch.Tensor]
    adjacencies: list[sp.csr_matrix]
    lambda_max: list[float]
    perm: torch.Tensor
    num_vertices: list[int]
    num_template_vertices: int

    @property
    def levels(self) -> int:
        """Number of coarsening steps (``len(laplacians) − 1``)."""
        return len(self.laplacians) - 1

    @property
    def real_mask(self) -> torch.Tensor:
        """Boolean ``num_vertices[0]``: True where the padded level-0 vertex is a template vertex."""
        return self.perm >= 0

    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Template order ``B×V×C`` → padded level-0 order ``B×Vp×C`` (fake vertices zero)."""
        self._check(x, self.num_template_vertices, "to_padded")
        mask = self.real_mask.to(x.device)
        out = x.new_zeros(*x.shape[:-2], self.num_vertices[0], x.shape[-1])
        out[..., mask, :] = x[..., self.perm.to(x.device)[mask], :]
        return out

    def from_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Padded level-0 order ``B×Vp×C`` → template order ``B×V×C`` (fake vertices dropped)."""
        self._check(x, self.num_vertices[0], "from_padded")
        return x.index_select(-2, self.inverse_perm.to(x.device))

    @property
    def inverse_perm(self) -> torch.Tensor:
        """Template vertex → its padded level-0 position (``V``)."""
        inv = torch.empty(self.num_template_vertices, dtype=torch.long)
        mask = self.real_mask
        inv[self.perm[mask]] = torch.nonzero(mask).squeeze(1)
        return inv

    @staticmethod
    def _check(x: torch.Tensor, n: int, what: str) -> None:
        if x.dim() < 2 or x.shape[-2] != n:
            raise ValueError(f"{what}: expected a …×{n}×C tensor, got shape {tuple(x.shape)}")


class MeshGraph:
    """The graph of a triangle mesh: adjacency (weights 1), normalised and rescaled Laplacians, coarsening."""

    def __init__(self, adjacency: sp.spmatrix) -> None:
        a = sp.csr_matrix(adjacency, dtype=np.float64)
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"adjacency: expected a square matrix, got {a.shape}")
        if a.nnz and abs(a - a.T).max() > 1e-12:
            raise ValueError("adjacency: expected a symmetric matrix")
        self.adjacency = a

    @classmethod
    def from_faces(cls, faces: np.ndarray | torch.Tensor, num_vertices: int | None = None) -> MeshGraph:
        """Graph of the edges of ``faces F×3``."""
        return cls(adjacency_from_faces(np.asarray(faces), num_vertices))

    @property
    def num_vertices(self) -> int:
        return self.adjacency.shape[0]

    def laplacian(self) -> sp.csr_matrix:
        """Normalised Laplacian ``I − D^{-1/2} A D^{-1/2}``."""
        return normalized_laplacian(self.adjacency)

    def rescaled_laplacian(self) -> sp.csr_matrix:
        """``2L/λmax − I``."""
        return rescale_laplacian(self.laplacian())

    def coarsen(self, levels: int, seed: int = 0) -> GraphHierarchy:
        """Coarsen ``levels`` times (Graclus, fake-node padding to a binary tree) and rescale every level."""
        if levels < 0:
            raise ValueError(f"levels: expected ≥ 0, got {levels}")
        rng = np.random.default_rng(seed)
        if levels == 0:
            graphs, orders = [self.adjacency], [np.arange(self.num_vertices)]
        else:
            graphs, parents = _graclus(self.adjacency, levels, rng)
            orders = _binary_tree_orders(parents)
        adjacencies, laplacians, lmaxes = [], [], []
        for w, order in zip(graphs, orders, strict=True):
            a = _permute_pad(w, order)
            lap = normalized_laplacian(a)
            # an edgeless level (a graph coarsened to isolated vertices) has L = 0; any λmax > 0 gives L̂ = −I
            lmax = lambda_max(lap) if a.nnz else 2.0
            adjacencies.append(a)
            laplacians.append(sparse_to_torch(rescale_laplacian(lap, lmax)))
            lmaxes.append(lmax)
        perm = orders[0].copy()
        perm[perm >= self.num_vertices] = -1
        return GraphHierarchy(
            laplacians=laplacians,
            adjacencies=adjacencies,
            lambda_max=lmaxes,
            perm=torch.from_numpy(perm),
            num_vertices=[int(o.size) for o in orders],
            num_template_vertices=self.num_vertices,
        )


# ----------------------------------------------------------------------------------------------------------------
# disk cache


def _save(h: GraphHierarchy, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {
        "perm": h.perm.numpy(),
        "num_vertices": np.asarray(h.num_vertices),
        "num_template_vertices": np.asarray(h.num_template_vertices),
        "lambda_max": np.asarray(h.lambda_max),
    }
    for level, a in enumerate(h.adjacencies):
        coo = sp.coo_matrix(a)
        arrays[f"adj{level}_rows"], arrays[f"adj{level}_cols"], arrays[f"adj{level}_vals"] = coo.row, coo.col, coo.data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")  # atomic: parallel processes may race
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> GraphHierarchy:
    with np.load(path) as z:
        num_vertices = [int(n) for n in z["num_vertices"]]
        lmaxes = [float(v) for v in z["lambda_max"]]
        adjacencies, laplacians = [], []
        for level, (n, lmax) in enumerate(zip(num_vertices, lmaxes, strict=True)):
            a = sp.csr_matrix(
                (z[f"adj{level}_vals"], (z[f"adj{level}_rows"], z[f"adj{level}_cols"])), shape=(n, n)
            )
            adjacencies.append(a)
            laplacians.append(sparse_to_torch(rescale_laplacian(normalized_laplacian(a), lmax)))
        return GraphHierarchy(
            laplacians=laplacians,
            adjacencies=adjacencies,
            lambda_max=lmaxes,
            perm=torch.from_numpy(z["perm"].astype(np.int64)),
            num_vertices=num_vertices,
            num_template_vertices=int(z["num_template_vertices"]),
        )


def cache_path(template_hash: str, levels: int, seed: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """File that holds the hierarchy of a template (by hash), number of levels and seed."""
    base = default_cache_dir() if cache_dir is None else Path(cache_dir)
    key = hashlib.sha1(str(template_hash).encode()).hexdigest()[:16]
    return base / f"graph-{key}-L{levels}-s{seed}-v{_CACHE_FORMAT}.npz"


def hierarchy_for(
    template: _Template, levels: int = 4, cache_dir: str | os.PathLike | None = None, seed: int = 0
) -> GraphHierarchy:
    """Coarsened graph hierarchy of ``template`` (anything with ``vertices V×3``, ``faces F×3``, ``hash()``).

    Read from ``cache_dir`` (default ``~/.cache/tassn/graphs``) when present, else built and written there.
    An unreadable cache file is rebuilt rather than trusted.
    """
    path = cache_path(template.hash(), levels, seed, cache_dir)
    num_vertices = int(np.asarray(template.vertices).shape[0])
    if path.is_file():
        # the load is the check: every array of the .npz is a zip member with its own CRC-32, so a truncated or
        # damaged file raises here instead of being used
        try:
            h = _load(path)
            if h.num_template_vertices == num_vertices and h.levels == levels:
                return h
            log.warning("graph cache %s holds another hierarchy (%d template vertices, %d levels; expected %d, %d); "
                        "rebuilding it", path, h.num_template_vertices, h.levels, num_vertices, levels)
        except (OSError, KeyError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
            log.warning("graph cache %s is truncated or corrupted (%s: %s); rebuilding it", path,
                        type(err).__name__, err)
    h = MeshGraph.from_faces(np.asarray(template.faces), num_vertices).coarsen(levels, seed=seed)
    _save(h, path)
    return h

