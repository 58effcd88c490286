"""A tiny PME on a sphere "hand" template, shared by the network and prediction tests: seconds on a CPU."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import trimesh

#: PME arguments for 64 px crops (16 px heatmaps) and a narrow mesh/pose GCN.
TINY_PME: dict = dict(
    flow="dis",
    image_size=64,
    hourglass_features=16,
    hourglass_stacks=2,
    hourglass_depth=2,
    hourglass_modules=1,
    hourglass_stem_features=16,
    coarsening_levels=4,
    mesh_fc_hidden=32,
    mesh_channels=[16, 8, 3],
    pose_channels=[8, 16],
    pose_fc_hidden=32,
)


@dataclass
class SphereTemplate:
    """What the networks need from a hand template: vertices, faces and a content hash."""

    vertices: np.ndarray
    faces: np.ndarray
    name: str = "sphere"

    def hash(self) -> str:
        return hashlib.sha1(self.vertices.tobytes() + self.faces.tobytes()).hexdigest()


def sphere_template() -> SphereTemplate:
    """An icosphere (162 vertices, 320 faces) standing in for the hand mesh."""
    mesh = trimesh.creation.icosphere(subdivisions=2)
    return SphereTemplate(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int64))
