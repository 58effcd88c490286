"""The soft rasterizer's native CPU kernels (``soft_native.cpp``), compiled on first use.

On the CPU the row-span walk (:mod:`tassn.render.soft_spans`) is hundreds of small tensor operations per call, and
their overhead, not the arithmetic, was most of a training step's time. The C++ loop computes the same pairs with the
same formula, term for term in the same floating-point order, and the backward pass in one loop over the pairs.

It is built with ``torch.utils.cpp_extension.load`` (a C++ compiler and ninja; ~1 min the first time, then cached
under ``$TORCH_EXTENSIONS_DIR``). Without a compiler, or where the build fails, :func:`load_native` warns once and
returns None, and the renderer uses the pure-PyTorch ``spans`` method. ``TASSN_NATIVE_RENDER=0`` disables it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

#: set to 0 to never build or use the native kernels
ENV_VAR = "TASSN_NATIVE_RENDER"
SOURCE = Path(__file__).with_name("soft_native.cpp")

_lock = threading.Lock()
_loaded: ModuleType | None = None
_failed = False


def native_enabled() -> bool:
    """False when ``TASSN_NATIVE_RENDER=0`` (read on every call, so it can be changed at run time)."""
    return os.environ.get(ENV_VAR, "1").strip() != "0"


def _build_flags() -> tuple[list[str], list[str]]:
    """Compiler and linker flags. No contraction of ``a·b + c`` into FMAs except the explicit ``std::fma`` calls (they
    stand for ``torch.addcmul``, which fuses), AVX2 and hardware FMAs where torch's own kernels use them, and
    OpenMP so that ``at::parallel_for`` splits meshes across torch's threads."""
    cflags = ["-O3", "-ffp-contract=off"]
    ldflags: list[str] = []
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        cflags += ["-mavx2", "-mfma"]
    if torch.backends.openmp.is_available():
        cflags.append("-fopenmp")
        ldflags.append("-fopenmp")
    return cflags, ldflags


def _build_directory(cflags: list[str], ldflags: list[str]) -> Path:
    """A build folder per source content, flags and torch version, holding its own copy of the source.

    torch's default folder is one per extension name, and ninja rebuilds whenever the source's *path* changes, so two
    checkouts (or two versions) of the package would rebuild each other's module on every process start. Keyed by
    content, every checkout with the same source shares one build."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + repr((cflags, ldflags, torch.__version__)).encode()).hexdigest()[:16]
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")
    build_dir = root / f"tassn_soft_native-{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    copy = build_dir / SOURCE.name
    if not copy.exists() or copy.read_bytes() != source:
        tmp = copy.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(source)
        os.replace(tmp, copy)  # atomic: a concurrent build never reads half a file
    return build_dir


def _build() -> ModuleType:
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler!r} is not on PATH)")
    if not cpp_extension.is_ninja_available():
        raise RuntimeError("ninja is not installed")
    cflags, ldflags = _build_flags()
    build_dir = _build_directory(cflags, ldflags)
    log.info("loading the native soft rasterizer (compiled on first use: about a minute)")
    start = time.perf_counter()
    module = cpp_extension.load(
        name="tassn_soft_native", sources=[str(build_dir / SOURCE.name)], extra_cflags=cflags,
        extra_ldflags=ldflags, build_directory=str(build_dir), verbose=False,
    )
    log.info("native soft rasterizer ready in %.1f s", time.perf_counter() - start)
    return module


def _reason(error: Exception) -> str:
    """One line for the warning: the compiler's first error where there is one (the build log is long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if "error:" in line), lines[0] if lines else "no message")
    return f"{type(error).__name__}: {detail}"


def load_native() -> ModuleType | None:
    """The compiled module (``pairs``, ``backward``, ``drop_beyond_nearest_k``), built once per process; None when
    disabled or unavailable."""
    global _loaded, _failed
    if not native_enabled():
        return None
    if _loaded is not None or _failed:
        return _loaded
    with _lock:
        if _loaded is None and not _failed:
            try:
                _loaded = _build()
            except Exception as error:  # noqa: BLE001 (any build failure means: use the PyTorch path)
                _failed = True
                log.warning(
                    "native soft rasterizer unavailable (%s); using the pure-PyTorch 'spans' method", _reason(error)
                )
    return _loaded
