"""Tiny stand-ins shared by the network tests: a sphere "hand" template and its graph hierarchy."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pytest
import trimesh

from tassn.hand.graph import GraphHierarchy, MeshGraph


@dataclass
class SphereTemplate:
    """What the networks need from a hand template: vertices, faces and a content hash."""

    vertices: np.ndarray
    faces: np.ndarray
    name: str = "sphere"

    def hash(self) -> str:
        return hashlib.sha1(self.vertices.tobytes() + self.faces.tobytes()).hexdigest()


@pytest.fixture(scope="session")
def sphere_template() -> SphereTemplate:
    m = trimesh.creation.icosphere(subdivisions=2)  # 162 vertices, 320 faces
    return SphereTemplate(np.asarray(m.vertices, dtype=np.float32), np.asarray(m.faces, dtype=np.int64))


@pytest.fixture(scope="session")
def sphere_hierarchy(sphere_template: SphereTemplate) -> GraphHierarchy:
    return MeshGraph.from_faces(sphere_template.faces, len(sphere_template.vertices)).coarsen(4, seed=0)
