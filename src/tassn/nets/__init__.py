"""Networks: flow estimators, stacked hourglass, Chebyshev graph convolutions, mesh and pose GCNs, and PME."""

from __future__ import annotations

from typing import Any

from .chebconv import ChebConv
from .heatmap_estimator import HeatmapEstimator, HourglassOutput, StackedHourglass
from .mesh_estimator import FeatureEncoder, MeshDecoder, MeshEstimator
from .pme import PME, SUBNETS, PMEOutput
from .pose_estimator import PoseEstimator

__all__ = [
    "PME",
    "SUBNETS",
    "ChebConv",
    "FeatureEncoder",
    "FlowEstimator",
    "HeatmapEstimator",
    "HourglassOutput",
    "MeshDecoder",
    "MeshEstimator",
    "PMEOutput",
    "PoseEstimator",
    "StackedHourglass",
    "build_flow_estimator",
]


def __getattr__(name: str) -> Any:
    # the flow backends pull in OpenCV and the FlowNet2 family: imported on first use only
    if name in ("FlowEstimator", "build_flow_estimator"):
        from . import flow

        return getattr(flow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
