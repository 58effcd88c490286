"""Read ``MANO_RIGHT.pkl`` without chumpy and bring its right hand into our conventions (arrays; the
:class:`~tassn.hand.template.HandTemplate` of it is :func:`tassn.hand.template.mano_template`).

The MANO model files are Python 2 pickles holding chumpy ``Ch`` arrays and scipy sparse matrices. They are read
through an allow-list (:data:`MANO_GLOBALS`, exact ``(module, name)`` pairs): chumpy's ``Ch`` becomes a small
stand-in that keeps the array chumpy stores under ``'x'``, old numpy/scipy module paths resolve to today's classes,
and any other name is refused before it is called, so neither chumpy nor an old scipy is needed and the file
cannot run code. The model is
licensed separately: download it from https://mano.is.tue.mpg.de (we never ship it).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tassn.safe_load import BUILTIN_GLOBALS, NUMPY_GLOBALS, Resolver, UntrustedFileError, load_pickle

from .kinematics import CANONICAL_REST
from .skeleton import FINGERS, NUM_JOINTS, finger_joints

MANO_URL = "https://mano.is.tue.mpg.de"
MANO_KEYS = ("v_template", "f", "weights", "J_regressor", "kintree_table", "shapedirs", "posedirs")
MANO_NUM_JOINTS = 16
#: MANO's kinematic tree: wrist, then index, middle, little, ring, thumb (three joints each).
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
#: the MANO joints of each of our fingers (MCP, PIP, DIP), in :data:`FINGERS` order.
MANO_FINGER_JOINTS = {
    "thumb": (13, 14, 15),
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "ring": (10, 11, 12),
    "little": (7, 8, 9),
}
#: the vertices commonly used as MANO fingertips.
MANO_TIP_VERTICES = {"thumb": 744, "index": 320, "middle": 443, "ring": 554, "little": 671}


class _ChumpyStandIn:
    """Takes the place of chumpy's ``Ch`` while unpickling; keeps its state dict and runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"state": state}

    def array(self) -> np.ndarray:
        if "x" not in self.state:
            raise ValueError(f"a chumpy object without an array under 'x' (state keys {sorted(self.state)})")
        x = self.state["x"]
        return x.array() if isinstance(x, _ChumpyStandIn) else np.asarray(x)


def _sparse_globals() -> dict[tuple[str, str], Resolver]:
    """scipy's sparse matrix classes under every module path they were pickled from."""
    pairs: dict[tuple[str, str], Resolver] = {}
    for fmt in ("csc", "csr", "coo"):
        cls = f"{fmt}_matrix"
        for module in ("scipy.sparse", f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}"):
            pairs[(module, cls)] = _sparse_class(cls)
    return pairs


def _sparse_class(name: str) -> Resolver:
    return lambda: getattr(sp, name)


#: Everything a MANO pickle may name: numpy arrays, scipy sparse matrices and chumpy's ``Ch`` (as the stand-in).
MANO_GLOBALS: dict[tuple[str, str], Resolver] = {
    **NUMPY_GLOBALS,
    **BUILTIN_GLOBALS,
    **_sparse_globals(),
    ("chumpy.ch", "Ch"): lambda: _ChumpyStandIn,
    ("chumpy", "Ch"): lambda: _ChumpyStandIn,
}


def _to_array(value: Any, key: str, path: Path) -> np.ndarray:
    try:
        if isinstance(value, _ChumpyStandIn):
            return value.array()
        if sp.issparse(value):
            return value.toarray()
        return np.asarray(value)
    except ValueError as err:
        raise ValueError(f"{path}: MANO key {key!r} could not be read as an array: {err}") from err


@dataclass(frozen=True)
class ManoModel:
    """The arrays of a MANO pickle as stored (metres, MANO joint order): ``v_template V×3``, ``f F×3``,
    ``weights V×16``, ``J_regressor 16×V`` (dense), ``kintree_table 2×16``, ``shapedirs V×3×S``,
    ``posedirs V×3×135``."""

    v_template: np.ndarray
    f: np.ndarray
    weights: np.ndarray
    J_regressor: np.ndarray
    kintree_table: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray


