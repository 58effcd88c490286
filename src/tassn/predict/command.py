"""What the video commands (`tassn predict --video`, `tassn adapt`) share: their input/output options, and how they
end (an output path, or one line and status 2)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .model import PREDICT_STAGES


def add_io_arguments(parser: argparse.ArgumentParser, max_frames_help: str) -> None:
    """The "input and output" options, one spelling for both commands."""
    io = parser.add_argument_group("input and output")
    io.add_argument("--video", required=True, help="video file OpenCV can read, or a folder of frame images")
    io.add_argument("--ckpt", required=True, help="checkpoint of a trained stage (" + ", ".join(PREDICT_STAGES) + ")")
    io.add_argument("--out", "--out-dir", dest="out_dir", required=True, help="run folder (new, or empty)")
    io.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    io.add_argument("--fps", type=float, help="frame rate of a frame folder (default 30) or to override the video's")
    io.add_argument("--max-frames", type=int, help=max_frames_help)


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
