"""Read downloaded pickles as data: an unpickler that resolves only an allow-list of exact ``(module, name)``.

A pickle names the callables that rebuild its objects, and a plain :func:`pickle.load` imports and calls whatever
it names (``os.system`` included). The MANO model and the MHP calibrations are pickles that users download, so
they are read with :class:`AllowListUnpickler`: every name outside the allow-list is refused *before* anything is
called, with the file and the ``module.name`` in the message. Shared by ``tassn.hand`` and ``data_modules``; it
imports nothing but the standard library and numpy.
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

#: a resolver returns the object a ``(module, name)`` pair stands for; resolved only when a file asks for it.
Resolver = Callable[[], Any]


class UntrustedFileError(ValueError):
    """A downloaded file asked for code tassn does not run; it was refused before anything of it ran."""


def _attr(modules: tuple[str, ...], name: str) -> Resolver:
    """Resolver of ``name`` from the first of ``modules`` that imports (module paths moved between releases)."""

    def resolve() -> Any:
        for module in modules:
            try:
                return getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
        raise ImportError(f"none of {list(modules)} provides {name}")

    return resolve


def _builtin(obj: Any) -> Resolver:
    return lambda: obj


_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")

#: What a pickled numpy array or scalar needs (protocols 0–5, numpy 1 and 2 module paths, Python 2 pickles).
NUMPY_GLOBALS: dict[tuple[str, str], Resolver] = {
    ("numpy", "ndarray"): _attr(("numpy",), "ndarray"),
    ("numpy", "dtype"): _attr(("numpy",), "dtype"),
    **{(m, "_reconstruct"): _attr(_MULTIARRAY, "_reconstruct") for m in _MULTIARRAY},
    **{(m, "scalar"): _attr(_MULTIARRAY, "scalar") for m in _MULTIARRAY},
    **{(m, "_frombuffer"): _attr(_NUMERIC, "_frombuffer") for m in _NUMERIC},
    # how Python 3 writes bytes into a protocol-2 pickle
    ("_codecs", "encode"): _attr(("_codecs",), "encode"),
}

def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocols 0 and 1) for plain objects only: a bare instance of ``cls``.

    ``cls`` already passed the allow-list; other ``base`` classes would call their ``__new__``/``__init__``.
    """
    if base is not object or not isinstance(cls, type) or state is not None:
        raise UntrustedFileError(f"refused copyreg._reconstructor({cls!r}, {base!r}, …); expected a plain object")
    return object.__new__(cls)


#: Plain containers that Python 2 and 3 pickles name by module, and how protocols 0–1 create plain objects.
BUILTIN_GLOBALS: dict[tuple[str, str], Resolver] = {
    **{
        (module, name): _builtin(obj)
        for module in ("builtins", "__builtin__")
        for name, obj in (("set", set), ("frozenset", frozenset), ("complex", complex), ("object", object))
    },
    **{(module, "_reconstructor"): _builtin(_reconstructor) for module in ("copyreg", "copy_reg")},
}


class AllowListUnpickler(pickle.Unpickler):
    """An unpickler that resolves exactly the ``(module, name)`` pairs of ``allowed`` and refuses the rest."""

    def __init__(self, file: IO[bytes], path: str | os.PathLike, allowed: Mapping[tuple[str, str], Resolver],
                 **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.path = Path(path)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        resolve = self.allowed.get((module, name))
        if resolve is None:
            raise UntrustedFileError(
                f"{self.path}: refused to load {module}.{name}: this file is read as data and may only hold "
                "arrays and plain values (see SECURITY.md)"
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise UntrustedFileError(f"{self.path}: refused a persistent reference; expected plain data")


def load_pickle(path: str | os.PathLike, allowed: Mapping[tuple[str, str], Resolver],
                encoding: str = "latin1") -> Any:
    """Unpickle the file at ``path`` resolving only ``allowed``; raises :class:`UntrustedFileError` otherwise.

    ``encoding="latin1"`` reads Python 2 pickles (numpy arrays among them) as they were written.
    """
    with Path(path).open("rb") as fh:
        return AllowListUnpickler(fh, path, allowed, encoding=encoding).load()
