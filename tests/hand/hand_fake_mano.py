"""Write small files in the format of MANO_RIGHT.pkl: a Python-2-style pickle (protocol 2, old numpy/scipy
module paths) whose ``shapedirs`` is a chumpy ``Ch`` — made here by a stand-in class registered as
``chumpy.ch.Ch`` while pickling, so chumpy itself is never needed."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse as sp


class Ch:
    """Pickles like chumpy's ``Ch``: a plain object whose state dict holds the array under ``'x'``."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._dirty_vars: set = set()
        self._itr = None


Ch.__module__ = "chumpy.ch"
Ch.__qualname__ = "Ch"
Ch.__name__ = "Ch"


def dumps_like_mano(data: dict, protocol: int = 2) -> bytes:
    """Pickle ``data`` the way the MANO release did (values of type :class:`Ch` pickle as ``chumpy.ch.Ch``)."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    ch.Ch = Ch
    chumpy.ch = ch
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": ch})
    try:
        raw = pickle.dumps(data, protocol=protocol)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    # the module paths numpy and scipy had when MANO was released
    for new, old in (
        (b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"),
        (b"cscipy.sparse._csc\n", b"cscipy.sparse.csc\n"),
    ):
        raw = raw.replace(new, old)
    return raw


def mano_arrays(
    v_template: np.ndarray, faces: np.ndarray, weights: np.ndarray, j_regressor: np.ndarray, seed: int = 0
) -> dict:
    """A MANO-like dict (metres) around the given mesh; ``shapedirs`` becomes a chumpy ``Ch``."""
    rng = np.random.default_rng(seed)
    v = v_template.shape[0]
    kintree = np.array(
        [[4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], list(range(16))], dtype=np.int64
    )
    return {
        "v_template": v_template.astype(np.float64),
        "f": faces.astype(np.uint32),
        "weights": weights.astype(np.float64),
        "J_regressor": sp.csc_matrix(j_regressor),
        "kintree_table": kintree,
        "shapedirs": Ch(rng.normal(scale=1e-3, size=(v, 3, 10))),
        "posedirs": rng.normal(scale=1e-4, size=(v, 3, 135)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "hands_mean": np.zeros(45),
    }


def write_mano(path: Path, data: dict) -> Path:
    path.write_bytes(dumps_like_mano(data))
    return path
