"""The canonical 21-joint hand skeleton used everywhere inside tassn.

Order: 0 wrist; 1–4 thumb MCP→tip; 5–8 index; 9–12 middle; 13–16 ring; 17–20 little (MCP, PIP, DIP, tip;
for the thumb CMC/MCP, MCP, IP, tip are called MCP, PIP, DIP, TIP too so every finger has the same slots).
Every dataset converts to this order in one function at load time.
"""

from __future__ import annotations

NUM_JOINTS = 21
ROOT = 0
FINGERS = ("thumb", "index", "middle", "ring", "little")
SLOTS = ("mcp", "pip", "dip", "tip")

JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(f"{f}_{s}" for f in FINGERS for s in SLOTS)

#: parent of every joint in the kinematic tree (-1 for the root).
PARENTS: tuple[int, ...] = (-1,) + tuple(
    0 if s == 0 else 1 + 4 * f + s - 1 for f in range(len(FINGERS)) for s in range(len(SLOTS))
)

#: (parent, child) pairs, one per bone, in joint order.
BONES: tuple[tuple[int, int], ...] = tuple((PARENTS[j], j) for j in range(1, NUM_JOINTS))

#: The palm's joints (the wrist and every finger's base): the hand's rigid part, which a finger-like shape beside
#: the hand does not stretch (the video tracker caps its box by their extent).
PALM_JOINTS: tuple[int, ...] = (ROOT,) + tuple(1 + 4 * f for f in range(len(FINGERS)))

#: The reference bone whose length normalises 3D scale (middle MCP → PIP, Ge et al. / Zimmermann & Brox).
REF_BONE: tuple[int, int] = (JOINT_NAMES.index("middle_mcp"), JOINT_NAMES.index("middle_pip"))


def finger_joints(finger: str) -> tuple[int, int, int, int]:
    """Indices of the MCP, PIP, DIP and tip joints of ``finger``."""
    f = FINGERS.index(finger)
    return tuple(1 + 4 * f + s for s in range(4))  # type: ignore[return-value]


def joint_index(name: str) -> int:
    """Index of a joint by its canonical name, e.g. ``"ring_mcp"``."""
    try:
        return JOINT_NAMES.index(name)
    except ValueError as err:
        raise KeyError(f"unknown joint {name!r}; expected one of {JOINT_NAMES}") from err
