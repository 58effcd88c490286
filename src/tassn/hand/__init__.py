"""The hand: canonical skeleton, kinematics, template meshes and the mesh graph. Knows nothing of Lightning."""

from .kinematics import (
    ANGLE_LIMITS,
    ARTICULATED,
    CANONICAL_REST,
    DOF_NAMES,
    HandPose,
    HandShape,
    PoseRanges,
    RestSkeleton,
    clamp_angles,
    forward_kinematics,
    random_pose,
)
from .skeleton import BONES, FINGERS, JOINT_NAMES, NUM_JOINTS, PALM_JOINTS, PARENTS, REF_BONE, ROOT
from .template import HandTemplate, load_template

__all__ = [
    "ANGLE_LIMITS",
    "ARTICULATED",
    "BONES",
    "CANONICAL_REST",
    "DOF_NAMES",
    "FINGERS",
    "HandPose",
    "HandShape",
    "HandTemplate",
    "JOINT_NAMES",
    "PALM_JOINTS",
    "NUM_JOINTS",
    "PARENTS",
    "PoseRanges",
    "REF_BONE",
    "ROOT",
    "RestSkeleton",
    "clamp_angles",
    "forward_kinematics",
    "load_template",
    "random_pose",
]
