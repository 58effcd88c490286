"""How the video commands (`tassn predict --video`, `tassn adapt`) end: an output path, or one line and status 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path


def run_command(run: Callable[[argparse.Namespace], Path], args: argparse.Namespace) -> int:
    """Run ``run(args)`` with INFO logging; bad input (named in its message) prints one line and returns 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = run(args)
    except (FileNotFoundError, FileExistsError, PermissionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0
