"""Tiny stand-ins shared by the network tests: a sphere "hand" template and its graph hierarchy."""

from __future__ import annotations

import pytest

import tiny_pme
from tassn.hand.graph import GraphHierarchy, MeshGraph
from tiny_pme import SphereTemplate


@pytest.fixture(scope="session")
def sphere_template() -> SphereTemplate:
    return tiny_pme.sphere_template()


@pytest.fixture(scope="session")
def sphere_hierarchy(sphere_template: SphereTemplate) -> GraphHierarchy:
    return MeshGraph.from_faces(sphere_template.faces, len(sphere_template.vertices)).coarsen(4, seed=0)
