"""Networks: flow estimators, stacked hourglass, Chebyshev graph convolutions, mesh and pose GCNs, and PME."""

from __future__ import annotations

from typing import Any

from .chebconv import ChebConv
from .hourglass import HeatmapEstimator, HourglassOutput, StackedHourglass
from .mesh_decoder import FeatureEncoder, MeshDecoder, MeshEstimator
from .pme import PME, SUBNETS, PMEOutput
from .pose_regressor import PoseRegressor

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
    "PoseRegressor",
    "StackedHourglass",
    "build_flow_estimator",
]


def __getattr__(name: str) -> Any:
    # the flow backends pull in OpenCV and the FlowNet2 family: imported on first use only
    if name in ("FlowEstimator", "build_flow_estimator"):
        from . import flow

        return getattr(flow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
