"""``tassn adapt --video PATH|FOLDER --ckpt stage3.ckpt --out DIR``: adapt a model to a video, then predict it.

See :func:`tassn.predict.adapt.adapt_video` for what trains and what is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .adapt import ADAPT_CROP_MODES, DEFAULT_STEPS
from .command import add_io_arguments, run_command
from .confidence import AGREEMENT_SCALE
from .model import PREDICT_STAGES
from .writers import MESH_FORMATS

#: ``adapt_video``'s loss weights as options: name, default (Stage 3's, paper Eq. 6), the term it weights.
LOSS_WEIGHTS: tuple[tuple[str, float, str], ...] = (
    ("lambda_s", 0.1, "silhouette term L_m"),
    ("lambda_h", 1.0, "pseudo-label heatmap term L_h"),
    ("lambda_c_pose", 10.0, "forward/backward pose consistency L_c^p"),
    ("lambda_c_mesh", 10.0, "forward/backward mesh consistency L_c^m"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tassn adapt",
        description="Fine-tune a trained tassn model on your own unlabeled hand video with the losses that need no "
        "labels (forward/backward consistency L_c, GrabCut silhouettes L_m, its own confident heatmap peaks L_h), "
        "then predict the video with the adapted weights. Writes what `tassn predict` writes plus adapted.ckpt "
        "and adapt.json.",
    )
    add_io_arguments(parser, "use only the first N frames")
    crop = parser.add_argument_group("hand crop")
    crop.add_argument("--crop", choices=ADAPT_CROP_MODES, default="track",
                      help="track the hand from the previous frame's prediction (default), or a fixed --box, or "
                      "the centred square of every frame")
    first = crop.add_mutually_exclusive_group()
    first.add_argument("--bbox", metavar="X,Y,W,H",
                       help="first hand box in frame pixels (top-left corner, width, height): the start for "
                       "tracking, the crop for --crop box (default: the full frame)")
    first.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="the same box as corners")
    crop.add_argument("--crop-margin", type=float,
                      help="crop side / keypoints' extent (default: the checkpoint's training margin, else 1.5)")
    crop.add_argument("--track-smoothing", type=float, default=0.5,
                      help="weight of the previous box when tracking, in [0, 1) (default 0.5)")
    crop.add_argument("--tracker-ckpt", metavar="CKPT",
                      help="a second checkpoint whose keypoints place the tracking crops (make train-tracker's), "
                      "for the pseudo-labels and the final prediction (default: --ckpt tracks itself)")
    crop.add_argument("--detector-ckpt", metavar="CKPT",
                      help="a whole-frame hand detector (make train-detector's) for the tracking crops' first box "
                      "and a check on every frame, for the pseudo-labels and the final prediction")
    crop.add_argument("--left-hand", action="store_true", help="the video shows a left hand")
    adapt = parser.add_argument_group("adaptation")
    adapt.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                       help=f"optimiser steps (default {DEFAULT_STEPS}: a 300-frame video at the CPU size adapts in about "
                       "4 minutes on 2 cores)")
    adapt.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate (default 1e-5, the paper's)")
    adapt.add_argument("--batch-size", type=int, default=4, help="clips per step (default 4)")
    adapt.add_argument("--clip-len", type=int, default=4, help="frames per clip (default 4)")
    adapt.add_argument("--min-confidence", type=float, default=0.3,
                       help="forward/backward confidence a joint needs to be a pseudo-label (default 0.3)")
    adapt.add_argument("--min-joints", type=int, default=6,
                       help="confident joints a frame needs to be trained on (default 6)")
    adapt.add_argument("--agreement-scale", type=float, default=AGREEMENT_SCALE,
                       help=f"τ of the confidence, in reference-bone lengths (default {AGREEMENT_SCALE})")
    adapt.add_argument("--heatmap-sigma", type=float,
                       help="σ (heatmap cells) of the pseudo-label heatmaps (default: the checkpoint's training σ)")
    weights = parser.add_argument_group("loss weights (Stage 3's, paper Eq. 6)")
    for name, default, term in LOSS_WEIGHTS:
        weights.add_argument(f"--{name.replace('_', '-')}", type=float, default=default,
                             help=f"{term} (default {default:g})")
    weights.add_argument("--plain-consistency-gradient", dest="consistency_keeps_scale", action="store_false",
                         help="L_c with Eq. 3–4's plain gradient, which also shrinks the hand (default: Stage 3's "
                         "recipe, the same values without that gradient component)")
    adapt.add_argument("--collapse-fraction", type=float, default=0.5,
                       help="stop when some joint's variance across frames falls below this fraction of the "
                       "un-adapted model's, keeping the last weights that passed (default 0.5; 0: never)")
    adapt.add_argument("--collapse-check-every", type=int, default=25,
                       help="steps between those checks (default 25)")
    adapt.add_argument("--seed", type=int, default=0, help="seed of the clip order (default 0)")
    adapt.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, … (default auto)")
    adapt.add_argument("--stages", nargs="+", default=list(PREDICT_STAGES), help="checkpoint stages accepted")
    out = parser.add_argument_group("outputs (as tassn predict)")
    out.add_argument("--mm-scale", type=float,
                     help="reference bone (middle finger MCP→PIP) length in mm: adds millimetre outputs")
    out.add_argument("--mesh-format", choices=MESH_FORMATS, default="obj", help="one mesh file per frame, or none")
    out.add_argument("--no-overlay", dest="overlay", action="store_false", help="skip overlay.mp4")
    out.add_argument("--fuse-reverse", action="store_true", help="average the forward and the backward pass")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_from_args(args: argparse.Namespace) -> Path:
    """Run :func:`~tassn.predict.adapt.adapt_video` with parsed arguments."""
    from .__main__ import first_box
    from .adapt import adapt_video

    return adapt_video(
        video=args.video, ckpt=args.ckpt, out_dir=args.out_dir, steps=args.steps, lr=args.lr,
        batch_size=args.batch_size, clip_len=args.clip_len, min_confidence=args.min_confidence,
        min_joints=args.min_joints, agreement_scale=args.agreement_scale, heatmap_sigma=args.heatmap_sigma,
        **{name: getattr(args, name) for name, _, _ in LOSS_WEIGHTS},
        consistency_keeps_scale=args.consistency_keeps_scale, collapse_fraction=args.collapse_fraction,
        collapse_check_every=args.collapse_check_every, box=first_box(args), crop=args.crop,
        crop_margin=args.crop_margin, track_smoothing=args.track_smoothing, tracker_ckpt=args.tracker_ckpt,
        detector_ckpt=args.detector_ckpt, left_hand=args.left_hand, fps=args.fps,
        max_frames=args.max_frames, device=args.device, seed=args.seed, allowed_stages=args.stages,
        overwrite=args.overwrite, progress=not args.quiet, mm_scale=args.mm_scale, mesh_format=args.mesh_format,
        overlay=args.overlay, fuse_reverse=args.fuse_reverse,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run; user errors print one line and return 2 instead of a traceback."""
    args = build_parser().parse_args(argv)
    return run_command(run_from_args, args)


if __name__ == "__main__":
    raise SystemExit(main())
