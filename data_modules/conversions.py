"""Joint-order maps of the real datasets and the palm → wrist rule, in one place.

STB and MHP label the palm centre instead of the wrist. Both are first put in the canonical order of
:mod:`tassn.hand.skeleton` with the palm in slot 0, then :func:`palm_to_wrist` replaces slot 0 by a wrist
extrapolated from the palm and one metacarpal joint. The rule is affine, so it gives the same answer in any
coordinate frame and before or after mirroring.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from tassn.hand.skeleton import FINGERS, NUM_JOINTS, REF_BONE, SLOTS, joint_index

PalmToWrist = Literal["ring", "middle", "idein"]
"""How to place the wrist from the palm centre P:

- ``ring`` (Ge et al., hand3d, bihand): ``ringMCP + 2.0 · (P − ringMCP)``;
- ``middle`` (bihand's alternative): ``middleMCP + 2.2 · (P − middleMCP)``;
- ``idein`` (Idein's chainer-hand-pose): ``P + (P − middleMCP)``.
"""

PALM_TO_WRIST_RULES: tuple[str, ...] = get_args(PalmToWrist)

#: (metacarpal joint the wrist is extrapolated from, factor applied to palm − that joint).
_RULES: dict[str, tuple[str, float]] = {
    "ring": ("ring_mcp", 2.0),
    "middle": ("middle_mcp", 2.2),
    "idein": ("middle_mcp", 2.0),
}

# STB file order: 0 palm, then little, ring, middle, index, thumb, each MCP → PIP → DIP → tip.
_STB_FINGER_ORDER = ("little", "ring", "middle", "index", "thumb")
_STB_FILE_NAMES: tuple[str, ...] = ("palm",) + tuple(f"{f}_{s}" for f in _STB_FINGER_ORDER for s in SLOTS)

#: canonical joint j (palm in slot 0) = STB file joint ``STB_TO_CANONICAL[j]``.
STB_TO_CANONICAL: tuple[int, ...] = (0,) + tuple(
    _STB_FILE_NAMES.index(f"{f}_{s}") for f in FINGERS for s in SLOTS
)

# MHP joint files: F4 index, F3 middle, F2 ring, F1 little, TH thumb;
# KNU1_B = MCP, KNU1_A = PIP, KNU2_A = DIP, KNU3_A = tip; PALM_POSITION = palm; PALM_NORMAL is not a joint.
_MHP_FINGERS = {"F4": "index", "F3": "middle", "F2": "ring", "F1": "little", "TH": "thumb"}
_MHP_SLOTS = {"KNU1_B": "mcp", "KNU1_A": "pip", "KNU2_A": "dip", "KNU3_A": "tip"}

#: MHP joint name → canonical slot (palm in slot 0).
MHP_NAME_TO_CANONICAL: dict[str, int] = {"PALM_POSITION": 0} | {
    f"{code}_{knu}": joint_index(f"{finger}_{slot}")
    for code, finger in _MHP_FINGERS.items()
    for knu, slot in _MHP_SLOTS.items()
}

#: Names that must appear in every MHP joints file; any other line (PALM_NORMAL) is ignored.
MHP_JOINT_NAMES: tuple[str, ...] = tuple(sorted(MHP_NAME_TO_CANONICAL, key=MHP_NAME_TO_CANONICAL.__getitem__))


#: Plausible median length (mm) of the middle MCP→PIP bone of an adult hand, generously wide.
PLAUSIBLE_REF_BONE_MM = (10.0, 120.0)


def millimetre_problem(joints: np.ndarray, source: str) -> str | None:
    """A message when canonical joints ``…×21×3`` do not look like millimetres (e.g. metres or centimetres).

    Uses the median length of the reference bone, which is about 25–45 mm on real hands.
    """
    bones = np.linalg.norm(joints[..., REF_BONE[0], :] - joints[..., REF_BONE[1], :], axis=-1)
    median = float(np.median(bones))
    low, high = PLAUSIBLE_REF_BONE_MM
    if not low <= median <= high:
        return (
            f"{source}: median middle MCP→PIP bone is {median:.4g}, expected {low:g}–{high:g} mm; "
            "are the joints in millimetres?"
        )
    return None


def stb_to_canonical(joints: np.ndarray) -> np.ndarray:
    """Reorder STB joints ``…×21×D`` from the file order to the canonical order (palm stays in slot 0)."""
    if joints.shape[-2] != NUM_JOINTS:
        raise ValueError(f"expected {NUM_JOINTS} STB joints on axis -2, got shape {joints.shape}")
    return joints[..., list(STB_TO_CANONICAL), :]


def mhp_to_canonical(named: dict[str, np.ndarray]) -> np.ndarray:
    """Put MHP joints given by name (each ``…×3``) in canonical order ``…×21×3`` (palm in slot 0).

    Raises ``KeyError`` naming the joints that are missing.
    """
    missing = [n for n in MHP_JOINT_NAMES if n not in named]
    if missing:
        raise KeyError(f"missing MHP joints {missing}")
    return np.stack([np.asarray(named[n], dtype=np.float64) for n in MHP_JOINT_NAMES], axis=-2)


def palm_to_wrist(joints: np.ndarray, rule: PalmToWrist = "ring") -> np.ndarray:
    """Replace the palm centre in slot 0 of canonical ``joints …×21×3`` by the wrist (a new array).

    See :data:`PalmToWrist` for the rules; ``ring`` is the one Ge et al. and the TASSN evaluation use.
    """
    if rule not in _RULES:
        raise ValueError(f"unknown palm → wrist rule {rule!r}; expected one of {PALM_TO_WRIST_RULES}")
    anchor_name, factor = _RULES[rule]
    anchor = joints[..., joint_index(anchor_name), :]
    out = np.array(joints, dtype=np.float64, copy=True)
    out[..., 0, :] = anchor + factor * (joints[..., 0, :] - anchor)
    return out

