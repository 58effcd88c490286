"""Look at a trained checkpoint's 2D: its predicted keypoints beside the labels on a few validation clips, as a PNG.

A 2D PCK figure says how often a joint lands within 5 px, not where the misses go (a finger swapped, a joint on the
background, every joint on one blob); the sheet shows it. The clips are run recurrently, as at test time, and the
last frame of each is drawn (predicted left, labelled right)::

    python benchmarks/keypoint_sheet.py runs/ablation/seed-0/synthetic-cpu/stage3/checkpoints/last.ckpt --out kp.png

Validation videos by default; ``--split test`` only to look at a table already made, never to choose.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_check import build, keypoint_png  # noqa: E402 (the sibling benchmark's builder and drawing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a stage's checkpoint (tassn fit's last.ckpt)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/keypoints.png"))
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--config", default="cpu", help="sizes overlay experiments/<config>.yaml")
    parser.add_argument("--frames", type=int, default=6, help="clips drawn (one batch at most)")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        parser.error(f"no such checkpoint: {args.checkpoint}")
    torch.set_num_threads(1)
    cli = build("stage3", args.config, None, [f"--model.init_args.init_from={args.checkpoint}"])
    model, dm = cli.model, cli.datamodule
    dm.setup("fit" if args.split == "val" else "test")
    model.setup("fit")  # loads init_from
    keypoint_png(model, dm.val_dataloader() if args.split == "val" else dm.test_dataloader(), args.out, args.frames)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
