"""The one video prediction path: a video and a checkpoint in, a run folder of keypoints, meshes and an overlay out.

``tassn predict --video``, ``python -m tassn.predict``, ``tassn adapt`` (its final prediction) and the benchmarks
all come here. The network runs over the frames in order (:mod:`tassn.predict.passes`) with the recurrence
carried through the whole video, the crop tracking the hand from the previous frame's prediction. The same crops
then run backwards (the paper's reversed temporal measurement): where the two passes disagree the joint gets a low
confidence (:mod:`tassn.predict.confidence`), and with ``fuse_reverse`` the two passes are averaged. Every output
file is written from one :class:`~tassn.predict.writers.PredictionArrays`, and the overlay video is drawn from the
saved ``predictions.npz``, so pictures and numbers cannot disagree.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tassn.render import fit_weak_perspective

from .confidence import (
    AGREEMENT_SCALE,
    CHAIN_DECAY,
    CONFIDENCE3D_KEY,
    DISAGREEMENT_KEY,
    FORMULA,
    forward_backward_confidence,
)
from .crop_box import CropBox
from .decode import KEYPOINT_METHODS
from .detector import DEFAULT_DETECTOR_TOP_K, HandDetector
from .hand_crop import make_crop_provider
from .model import PREDICT_STAGES, TRACKER_STAGES, load_model, resolve_device
from .overlay import OverlayStyle, render_overlay_video
from .passes import (
    CropStore,
    Stepper,
    fuse_passes,
    run_forward,
    run_reverse,
    segment_starts,
    unflip_keypoints,
)
from .video_io import FrameSource
from .writers import (
    MESH_DIR,
    MESH_FORMATS,
    OVERLAY_MP4,
    PREDICTIONS_NPZ,
    RUN_JSON,
    PredictionArrays,
    check_out_dir,
    run_out_dir,
    write_confidence_json,
    write_keypoint_csvs,
    write_meshes,
)

log = logging.getLogger(__name__)

#: What the numbers in a run's files mean (copied into ``run.json``).
UNITS: dict[str, str] = {
    "kp2d": "frame pixels (x, y), OpenCV pixel centres",
    "kp3d": "root-relative, scale-normalised (middle MCP→PIP = 1), camera axes x right, y down, z forward",
    "camera": "weak perspective (s, tx, ty): kp2d ≈ s · kp3d[:, :2] + t",
    CONFIDENCE3D_KEY: FORMULA,
}


def weak_perspective_camera(pose: np.ndarray, kp2d: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """``F×3`` ``(s, tx, ty)``: the training's weak-perspective fit (:func:`tassn.render.fit_weak_perspective`)
    of the pose's ``xy`` to the 2D keypoints, each weighted by its heatmap confidence (a negative peak, which a
    poorly trained network can give, weighs nothing rather than pushing the fit away)."""
    weights = torch.as_tensor(confidence, dtype=torch.float64).clamp_min(0.0)
    camera = fit_weak_perspective(torch.as_tensor(pose, dtype=torch.float64), torch.as_tensor(kp2d, dtype=torch.float64),
                                  weights)
    return torch.cat([camera.scale[..., None], camera.translation], dim=-1).numpy()


def assemble(
    kp_crop: np.ndarray,
    confidence: np.ndarray,
    pose: np.ndarray,
    mesh: np.ndarray,
    boxes: np.ndarray,
    crop_size: int,
    faces: np.ndarray,
    fps: float,
    size: tuple[int, int],
    mirror: bool,
    mm_scale: float | None,
    extra: dict[str, np.ndarray] | None = None,
) -> PredictionArrays:
    """The network's per-frame outputs → :class:`PredictionArrays` in the original frame.

    ``kp_crop F×21×2`` are in the pixels of the crop the network saw (flipped when ``mirror``), ``boxes F×3``
    ``(cx, cy, side)``; keypoints go to frame pixels, a mirrored (left) hand is mirrored back (``X → −X`` in 3D,
    which also flips the faces' winding), and the weak-perspective camera the overlay draws the mesh with is fitted
    from the pose's ``xy`` to the 2D keypoints, weighted by their confidence.
    """
    kp_crop = unflip_keypoints(kp_crop, crop_size, mirror)
    kp2d = np.stack([CropBox(*box).to_frame(kp, crop_size) for box, kp in zip(boxes, kp_crop, strict=True)])
    faces = np.asarray(faces, dtype=np.int64)
    if mirror:
        flip = np.array([-1.0, 1.0, 1.0])
        pose = pose * flip
        mesh = mesh * flip.astype(mesh.dtype)
        faces = faces[:, ::-1].copy()
        extra = {k: v * flip if k.startswith("kp3d_") else v for k, v in (extra or {}).items()}
    camera = weak_perspective_camera(pose, kp2d, confidence)
    n = len(kp2d)
    return PredictionArrays(
        frame_index=np.arange(n, dtype=np.int64),
        time_s=np.arange(n) / fps,
        crop_boxes=np.asarray(boxes, dtype=np.float64),
        kp2d=kp2d,
        confidence=np.asarray(confidence, dtype=np.float64),
        kp3d=np.asarray(pose, dtype=np.float64),
        mesh=np.asarray(mesh, dtype=np.float32),
        faces=faces,
        camera=camera,
        fps=fps,
        image_size=size,
        mm_scale=mm_scale,
        extra=extra or {},
    )


def write_run_outputs(
    arrays: PredictionArrays,
    out_path: Path,
    source: FrameSource,
    mesh_format: str,
    overlay: bool,
    style: OverlayStyle | None,
    progress: bool,
) -> list[str]:
    """``predictions.npz``, the CSVs, the meshes and (from the saved NPZ) the overlay; returns what was written."""
    npz = arrays.save_npz(out_path / PREDICTIONS_NPZ)
    outputs = [npz, *write_keypoint_csvs(arrays, out_path)]
    confidence_json = write_confidence_json(arrays, out_path, FORMULA)
    if confidence_json is not None:
        outputs.append(confidence_json)
    meshes = write_meshes(arrays, out_path, mesh_format)
    if overlay:
        outputs.append(render_overlay_video(source, npz, out_path / OVERLAY_MP4, style=style, progress=progress))
    names = sorted(p.name for p in outputs)
    return names + ([f"{MESH_DIR}/ ({len(meshes)} {mesh_format} files)"] if meshes else [])


def predict_video(
    video: str | Path,
    ckpt: str | Path,
    out_dir: str | Path,
    box: Sequence[float] | None = None,
    keypoints_file: str | Path | None = None,
    crop: str = "auto",
    crop_margin: float | None = None,
    track_smoothing: float = 0.5,
    track_options: dict[str, Any] | None = None,
    tracker_ckpt: str | Path | None = None,
    detector_ckpt: str | Path | None = None,
    detector_top_k: int = DEFAULT_DETECTOR_TOP_K,
    left_hand: bool = False,
    fuse_reverse: bool = False,
    confidence: bool = True,
    agreement_scale: float = AGREEMENT_SCALE,
    chain_decay: float = CHAIN_DECAY,
    mm_scale: float | None = None,
    clip_length: int | None = None,
    mesh_format: str = "obj",
    overlay: bool = True,
    fps: float | None = None,
    max_frames: int | None = None,
    device: str = "auto",
    keypoint_method: str = "quadratic",
    heatmap_temperature: float = 0.25,
    allowed_stages: Sequence[str] = PREDICT_STAGES,
    net_overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    style: OverlayStyle | None = None,
) -> Path:
    """Run a trained model on a video; returns the run folder.

    Args:
        video: a video file OpenCV can read, or a folder of frame images (sorted by the numbers in their names).
        ckpt: a Lightning checkpoint written by a tassn stage (see :data:`~tassn.predict.model.PREDICT_STAGES`).
        out_dir: the run folder; must not exist or be empty unless ``overwrite``.
        box: hand box ``(x0, y0, x1, y1)`` in frame pixels: the crop for ``crop="box"``, the start for ``track``.
        keypoints_file: per-frame 2D keypoints/boxes for ``crop="keypoints"`` (see :class:`KeypointFileCrop`).
        crop: ``auto`` (keypoints when a file is given, else track), ``box``, ``keypoints``, ``track`` or ``full``.
        crop_margin: crop side = margin × the keypoints' longer extent (default: the margin the checkpoint's
            training crops had, 1.5 when it does not record one).
        track_smoothing: weight of the previous box when tracking (0 = follow each prediction at once).
        track_options: further :class:`~tassn.predict.tracking.TrackingCrop` arguments (``max_scale_step``,
            ``floor_fraction``, ``reinit_confidence``, ``patience``).
        tracker_ckpt: a second checkpoint whose heatmaps place the tracking crop (``make train-tracker``'s, trained
            on jittered crops so that it reads where the hand is in an off-centre crop): the tracking follows its
            keypoints and ``ckpt`` predicts each frame on the box they give (:func:`~tassn.predict.passes.run_forward`).
        detector_ckpt: a whole-frame hand detector (``tassn train-detector``'s): the tracking crop's search for the
            hand on a first frame (and after a re-initialisation) starts from its ``detector_top_k`` strongest boxes
            instead of a grid of candidates (:mod:`~tassn.predict.detector`).
        left_hand: the video shows a left hand; frames are mirrored for the right-hand network and results mirrored
            back.
        fuse_reverse: average the forward and the backward pass (otherwise the forward pass is the answer).
        confidence: run the video backwards too and write each joint's forward/backward confidence
            (:mod:`tassn.predict.confidence`) into the 3D CSVs, ``confidence.json`` and ``predictions.npz``.
        agreement_scale: ``τ`` of that confidence, in reference-bone lengths.
        chain_decay: ``γ`` of its chain prior (1: none).
        mm_scale: length of the reference bone (middle finger MCP→PIP) in mm; adds millimetre outputs.
        clip_length: restart the recurrence every ``clip_length`` frames (None: carry it through the video).
        mesh_format: ``obj``, ``ply`` (one file per frame) or ``none`` (meshes only in ``predictions.npz``).
        overlay: write ``overlay.mp4``.
        fps: frame rate of a frame folder (default 30) or to override a video's.
        max_frames: stop after this many frames.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, …
        keypoint_method: ``quadratic`` (argmax + sub-pixel parabola) or ``softargmax`` (kornia, on the log-heatmap).
        heatmap_temperature: the soft-argmax temperature (see :func:`~tassn.predict.decode.heatmaps_to_keypoints`).
        allowed_stages: checkpoint stages accepted.
        net_overrides: PME arguments replacing the checkpoint's (e.g. a moved ``flow_checkpoint``).
        overwrite: replace the outputs of an earlier run in ``out_dir``.
        progress: show progress bars (frames/s).
        style: overlay colours and sizes.
    """
    started = time.perf_counter()
    check_out_dir(out_dir, overwrite)
    source = FrameSource(video, fps=fps, max_frames=max_frames)
    segment_starts(1, clip_length)  # validates clip_length before the model loads
    if keypoint_method not in KEYPOINT_METHODS:
        raise ValueError(f"keypoint_method must be one of {KEYPOINT_METHODS}, got {keypoint_method!r}")
    if mesh_format not in MESH_FORMATS:
        raise ValueError(f"mesh_format must be one of {MESH_FORMATS}, got {mesh_format!r}")
    if mm_scale is not None and not mm_scale > 0:
        raise ValueError(f"mm_scale (reference bone length in mm) must be positive, got {mm_scale}")
    if not agreement_scale > 0:
        raise ValueError(f"agreement_scale (τ, reference-bone lengths) must be positive, got {agreement_scale}")
    if not 0.0 < chain_decay <= 1.0:
        raise ValueError(f"chain_decay (γ of the confidence's chain prior) must be in (0, 1], got {chain_decay}")
    model = load_model(ckpt, allowed_stages=allowed_stages, net_overrides=net_overrides, device=device)
    crop_margin = model.crop_margin if crop_margin is None else crop_margin
    provider = make_crop_provider(crop, box=tuple(box) if box is not None else None, keypoints_file=keypoints_file,
                                  margin=crop_margin, smoothing=track_smoothing, track_options=track_options)
    locator = None
    if tracker_ckpt is not None:
        if getattr(provider, "settle_anchor", None) is None:
            raise ValueError(f"--tracker-ckpt places a tracking crop; it does not apply to the {provider.name!r} crop")
        tracker = load_model(tracker_ckpt, allowed_stages=TRACKER_STAGES, device=device)
        locator = Stepper(tracker, keypoint_method, heatmap_temperature)
    detector = None
    if detector_ckpt is not None:
        if getattr(provider, "search_box", None) is None:
            raise ValueError(f"--detector-ckpt gives a tracking crop its first box; it does not apply to the "
                             f"{provider.name!r} crop")
        detector = HandDetector.load(detector_ckpt, resolve_device(device), detector_top_k)
    loaded = time.perf_counter()
    stepper = Stepper(model, keypoint_method, heatmap_temperature)
    store = CropStore(model.net.image_size) if fuse_reverse or confidence else None
    try:
        forward, boxes = run_forward(source, provider, stepper, clip_length, left_hand, store, progress, locator,
                                     detector)
        passes = [forward.stacked()]
        if store is not None:
            passes.append(run_reverse(store, stepper, clip_length, progress).stacked())
    finally:
        if store is not None:
            store.close()
    predicted = time.perf_counter()
    size = (source.info.width, source.info.height)
    fused = fuse_passes(passes if fuse_reverse else passes[:1])
    extra = {}
    if len(passes) == 2:
        for name, p in zip(("forward", "reverse"), passes, strict=True):
            extra[f"kp3d_{name}"] = p["pose"]
            extra[f"confidence_{name}"] = p["confidence"]
        extra[CONFIDENCE3D_KEY], extra[DISAGREEMENT_KEY] = forward_backward_confidence(
            passes[0]["pose"], passes[1]["pose"], passes[0]["confidence"], passes[1]["confidence"], agreement_scale,
            chain_decay)
    arrays = assemble(
        fused["kp_crop"], fused["confidence"], fused["pose"], fused["mesh"],
        np.stack([b.as_array() for b in boxes]), model.net.image_size, model.net.template_faces.cpu().numpy(),
        source.info.fps, size, left_hand, mm_scale, extra=extra,
    )
    with run_out_dir(out_dir, overwrite) as staging:  # moved into out_dir once complete
        outputs = write_run_outputs(arrays, staging, source, mesh_format, overlay, style, progress)
        frames = len(arrays)
        run = {
            "video": str(Path(video).resolve()),
            "checkpoint": str(model.path.resolve()),
            "tracker_checkpoint": str(Path(tracker_ckpt).resolve()) if tracker_ckpt is not None else None,
            "detector_checkpoint": str(detector.path.resolve()) if detector is not None else None,
            "stage": model.stage,
            "frames": frames,
            "fps": source.info.fps,
            "image_size": list(size),
            "crop": provider.name,
            "tracking": provider.summary() if hasattr(provider, "summary") else None,
            "crop_size": model.net.image_size,
            "settings": {
                "box": list(box) if box is not None else None,
                "keypoints_file": str(keypoints_file) if keypoints_file is not None else None,
                "crop_margin": crop_margin, "track_smoothing": track_smoothing,
                "track_options": dict(track_options or {}), "left_hand": left_hand,
                "fuse_reverse": fuse_reverse, "confidence": confidence, "agreement_scale": agreement_scale,
                "chain_decay": chain_decay,
                "mm_scale": mm_scale, "clip_length": clip_length,
                "mesh_format": mesh_format, "keypoint_method": keypoint_method,
                "heatmap_temperature": heatmap_temperature, "max_frames": max_frames,
            },
            "units": UNITS | {"kp3d_mm": "kp3d × mm_scale" if mm_scale is not None else None,
                              "meshes": "mm" if mm_scale is not None else "as kp3d"},
            "device": str(model.device),
            "net_config": model.net_config,
            "prediction_frames_per_s": frames * len(passes) / max(predicted - loaded, 1e-9),
            "seconds": time.perf_counter() - started,
            "outputs": outputs,
        }
        (staging / RUN_JSON).write_text(json.dumps(run, indent=2, default=str) + "\n")
    out_path = Path(out_dir)
    log.info("predicted %d frames of %s into %s", frames, video, out_path)
    return out_path