def read_mano(path: str | os.PathLike) -> ManoModel:
    """Read and check the arrays of a MANO ``.pkl`` (no chumpy needed). Raises with the path and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"MANO model file not found: {path}. Register and download MANO_RIGHT.pkl from {MANO_URL} "
            "(models/MANO_RIGHT.pkl in the MANO download), then pass its path."
        )
    try:
        data = load_pickle(path, MANO_GLOBALS)
    except UntrustedFileError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ImportError,
        IndexError,
        TypeError,
        ValueError,
    ) as err:
        raise ValueError(f"{path} is not a readable MANO pickle ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a MANO pickle holding a dict, found {type(data).__name__}")
    missing = [k for k in MANO_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: MANO pickle is missing key(s) {missing}; expected keys {list(MANO_KEYS)}")
    arrays = {k: _to_array(data[k], k, path) for k in MANO_KEYS}
    _check_shapes(arrays, path)
    return ManoModel(**arrays)


def _check_shapes(a: dict[str, np.ndarray], path: Path) -> None:
    v = a["v_template"].shape[0] if a["v_template"].ndim == 2 else -1
    expected = {
        "v_template": (v, 3),
        "f": (a["f"].shape[0], 3),
        "weights": (v, MANO_NUM_JOINTS),
        "J_regressor": (MANO_NUM_JOINTS, v),
        "kintree_table": (2, MANO_NUM_JOINTS),
    }
    for key, shape in expected.items():
        if a[key].shape != shape:
            raise ValueError(f"{path}: MANO key {key!r} has shape {a[key].shape}, expected {shape} (V = {v})")
    for key in ("shapedirs", "posedirs"):
        if a[key].ndim != 3 or a[key].shape[:2] != (v, 3):
            raise ValueError(f"{path}: MANO key {key!r} has shape {a[key].shape}, expected ({v}, 3, K)")
    if v <= max(MANO_TIP_VERTICES.values()):
        raise ValueError(
            f"{path}: MANO mesh has {v} vertices; fingertip vertex {max(MANO_TIP_VERTICES.values())} needs more"
        )
    parents = a["kintree_table"][0].astype(np.int64)
    parents = np.where(parents >= MANO_NUM_JOINTS, -1, parents)
    if tuple(parents.tolist()) != MANO_PARENTS:
        raise ValueError(
            f"{path}: MANO kintree_table parents {parents.tolist()} differ from MANO's {list(MANO_PARENTS)}"
        )
    if a["f"].min() < 0 or a["f"].max() >= v:
        raise ValueError(f"{path}: MANO faces index vertices outside 0…{v - 1}")


def mano_to_canonical() -> tuple[list[int], list[int]]:
    """For each of our 21 joints: the MANO joint it is (or −1) and the fingertip vertex it is (or −1)."""
    joint = [-1] * NUM_JOINTS
    vertex = [-1] * NUM_JOINTS
    joint[0] = 0
    for f in FINGERS:
        ids = finger_joints(f)
        for s in range(3):
            joint[ids[s]] = MANO_FINGER_JOINTS[f][s]
        vertex[ids[3]] = MANO_TIP_VERTICES[f]
    return joint, vertex


def _kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation ``R`` minimising ``‖R·source − target‖`` over corresponding centred-at-origin points ``N×3``."""
    u, _, vt = np.linalg.svd(source.T @ target)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


@dataclass(frozen=True)
class ManoMesh:
    """MANO's right hand in our conventions (numpy, rest pose, mm): what :class:`HandTemplate` is built from."""

    vertices: np.ndarray
    faces: np.ndarray
    skin_weights: np.ndarray
    joint_regressor: np.ndarray
    rest_joints: np.ndarray


def load_mano_mesh(path: str | os.PathLike) -> ManoMesh:
    """MANO's right hand in our conventions.

    Metres become millimetres; the 16 MANO joints plus the five fingertip vertices become our 21 joints; the
    mesh is moved so the wrist is at the origin and rotated (best rigid fit of its joints to the canonical
    rest skeleton) into our camera-like rest axes. Skinning follows MANO's weights; MANO's shape and pose
    blend shapes are not applied (read them with :func:`read_mano`).
    """
    model = read_mano(path)
    v = model.v_template.astype(np.float64) * 1000.0
    n = v.shape[0]
    joint_of, vertex_of = mano_to_canonical()
    regressor = np.zeros((NUM_JOINTS, n))
    weights = np.zeros((n, NUM_JOINTS))
    for j in range(NUM_JOINTS):
        if joint_of[j] >= 0:
            regressor[j] = model.J_regressor[joint_of[j]]
            weights[:, j] = model.weights[:, joint_of[j]]
        else:
            regressor[j, vertex_of[j]] = 1.0
    sums = regressor.sum(1, keepdims=True)
    if np.any(np.abs(sums - 1.0) > 1e-3):
        raise ValueError(
            f"{path}: MANO J_regressor rows must sum to 1 (got {sums.ravel()[:16].round(4).tolist()})"
        )
    regressor /= sums
    weights /= np.clip(weights.sum(1, keepdims=True), 1e-12, None)

    joints = regressor @ v
    v = v - joints[0]
    joints = joints - joints[0]
    rot = _kabsch(joints, CANONICAL_REST.joints.double().numpy())
    v = v @ rot.T
    joints = joints @ rot.T
    return ManoMesh(
        vertices=v.astype(np.float32),
        faces=model.f.astype(np.int64),
        skin_weights=weights.astype(np.float32),
        joint_regressor=regressor.astype(np.float32),
        rest_joints=joints,
    )
