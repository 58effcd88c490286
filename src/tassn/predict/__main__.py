"""``python -m tassn.predict --video in.mp4 --ckpt best.ckpt --out runs/predict/in`` (also ``tassn predict --video``).

Writes 2D and 3D keypoints (CSV, NPZ), meshes (OBJ/PLY) and an overlay video into a new folder; see
:func:`tassn.predict.runner.predict_video` for every option.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import yaml

from .command import add_io_arguments, run_command
from .confidence import AGREEMENT_SCALE, CHAIN_DECAY
from .decode import KEYPOINT_METHODS
from .detector import DEFAULT_DETECTOR_TOP_K
from .hand_crop import CROP_MODES, parse_bbox
from .model import PREDICT_STAGES
from .tracking import (
    DEFAULT_PALM_CAP,
    DEFAULT_REDETECT_IOU,
    DEFAULT_REFINE,
    DEFAULT_SCALE_SMOOTHING,
    DEFAULT_SEARCH,
    DEFAULT_SETTLE,
)
from .writers import MESH_FORMATS


def add_predict_video_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of a video prediction run to ``parser`` (the ``tassn predict --video`` form too)."""
    add_io_arguments(parser, "stop after this many frames")
    crop = parser.add_argument_group("hand crop")
    crop.add_argument("--crop", choices=CROP_MODES, default="auto",
                      help="auto: keypoints when --keypoints-file is given, else track (default: auto)")
    first = crop.add_mutually_exclusive_group()
    first.add_argument("--bbox", metavar="X,Y,W,H",
                       help="first hand box in frame pixels (top-left corner, width, height): the start and "
                       "re-initialisation box for tracking, the crop for --crop box (default: the full frame)")
    first.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                       help="the same box as corners")
    crop.add_argument("--keypoints-file", help="per-frame 2D keypoints or boxes (.npy, .npz, .csv)")
    crop.add_argument("--crop-margin", type=float,
                      help="crop side / keypoints' extent (default: the checkpoint's training margin, else 1.5)")
    crop.add_argument("--track-smoothing", type=float, default=0.5,
                      help="weight of the previous box's centre when tracking, in [0, 1) (default 0.5)")
    crop.add_argument("--track-max-step", type=float, default=1.25,
                      help="the tracked side changes at most by this factor per frame (default 1.25)")
    crop.add_argument("--track-floor", type=float, default=0.25,
                      help="the tracked side stays ≥ this × min(first box side, frame's shorter side) (default 0.25)")
    crop.add_argument("--reinit-confidence", type=float, default=0.1,
                      help="a frame whose median heatmap peak is under this is lost (default 0.1)")
    crop.add_argument("--track-patience", type=int, default=3,
                      help="this many lost frames in a row put the first box back (default 3)")
    crop.add_argument("--refine", type=int, default=DEFAULT_REFINE,
                      help="tracking: predict each frame on its tracked box, re-fit the box to that prediction and "
                      f"predict again, this many times (one more network step each; default {DEFAULT_REFINE})")
    crop.add_argument("--search", type=int, default=DEFAULT_SEARCH,
                      help="tracking without --bbox: on the first frame (and after a re-initialisation) try the "
                      "full frame and a grid of smaller boxes, re-fit each this many times to its own prediction, "
                      f"start from the most confident (0: start on the full frame; default {DEFAULT_SEARCH})")
    crop.add_argument("--track-extent-scale", type=float, default=1.0,
                      help="tracking: the checkpoint's predicted / true hand extent on training crops; boxes divide "
                      "the keypoints' extent by it (measure it with benchmarks/bench_predict.py --split val; "
                      "default 1)")
    crop.add_argument("--track-scale-smoothing", type=float, default=DEFAULT_SCALE_SMOOTHING,
                      help="tracking: weight of the previous side in each side update and re-fit, in [0, 1) "
                      f"(default {DEFAULT_SCALE_SMOOTHING}; the centre uses --track-smoothing)")
    crop.add_argument("--track-settle", type=int, default=DEFAULT_SETTLE,
                      help="with --tracker-ckpt: the tracker reads each frame's settled box again and the box is "
                      f"settled on that reading, this many times (one tracker step each; default {DEFAULT_SETTLE})")
    crop.add_argument("--track-palm-cap", type=float, default=DEFAULT_PALM_CAP or 0.0,
                      help="tracking: a box measured from keypoints is at most this × the palm joints' square, so a "
                      "fingertip read on clutter beside the hand does not stretch it, nor a wide-open hand's "
                      f"(e.g. 2; 0: no cap; default {DEFAULT_PALM_CAP or 0})")
    crop.add_argument("--tracker-ckpt", metavar="CKPT",
                      help="tracking: a second checkpoint whose keypoints place the crop (make train-tracker's, "
                      "trained on jittered crops: it reads where the hand is in an off-centre crop); --ckpt then "
                      "predicts each frame on the box they give (default: --ckpt tracks itself)")
    crop.add_argument("--detector-ckpt", metavar="CKPT",
                      help="tracking: a whole-frame hand detector (make train-detector's) whose box the search for "
                      "the hand starts from (without --bbox: on the first frame and after a re-initialisation; "
                      "default: a grid of candidate boxes), and which checks every frame (--redetect-iou)")
    crop.add_argument("--detector-top-k", type=int, default=DEFAULT_DETECTOR_TOP_K,
                      help=f"with --detector-ckpt: its strongest boxes searched from (default {DEFAULT_DETECTOR_TOP_K})")
    crop.add_argument("--redetect-iou", type=float, default=DEFAULT_REDETECT_IOU or 0.0,
                      help="with --detector-ckpt: the detector reads every frame, and a tracked box that overlaps its "
                      "box by less than this IoU is replaced by it (0: first boxes only; default "
                      f"{DEFAULT_REDETECT_IOU or 0})")
    crop.add_argument("--left-hand", action="store_true", help="the video shows a left hand")
    model = parser.add_argument_group("model")
    model.add_argument("--fuse-reverse", action="store_true",
                       help="average the forward and the backward pass (default: the forward pass)")
    model.add_argument("--no-confidence", dest="confidence", action="store_false",
                       help="skip the backward pass and the forward/backward confidence (about twice as fast)")
    model.add_argument("--agreement-scale", type=float, default=AGREEMENT_SCALE,
                       help="forward/backward disagreement (reference-bone lengths) at which the confidence's "
                       f"agreement factor is e^-1/2 (default {AGREEMENT_SCALE})")
    model.add_argument("--chain-decay", type=float, default=CHAIN_DECAY,
                       help="the confidence's chain prior: × this per bone between a joint and the wrist, in (0, 1] "
                       f"(1: none; default {CHAIN_DECAY})")
    model.add_argument("--clip-length", type=int,
                       help="restart the recurrence every N frames (default: carry it through the video)")
    model.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, … (default auto)")
    model.add_argument("--keypoint-method", choices=KEYPOINT_METHODS, default="quadratic")
    model.add_argument("--heatmap-temperature", type=float, default=0.25, help="soft-argmax temperature")
    model.add_argument("--net-config", help="YAML of PME arguments overriding the checkpoint's")
    model.add_argument("--stages", nargs="+", default=list(PREDICT_STAGES), help="checkpoint stages accepted")
    out = parser.add_argument_group("outputs")
    out.add_argument("--mm-scale", type=float,
                     help="reference bone (middle finger MCP→PIP) length in mm: adds millimetre outputs")
    out.add_argument("--mesh-format", choices=MESH_FORMATS, default="obj", help="one mesh file per frame, or none")
    out.add_argument("--no-overlay", dest="overlay", action="store_false", help="skip overlay.mp4")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _net_overrides(path: str | None) -> dict | None:
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"net config {file} does not exist")
    data = yaml.safe_load(file.read_text()) or {}
    if isinstance(data, dict) and "init_args" in data:
        data = data["init_args"]
    if not isinstance(data, dict):
        raise ValueError(f"net config {file} must be a mapping of PME arguments (or class_path/init_args)")
    return data


