"""What a make target was built from, as one digest: its config files by content and its command's arguments.

The Makefile keeps the digest in a file beside each stage (``inputs.sha256``) and rewrites that file only when the
digest changes, so a finished stage is trained again when what it would be trained with changed — a value in a
config file, the seed, ``TRAIN_ARGS`` — and not when a file was only touched or a comment edited. Config files count
as their parsed YAML (comments, quoting and layout do not count); a file that is not valid YAML counts by its bytes,
and the command then reports it. Called by make before every run (also under ``make -n``), so it imports no torch::

    python -m tassn.config_digest OUT [--done DONE] FILE ... [-- ARG ...]

``--done`` names the target the digest guards; it holds the digest it was made with (:func:`update`). A finished
target that holds none (a run folder from before the digest existed) is adopted as made from the current inputs when
it is newer than every file, as make's timestamps judged it before, so nothing is trained again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _file_content(path: Path) -> Any:
    """A config file's parsed YAML, or its bytes' digest when PyYAML is missing or the file is not valid YAML."""
    raw = path.read_bytes()
    try:
        import yaml

        return {"yaml": yaml.safe_load(raw)}
    except Exception:  # noqa: BLE001 - any unreadable YAML still counts, by its bytes
        return {"bytes": hashlib.sha256(raw).hexdigest()}


def digest(files: Sequence[Path], args: Sequence[str]) -> str:
    """The SHA-256 of the files' contents (in order, by :func:`_file_content`) and the arguments."""
    record = {"files": [[str(f), _file_content(f)] for f in files], "args": list(args)}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def _write(path: Path, value: str, mtime: float | None = None) -> None:
    """``value`` into ``path`` atomically; dated ``mtime`` when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def update(out: Path, files: Sequence[Path], args: Sequence[str], done: Path | None = None) -> str:
    """Bring ``out`` up to date for make; returns ``same`` (``done`` was made from these inputs), ``changed`` (it
    was made from others) or ``new`` (nothing made yet).

    ``done`` records the digest it was made with (the Makefile copies ``out`` into it when the target is made), and
    ``out`` is dated before ``done`` exactly when that digest is the current one, so make's timestamp rule decides
    by content: inputs changed and changed back are the inputs the target was made with. An empty ``done`` (made
    before the digest existed) is adopted when it is newer than every file (module doc)."""
    value = digest(files, args)
    current = out.read_text().strip() if out.is_file() else None
    if done is None or not done.is_file():
        if current != value:
            _write(out, value)
        return "new"
    done_time = done.stat().st_mtime
    built = done.read_text().strip()
    if not built and all(f.stat().st_mtime <= done_time for f in files):
        _write(done, value, done_time)  # adopted: the recorded digest is the current one, the date stays
        built = value
    if built == value:
        if current != value or out.stat().st_mtime >= done_time:
            _write(out, value, done_time - 1)
        return "same"
    if current != value or out.stat().st_mtime <= done_time:
        _write(out, value, max(time.time(), done_time + 1))
    return "changed"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args_after = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m tassn.config_digest", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the digest file (rewritten only when the digest changes)")
    parser.add_argument("files", type=Path, nargs="*", help="config files, counted by their parsed content")
    parser.add_argument("--done", type=Path, help="the target the digest guards (its fit.done / data.done)")
    ns = parser.parse_intermixed_args(argv)
    missing = [str(f) for f in ns.files if not f.is_file()]
    if missing:
        print(f"config_digest: config file not found: {', '.join(missing)} (for {ns.out})", file=sys.stderr)
        return 2
    state = update(ns.out, ns.files, args_after, ns.done)
    if state == "changed" and ns.done is not None and ns.done.exists():
        print(f"make: the inputs of {ns.done.parent} changed since it was made (config values or arguments)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
