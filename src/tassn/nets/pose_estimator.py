"""3D hand pose estimator: two stacked Chebyshev GCNs with graph pooling, then two FC layers (Ge et al.; TASSN §3.2).

Mesh ``B×V×3`` (template order, root-relative and scale-normalised) → pose ``B×21×3`` in the same space.
Paper sizes: ChebConv 3→32→32 on the finest level, max-pool ×4 (two levels), ChebConv 32→64→64, max-pool ×4,
FC (Vc·64)→512→21·3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tassn.hand.graph import GraphHierarchy, pool

from .chebconv import ChebConv


class PoseEstimator(nn.Module):
    """GCN blocks ``(ChebConv c_{i−1}→c_i, ChebConv c_i→c_i, max-pool 2^levels_per_block)`` on a hierarchy, then FCs.

    Ge et al.'s regressor is linear between its max-pools; ``activation=True`` (default) puts a ReLU after every
    convolution and after the hidden FC layer, which trains faster from scratch. ``activation=False`` is theirs.
    """

    def __init__(
        self,
        hierarchy: GraphHierarchy,
        num_joints: int = 21,
        channels: Sequence[int] = (32, 64),
        fc_hidden: int = 512,
        K: int = 3,
        in_features: int = 3,
        activation: bool = True,
        joint_regressor: torch.Tensor | None = None,
    ):
        super().__init__()
        channels = tuple(channels)
        blocks = len(channels)
        if blocks < 1 or hierarchy.levels % blocks:
            raise ValueError(
                f"PoseEstimator: {blocks} GCN blocks (channels {channels}) must share the {hierarchy.levels} "
                "coarsening levels evenly"
            )
        self.levels_per_block = hierarchy.levels // blocks
        self.num_joints = num_joints
        self.activation = activation
        self.register_buffer("perm", hierarchy.perm.clone(), persistent=False)
        self.num_template_vertices = hierarchy.num_template_vertices
        convs = []
        widths = (in_features, *channels)
        for i in range(blocks):
            lap = hierarchy.laplacians[i * self.levels_per_block]
            convs.append(
                nn.ModuleList(
                    [ChebConv(widths[i], widths[i + 1], K, lap), ChebConv(widths[i + 1], widths[i + 1], K, lap)]
                )
            )
        self.blocks = nn.ModuleList(convs)
        coarse = hierarchy.num_vertices[blocks * self.levels_per_block]
        self.fc = nn.Sequential(
            nn.Linear(coarse * channels[-1], fc_hidden),
            nn.ReLU() if activation else nn.Identity(),
            nn.Linear(fc_hidden, num_joints * 3),
        )
        self.register_buffer(
            "joint_regressor", None if joint_regressor is None else joint_regressor.detach().float().clone(),
            persistent=False,
        )
        if joint_regressor is not None:
            if tuple(joint_regressor.shape) != (num_joints, self.num_template_vertices) or in_features != 3:
                raise ValueError(
                    f"PoseEstimator: joint_regressor must be {num_joints}×{self.num_template_vertices} on a 3-channel "
                    f"mesh, got {tuple(joint_regressor.shape)} and {in_features} channels"
                )
            with torch.no_grad():  # start as the template's linear regressor: the GCN learns a residual
                self.fc[-1].weight.zero_()
                self.fc[-1].bias.zero_()

    def to_padded(self, mesh: torch.Tensor) -> torch.Tensor:
        """Template order ``B×V×C`` → padded level-0 order with zero fake vertices."""
        mask = self.perm >= 0
        out = mesh.new_zeros(mesh.shape[0], self.perm.numel(), mesh.shape[-1])
        out[:, mask] = mesh[:, self.perm[mask]]
        return out

    def forward(self, mesh: torch.Tensor) -> torch.Tensor:
        """``mesh B×V×3`` → ``pose B×21×3``."""
        if mesh.dim() != 3 or mesh.shape[1] != self.num_template_vertices:
            raise ValueError(
                f"PoseEstimator: expected a mesh B×{self.num_template_vertices}×C, got {tuple(mesh.shape)}"
            )
        x = self.to_padded(mesh)
        for block in self.blocks:
            for conv in block:
                x = conv(x)
                if self.activation:
                    x = torch.relu(x)
            x = pool(x, self.levels_per_block)
        pose = self.fc(x.flatten(1)).view(-1, self.num_joints, 3)
        if self.joint_regressor is not None:
            pose = pose + torch.einsum("jv,bvc->bjc", self.joint_regressor.to(mesh.dtype), mesh)
        return pose
