"""3D hand mesh estimator: image features → coarse graph features → Chebyshev GCN, coarse to fine (Ge et al.).

``FeatureEncoder`` turns the hourglass output into a vector; ``MeshDecoder`` maps it to the coarsest graph level
and up-samples level by level (nearest along the padded vertex axis), two Chebyshev convolutions per block;
``MeshEstimator`` chains both and returns the mesh in the template's vertex order (fake vertices dropped),
root-relative and scale-normalised like every 3D output of the networks. With ``keypoint_input`` the decoder also
reads the heatmaps' sub-pixel peaks and heights (:func:`keypoint_vector`): an addition to Ge et al.'s encoder, which
has to carry every joint's position through its max-pools in feature channels (docs/results.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tassn.hand.graph import GraphHierarchy, upsample
from tassn.hand.template import HandTemplate
from tassn.heatmaps import heatmap_peaks

from .articulated import ArticulatedTemplate
from .chebconv import ChebConv
from .heatmap_estimator import Residual


class FeatureEncoder(nn.Module):
    """``1×1(heatmaps) + 1×1(features) + previous features``, then (``modules`` residuals + max-pool) until the
    map is ``output_size²``; flattened to ``B×(channels·output_size²)``."""

    def __init__(
        self, num_joints: int, channels: int, input_size: int, output_size: int = 4, modules: int = 2
    ):
        super().__init__()
        ratio = input_size / output_size
        blocks = round(math.log2(ratio)) if ratio >= 1 else -1
        if blocks < 0 or output_size * 2**blocks != input_size:
            raise ValueError(
                f"FeatureEncoder: input size {input_size} must be output size {output_size} times a power of 2"
            )
        self.input_size, self.output_size = input_size, output_size
        self.heatmap_conv = nn.Conv2d(num_joints, channels, 1)
        self.feature_conv = nn.Conv2d(channels, channels, 1)
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(*(Residual(channels, channels) for _ in range(modules)), nn.MaxPool2d(2))
                for _ in range(blocks)
            )
        )
        self.out_features = channels * output_size**2

    def forward(
        self, heatmaps: torch.Tensor, features: torch.Tensor, previous_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``heatmaps B×J×h×w`` (last stack), ``features B×C×h×w``, ``previous_features`` or None → ``B×D``."""
        if features.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"FeatureEncoder: expected {self.input_size}×{self.input_size} maps, got {tuple(features.shape[-2:])}"
            )
        x = self.heatmap_conv(heatmaps) + self.feature_conv(features)
        if previous_features is not None:
            x = x + previous_features
        return self.blocks(x).flatten(1)


def keypoint_vector(heatmaps: torch.Tensor) -> torch.Tensor:
    """``B×J×h×w`` heatmaps → ``B×3J``: each joint's sub-pixel peak in ``[-1, 1]`` of the map (x, y) and its height.

    The peaks carry no gradient (an argmax); the heatmaps still reach the mesh through the encoder's convolution.
    """
    peaks, heights = heatmap_peaks(heatmaps)
    size = peaks.new_tensor([heatmaps.shape[-1], heatmaps.shape[-2]])
    coords = (peaks + 0.5) / size * 2 - 1
    return torch.cat([coords.flatten(1), heights.clamp(0, 2)], dim=1).to(heatmaps.dtype)


