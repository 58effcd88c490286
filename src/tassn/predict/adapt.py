"""``tassn adapt``: fine-tune a trained model on a user's own unlabeled video, then predict with it.

Only the losses that need no labels train (Stage 3's own ``training_step``, paper Eq. 6): L_c^p and L_c^m between
the forward and reversed passes, L_m against GrabCut silhouettes of the tracked crops and L_h against the
un-adapted model's confident heatmap peaks — pseudo-labels fixed before the first step
(:mod:`tassn.predict.pseudo_labels`), so the model cannot chase its own drifting guesses. Batch-norm statistics
stay frozen: one video's few clips would otherwise replace the statistics learnt from the training data. L_c alone
is smallest for a constant hand, so :class:`~tassn.predict.collapse_guard.CollapseGuard` stops the run (keeping the
last weights that passed) when some joint's motion across the video shrinks below a fraction of the un-adapted
model's.

The run folder holds what ``tassn predict`` writes (made with the adapted weights), ``adapted.ckpt`` (loads in
``tassn predict --ckpt``, weights-only) and ``adapt.json`` (settings, pseudo-label counts, losses).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from tassn.nets.pme import SUBNETS
from tassn.stages.checkpoints import STAGE_KEY
from tassn.stages.stage3 import Stage3

from .collapse_guard import CollapseGuard
from .confidence import AGREEMENT_SCALE
from .detector import HandDetector
from .hand_crop import make_crop_provider
from .model import PREDICT_STAGES, TRACKER_STAGES, LoadedModel, load_model
from .pseudo_labels import PseudoLabelClips, collect_pseudo_labels
from .runner import predict_video
from .video_io import FrameSource
from .writers import RUN_JSON, check_out_dir

log = logging.getLogger(__name__)

ADAPTED_CKPT = "adapted.ckpt"
ADAPT_JSON = "adapt.json"
#: Crop modes adapt offers: no keypoint file, which would be a label.
ADAPT_CROP_MODES: tuple[str, ...] = ("track", "box", "full")
#: Default step budget, sized for a 300-frame video at the CPU size (64 px crops, clips of 4, batch 4) on 2 cores:
#: a step took 0.75–1.0 s there (measured with another job on the cores), so 200 steps plus the pseudo-label pass,
#: GrabCut, 8 collapse checks and the final prediction come to about 4 minutes.
DEFAULT_STEPS = 200


class AdaptStage(Stage3):
    """Stage 3 trained on one video: its losses and ``training_step`` unchanged, every BatchNorm layer's statistics
    kept as trained (one video's frames would re-estimate them)."""

    default_fixed_norm_stats: ClassVar[tuple[str, ...]] = SUBNETS


class LossHistory(Callback):
    """Keeps each step's total loss (for ``adapt.json``)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def save_adapted_checkpoint(net: torch.nn.Module, model: LoadedModel, path: Path, info: dict[str, Any]) -> Path:
    """A stage checkpoint of plain tensors and values (loads with ``weights_only=True``): the adapted weights, the
    network configuration and the original stage, so ``tassn predict --ckpt`` takes it as is."""
    state = {f"net.{k}": v.detach().cpu().clone() for k, v in net.state_dict().items()}
    torch.save({
        "state_dict": state,
        "hyper_parameters": {"net": {"class_path": "tassn.nets.PME", "init_args": dict(model.net_config)}},
        STAGE_KEY: model.stage,
        "epoch": 0,
        "global_step": int(info.get("steps", 0)),
        "pytorch-lightning_version": lightning.__version__,
        "tassn_adapted": {k: info[k] for k in ("video", "source_checkpoint", "steps") if k in info},
        **({"datamodule_hyper_parameters": dict(model.training_data)} if model.training_data else {}),
    }, path)
    return path


def _accelerator(device: torch.device) -> tuple[str, Any]:
    if device.type == "cuda":
        return "gpu", [device.index or 0]
    return "cpu", 1


def adapt_video(
    video: str | Path,
    ckpt: str | Path,
    out_dir: str | Path,
    steps: int = DEFAULT_STEPS,
    lr: float = 1e-5,
    batch_size: int = 4,
    clip_len: int = 4,
    min_confidence: float = 0.3,
    min_joints: int = 6,
    agreement_scale: float = AGREEMENT_SCALE,
    heatmap_sigma: float | None = None,
    lambda_s: float = 0.1,
    lambda_h: float = 1.0,
    lambda_c_pose: float = 10.0,
    lambda_c_mesh: float = 10.0,
    consistency_keeps_scale: bool = True,
    collapse_fraction: float = 0.5,
    collapse_check_every: int = 25,
    box: Sequence[float] | None = None,
    crop: str = "track",
    crop_margin: float | None = None,
    track_smoothing: float = 0.5,
    tracker_ckpt: str | Path | None = None,
    detector_ckpt: str | Path | None = None,
    left_hand: bool = False,
    fps: float | None = None,
    max_frames: int | None = None,
    device: str = "auto",
    seed: int = 0,
    allowed_stages: Sequence[str] = PREDICT_STAGES,
    overwrite: bool = False,
    progress: bool = True,
    **predict_options: Any,
) -> Path:
    """Adapt the model of ``ckpt`` to ``video`` (a file or a folder of frames) and predict it; returns the run folder.

    Args:
        steps: optimiser steps (the budget; clips are drawn at random, with repetition across epochs).
        lr: Adam learning rate; batch_size, clip_len: clips per step and frames per clip.
        min_confidence: forward/backward confidence a joint needs to be a pseudo-label (others are masked in L_h
            and do not seed GrabCut); min_joints: confident joints a frame needs to be trained on.
        agreement_scale, heatmap_sigma: the confidence's ``τ`` and the pseudo-heatmaps' σ (heatmap pixels; default
            the σ of the checkpoint's training targets: L_h then asks for the peaks the network learnt to draw).
        lambda_s, lambda_h, lambda_c_pose, lambda_c_mesh: Stage 3's loss weights (paper: 0.1, 1, 10, 10).
        consistency_keeps_scale: L_c's gradient without the shrink of both directions' hand, as Stage 3's recipe
            (``experiments/stage3.yaml``); False: Eq. 3–4's plain gradient.
        collapse_fraction, collapse_check_every: stop (keeping the last weights that passed) when some joint's
            variance across frames falls below this fraction of the un-adapted model's, checked every so many
            steps and at the end (0: no check).
        box, crop, crop_margin, track_smoothing, left_hand, fps, max_frames, device: as for
            :func:`~tassn.predict.runner.predict_video` (``crop``: ``track``, ``box`` or ``full``; ``crop_margin``
            defaults to the checkpoint's training margin).
        tracker_ckpt: a second checkpoint that places the tracking crops, for the pseudo-labels and the final
            prediction alike (``predict_video``'s ``tracker_ckpt``).
        detector_ckpt: a hand detector for the tracking crops, for both alike (``predict_video``'s).
        seed: seeds the clip order.
        predict_options: more :func:`~tassn.predict.runner.predict_video` options for the final prediction
            (``mm_scale``, ``mesh_format``, ``overlay``, ``fuse_reverse``, ``confidence``, …).
    """
    started = time.perf_counter()
    check_out_dir(out_dir, overwrite)
    if crop not in ADAPT_CROP_MODES:
        raise ValueError(f"crop must be one of {ADAPT_CROP_MODES} (adapt reads no keypoint file), got {crop!r}")
    if tracker_ckpt is not None and crop != "track":
        raise ValueError(f"--tracker-ckpt places a tracking crop; it does not apply to the {crop!r} crop")
    if detector_ckpt is not None and crop != "track":
        raise ValueError(f"--detector-ckpt gives a tracking crop its first box; it does not apply to the {crop!r} crop")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be at least 1, got {steps} and {batch_size}")
    if heatmap_sigma is not None and not heatmap_sigma > 0:
        raise ValueError(f"heatmap_sigma must be > 0, got {heatmap_sigma}")
    source = FrameSource(video, fps=fps, max_frames=max_frames)
    model = load_model(ckpt, allowed_stages=allowed_stages, device=device)
    crop_margin = model.crop_margin if crop_margin is None else crop_margin
    heatmap_sigma = model.heatmap_sigma if heatmap_sigma is None else heatmap_sigma
    provider = make_crop_provider(crop, box=tuple(box) if box is not None else None, margin=crop_margin,
                                  smoothing=track_smoothing)
    tracker = None if tracker_ckpt is None else load_model(tracker_ckpt, allowed_stages=TRACKER_STAGES, device=device)
    detector = None if detector_ckpt is None else HandDetector.load(detector_ckpt, model.device)
    lightning.seed_everything(seed, verbose=False)
    labels = collect_pseudo_labels(source, provider, model, left_hand, min_confidence, agreement_scale,
                                   progress=progress, tracker=tracker, detector=detector)
    clips = PseudoLabelClips(labels, clip_len, min_joints, heatmap_sigma)
    if len(clips) == 0:
        raise ValueError(
            f"{video}: no {clip_len} consecutive frames with at least {min_joints} joints of confidence ≥ "
            f"{min_confidence} (confident joints per frame: {labels.keep.sum(axis=1).tolist()[:20]}…); lower "
            "--min-confidence or --min-joints, give a --box around the hand, or check that the video shows a hand"
        )
    stage = AdaptStage(model.net, lambda_s=lambda_s, lambda_h=lambda_h, lambda_c_pose=lambda_c_pose,
                       lambda_c_mesh=lambda_c_mesh, consistency_keeps_scale=consistency_keeps_scale, lr=lr)
    history = LossHistory()
    guard = CollapseGuard(labels.crops, collapse_fraction, collapse_check_every)
    accelerator, devices = _accelerator(model.device)
    trainer = Trainer(
        accelerator=accelerator, devices=devices, max_steps=steps, max_epochs=-1, logger=False,
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[history, guard],
    )
    loader = DataLoader(clips, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    trainer.fit(stage, train_dataloaders=loader)
    adapted = time.perf_counter()

    out_path = Path(out_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if guard.stopped_at is not None:
        log.warning("adaptation stopped at step %d: the predicted motion was collapsing (variance ratio %.3f < %.3f); "
                    "kept the weights of the last check that passed", guard.stopped_at, guard.ratios[-1][1],
                    collapse_fraction)
    info = {"video": str(Path(video).resolve()), "source_checkpoint": str(model.path.resolve()),
            "steps": trainer.global_step}
    # predict_video publishes the run folder whole (or not at all), so the checkpoint waits beside it and joins it
    # afterwards; run.json then names it where it ends up
    staging = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.adapted-", dir=out_path.parent))
    try:
        staged = save_adapted_checkpoint(stage.net, model, staging / ADAPTED_CKPT, info)
        predict_video(video, staged, out_path, box=box, crop=crop, crop_margin=crop_margin,
                      track_smoothing=track_smoothing, tracker_ckpt=tracker_ckpt, detector_ckpt=detector_ckpt, left_hand=left_hand,
                      fps=fps,
                      max_frames=max_frames,
                      device=device, agreement_scale=agreement_scale, allowed_stages=allowed_stages,
                      overwrite=overwrite, progress=progress, **predict_options)
        checkpoint = out_path / ADAPTED_CKPT
        shutil.move(staged, checkpoint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    run_json = out_path / RUN_JSON
    run = json.loads(run_json.read_text())
    run["checkpoint"] = str(checkpoint.resolve())
    run_json.write_text(json.dumps(run, indent=2, default=str) + "\n")
    report = {
        **info,
        "adapted_checkpoint": str(checkpoint.resolve()),
        "settings": {
            "steps": steps, "lr": lr, "batch_size": batch_size, "clip_len": clip_len,
            "min_confidence": min_confidence, "min_joints": min_joints, "agreement_scale": agreement_scale,
            "crop_margin": crop_margin, "heatmap_sigma": heatmap_sigma, "lambda_s": lambda_s, "lambda_h": lambda_h,
            "lambda_c_pose": lambda_c_pose, "lambda_c_mesh": lambda_c_mesh,
            "consistency_keeps_scale": consistency_keeps_scale, "collapse_fraction": collapse_fraction,
            "collapse_check_every": collapse_check_every, "crop": crop, "box": list(box) if box
            else None, "left_hand": left_hand, "seed": seed, "max_frames": max_frames,
        },
        "frames": len(labels.crops),
        "frames_trained_on": int(labels.usable_frames(min_joints).sum()),
        "clips": len(clips),
        "confident_joint_fraction": float(labels.keep.mean()),
        "collapse_stopped_at_step": guard.stopped_at,
        "collapse_variance_ratios": [{"step": s, "min_ratio": r} for s, r in guard.ratios],
        "loss_first_steps": history.losses[:10],
        "loss_last_steps": history.losses[-10:],
        "adapt_seconds": adapted - started,
        "seconds": time.perf_counter() - started,
    }
    (out_path / ADAPT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    log.info("adapted %s to %s in %d steps; outputs in %s", ckpt, video, trainer.global_step, out_path)
    return out_path
