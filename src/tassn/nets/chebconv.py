"""Chebyshev spectral graph convolution (Defferrard et al. 2016), batched, with a fixed sparse Laplacian.

``y = Σ_k T_k(L̂) x θ_k`` with ``T_0 = I``, ``T_1 = L̂``, ``T_k = 2 L̂ T_{k−1} − T_{k−2}``. The ``K`` terms are
concatenated per input feature (``index = fin·K + k``, the layout of Ge et al.'s hand-graph-cnn) and mixed by one
``Linear(K·Fin → Fout)``. The layout is theirs so that their weights could be mapped onto ours, but no converter
exists: our networks train from scratch or from our own checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn


class ChebConv(nn.Module):
    """Order-``K`` Chebyshev convolution on a graph with rescaled Laplacian ``L̂`` (``V×V`` torch sparse).

    ``forward(x B×V×Fin) → B×V×Fout``. ``L̂`` is kept as two non-persistent buffers (indices, values): it moves
    with ``.to(device)`` and is rebuilt from the graph hierarchy, never stored in checkpoints.
    """

    def __init__(self, in_features: int, out_features: int, K: int, laplacian: torch.Tensor, bias: bool = True):
        super().__init__()
        if K < 1:
            raise ValueError(f"ChebConv: order K must be ≥ 1, got {K}")
        if not laplacian.is_sparse or laplacian.dim() != 2 or laplacian.shape[0] != laplacian.shape[1]:
            raise ValueError(f"ChebConv: expected a square torch sparse COO Laplacian, got {laplacian.layout}")
        lap = laplacian.coalesce()
        self.in_features, self.out_features, self.K = in_features, out_features, K
        self.num_vertices = int(lap.shape[0])
        self.register_buffer("lap_indices", lap.indices(), persistent=False)
        self.register_buffer("lap_values", lap.values().float(), persistent=False)
        self.linear = nn.Linear(K * in_features, out_features, bias=bias)
        # Glorot-uniform as Ge et al. (their θ were trained from this init)
        scale = (2.0 / (K * in_features + out_features)) ** 0.5
        nn.init.uniform_(self.linear.weight, -scale, scale)
        if bias:
            nn.init.zeros_(self.linear.bias)

    def laplacian(self) -> torch.Tensor:
        """``L̂`` as a sparse tensor on the module's device."""
        n = self.num_vertices
        return torch.sparse_coo_tensor(
            self.lap_indices, self.lap_values, (n, n), is_coalesced=True, check_invariants=False
        )

    def chebyshev_basis(self, x: torch.Tensor) -> torch.Tensor:
        """``[T_0 x, …, T_{K−1} x]`` stacked last: ``B×V×Fin`` → ``B×V×Fin×K``."""
        b, v, f = x.shape
        lap = self.laplacian()
        x0 = x.permute(1, 2, 0).reshape(v, f * b)  # one sparse product for the whole batch
        terms = [x0]
        if self.K > 1:
            terms.append(torch.sparse.mm(lap, x0))
        for _ in range(2, self.K):
            terms.append(2.0 * torch.sparse.mm(lap, terms[-1]) - terms[-2])
        return torch.stack(terms, dim=-1).reshape(v, f, b, self.K).permute(2, 0, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.num_vertices or x.shape[2] != self.in_features:
            raise ValueError(
                f"ChebConv: expected B×{self.num_vertices}×{self.in_features}, got {tuple(x.shape)}"
            )
        # the sparse products in the buffer's precision, also under autocast (bf16-mixed): autocast would run the
        # sparse addmm with a float32 Laplacian and a reduced-precision input, whose backward then fails on the
        # dtype mismatch; the Linear after it still runs in autocast's precision
        with torch.autocast(x.device.type, enabled=False):
            basis = self.chebyshev_basis(x.to(self.lap_values.dtype))
        return self.linear(basis.flatten(2))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, K={self.K}, vertices={self.num_vertices}"