def first_box(args: argparse.Namespace) -> tuple[float, ...] | None:
    """The user's first box as corners, from ``--bbox x,y,w,h`` or ``--box x0 y0 x1 y1``."""
    if getattr(args, "bbox", None) is not None:
        return parse_bbox(args.bbox)
    return tuple(args.box) if args.box is not None else None


def track_options(args: argparse.Namespace) -> dict[str, float | None]:
    """The tracking options ``--track-max-step``, ``--track-floor``, ``--reinit-confidence``, ``--track-patience``,
    ``--refine``, ``--search``, ``--track-extent-scale``, ``--track-scale-smoothing``, ``--track-settle``,
    ``--track-palm-cap``, ``--redetect-iou``."""
    return {"max_scale_step": args.track_max_step, "floor_fraction": args.track_floor,
            "reinit_confidence": args.reinit_confidence, "patience": args.track_patience, "refine": args.refine,
            "search": args.search, "extent_scale": args.track_extent_scale,
            "scale_smoothing": args.track_scale_smoothing, "settle_passes": args.track_settle,
            "palm_cap": args.track_palm_cap or None, "redetect_iou": args.redetect_iou or None}


def run_from_args(args: argparse.Namespace) -> Path:
    """Run :func:`predict_video` with parsed arguments."""
    from .runner import predict_video

    return predict_video(
        video=args.video, ckpt=args.ckpt, out_dir=args.out_dir, box=first_box(args),
        keypoints_file=args.keypoints_file, crop=args.crop, crop_margin=args.crop_margin,
        track_smoothing=args.track_smoothing, track_options=track_options(args), tracker_ckpt=args.tracker_ckpt,
        detector_ckpt=args.detector_ckpt, detector_top_k=args.detector_top_k,
        left_hand=args.left_hand, fuse_reverse=args.fuse_reverse, confidence=args.confidence,
        agreement_scale=args.agreement_scale, chain_decay=args.chain_decay, mm_scale=args.mm_scale,
        clip_length=args.clip_length, mesh_format=args.mesh_format, overlay=args.overlay, fps=args.fps,
        max_frames=args.max_frames, device=args.device, keypoint_method=args.keypoint_method,
        heatmap_temperature=args.heatmap_temperature, allowed_stages=args.stages,
        net_overrides=_net_overrides(args.net_config), overwrite=args.overwrite, progress=not args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run; user errors print one line and return 2 instead of a traceback."""
    parser = add_predict_video_arguments(argparse.ArgumentParser(
        prog="tassn predict",
        description="Run a trained tassn model on a hand video: 2D and 3D keypoints (CSV, NPZ), meshes (OBJ/PLY) "
        "and an overlay video, written into a new folder.",
        epilog="Hand crops: --crop track (the default) follows the previous frame's keypoints with bounded change "
        "(side ×/÷ --track-max-step per frame, never under its floor, smoothed centre) and goes back to the first "
        "box (--bbox, else the full frame) after --track-patience frames whose confidence is under "
        "--reinit-confidence; --crop box uses --bbox for every frame; --crop keypoints reads per-frame keypoints or "
        "boxes from --keypoints-file; --crop full uses the centred square of every frame. Nothing is downloaded. (LightningCLI's predict over a "
        "config's data: tassn predict --config … --help.)",
    ))
    args = parser.parse_args(argv)
    return run_command(run_from_args, args)


if __name__ == "__main__":
    raise SystemExit(main())