class MeshDecoder(nn.Module):
    """Vector → mesh on the padded finest level: ``B×D → B×Vp×channels[-1]``.

    ``FC D→fc_hidden (ReLU) →Vc·channels[0]`` on the coarsest level, then one block per further entry of
    ``channels``: up-sample ``levels_per_block`` times by 2, ``ChebConv c_i→c_i``, ``ChebConv c_i→c_{i+1}``;
    BN + ReLU after every convolution but the last. Blocks share the hierarchy's levels evenly, ending at level 0.

    ``vertex_features > 0`` (this project's addition) appends a learned vector per vertex to each block's
    up-sampled input: nearest up-sampling gives every child of a coarse vertex the same features, and the Chebyshev
    filters are shared by all vertices, so without it a fine vertex can differ from its siblings only through the
    graph's shape.
    """

    def __init__(
        self,
        in_features: int,
        hierarchy: GraphHierarchy,
        channels: Sequence[int] = (64, 32, 3),
        fc_hidden: int = 512,
        K: int = 3,
        vertex_features: int = 0,
    ):
        super().__init__()
        channels = tuple(channels)
        blocks = len(channels) - 1
        if blocks < 1 or hierarchy.levels % blocks:
            raise ValueError(
                f"MeshDecoder: {blocks} GCN blocks (channels {channels}) must share the {hierarchy.levels} "
                "coarsening levels evenly"
            )
        self.levels_per_block = hierarchy.levels // blocks
        self.coarse_vertices = hierarchy.num_vertices[-1]
        self.channels = channels
        self.fc = nn.Sequential(
            nn.Linear(in_features, fc_hidden), nn.ReLU(), nn.Linear(fc_hidden, self.coarse_vertices * channels[0])
        )
        convs, norms = [], []
        self.vertex_embeddings = nn.ParameterList()
        for i in range(blocks):
            level = hierarchy.levels - (i + 1) * self.levels_per_block
            lap = hierarchy.laplacians[level]
            width = channels[i] + vertex_features
            if vertex_features:
                self.vertex_embeddings.append(nn.Parameter(0.1 * torch.randn(hierarchy.num_vertices[level],
                                                                             vertex_features)))
            convs += [ChebConv(width, channels[i], K, lap), ChebConv(channels[i], channels[i + 1], K, lap)]
            norms += [nn.BatchNorm1d(channels[i]), nn.BatchNorm1d(channels[i + 1])]
        norms[-1] = nn.Identity()  # the last convolution outputs coordinates
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x).view(x.shape[0], self.coarse_vertices, self.channels[0])
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            if i % 2 == 0:
                x = upsample(x, self.levels_per_block)
                if len(self.vertex_embeddings):
                    embedding = self.vertex_embeddings[i // 2]
                    x = torch.cat([x, embedding.expand(x.shape[0], -1, -1)], dim=-1)
            x = conv(x)
            if i < last:
                x = torch.relu(norm(x.transpose(1, 2)).transpose(1, 2))
        return x


class MeshEstimator(nn.Module):
    """Hourglass output → mesh ``B×V×3`` in template order (root-relative, scale-normalised)."""

    def __init__(
        self,
        hierarchy: GraphHierarchy,
        num_joints: int = 21,
        feature_channels: int = 256,
        feature_size: int = 64,
        encoder_output_size: int = 4,
        encoder_modules: int = 2,
        channels: Sequence[int] = (64, 32, 3),
        fc_hidden: int = 512,
        K: int = 3,
        keypoint_input: bool = False,
        vertex_features: int = 0,
        articulated_template: HandTemplate | None = None,
    ):
        super().__init__()
        if tuple(channels)[-1] != 3:
            raise ValueError(f"MeshEstimator: the last GCN width must be 3 (x, y, z), got channels {tuple(channels)}")
        self.encoder = FeatureEncoder(num_joints, feature_channels, feature_size, encoder_output_size, encoder_modules)
        self.keypoint_input = keypoint_input
        in_features = self.encoder.out_features + (3 * num_joints if keypoint_input else 0)
        self.decoder = MeshDecoder(in_features, hierarchy, channels, fc_hidden, K, vertex_features)
        self.articulated = None
        if articulated_template is not None:
            if articulated_template.num_vertices != hierarchy.num_template_vertices:
                raise ValueError(
                    f"MeshEstimator: template {articulated_template.name!r} has {articulated_template.num_vertices} "
                    f"vertices, the graph {hierarchy.num_template_vertices}"
                )
            self.articulated = ArticulatedTemplate(in_features, articulated_template)
            with torch.no_grad():  # start at the skinned template: the residual's last convolution begins at 0
                for p in self.decoder.convs[-1].parameters():
                    p.zero_()
        self.register_buffer("inverse_perm", hierarchy.inverse_perm, persistent=False)

    def forward(
        self, heatmaps: torch.Tensor, features: torch.Tensor, previous_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``heatmaps B×J×h×w`` (last stack), ``features``, ``previous_features`` → ``mesh B×V×3``."""
        code = self.encoder(heatmaps, features, previous_features)
        if self.keypoint_input:
            code = torch.cat([code, keypoint_vector(heatmaps)], dim=1)
        mesh = self.decoder(code).index_select(1, self.inverse_perm)
        if self.articulated is not None:
            mesh = mesh + self.articulated(code)
        return mesh
