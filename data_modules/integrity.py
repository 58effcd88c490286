"""Checksums of generated files, so that a truncated or damaged cache file is found before it is used.

A generated folder records ``{relative path: "size:crc32"}`` of its files when it is complete; a later run
compares them and rebuilds (or refuses) the folder instead of training on a half-written frame.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path


def file_digest(path: Path) -> str:
    """``"size:crc32"`` of a file's bytes (CRC-32 finds truncation and bit damage; it is not a security hash)."""
    crc = 0
    size = 0
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return f"{size}:{crc:08x}"


def digest_files(folder: Path, paths: Iterable[Path]) -> dict[str, str]:
    """Digests of ``paths`` keyed by their path relative to ``folder`` (POSIX separators)."""
    folder = Path(folder)
    return {Path(p).relative_to(folder).as_posix(): file_digest(p) for p in sorted(paths)}


def damaged_files(folder: Path, digests: Mapping[str, str]) -> list[Path]:
    """The files of ``digests`` under ``folder`` that are missing or whose bytes changed."""
    folder = Path(folder)
    bad = []
    for rel, expected in digests.items():
        path = folder / rel
        try:
            if file_digest(path) != expected:
                bad.append(path)
        except OSError:
            bad.append(path)
    return bad
