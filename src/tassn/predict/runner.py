"""The prediction loop: a video and a checkpoint in, a run folder of keypoints, meshes and an overlay video out.

Frames run one at a time, in order, through :meth:`PME.step`, carrying the flow pair and the previous heatmaps the
way the network was trained (``clip_length`` restarts that state every so many frames, as at the start of a
training clip). One-at-a-time is what lets the crop track the hand from the previous frame's prediction. The same
crops then run backwards (the paper's reversed temporal measurement): where the two passes disagree the joint gets a
low confidence (:mod:`tassn.predict.confidence`), and with ``fuse_reverse`` the two passes are averaged. Every output file is written from one :class:`~tassn.predict.writers.PredictionArrays`, and the
overlay video is drawn from the saved ``predictions.npz``, so pictures and numbers cannot disagree.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tassn.render import fit_weak_perspective

from .confidence import (
    AGREEMENT_SCALE,
    CONFIDENCE3D_KEY,
    DISAGREEMENT_KEY,
    FORMULA,
    forward_backward_confidence,
)
from .decode import KEYPOINT_METHODS, fuse_directions, heatmaps_to_keypoints
from .hand_crop import CropBox, CropProvider, make_crop_provider
from .model import PREDICT_STAGES, LoadedModel, load_model
from .overlay import OverlayStyle, render_overlay_video
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


@dataclass
class PassResult:
    """One direction's per-frame outputs, in frame order: crop-pixel keypoints, confidence, pose, mesh."""

    kp_crop: list[np.ndarray] = field(default_factory=list)
    confidence: list[np.ndarray] = field(default_factory=list)
    pose: list[np.ndarray] = field(default_factory=list)
    mesh: list[np.ndarray] = field(default_factory=list)

    def append(self, kp_crop: np.ndarray, confidence: np.ndarray, pose: np.ndarray, mesh: np.ndarray) -> None:
        self.kp_crop.append(kp_crop)
        self.confidence.append(confidence)
        self.pose.append(pose)
        self.mesh.append(mesh)

    def stacked(self) -> dict[str, np.ndarray]:
        return {
            "kp_crop": np.stack(self.kp_crop), "confidence": np.stack(self.confidence),
            "pose": np.stack(self.pose), "mesh": np.stack(self.mesh),
        }


class CropStore:
    """The crops of the forward pass, kept in an anonymous temporary file for the reverse pass.

    Crops are ``S×S×3`` bytes each; a file keeps long videos out of memory.
    """

    def __init__(self, crop_size: int) -> None:
        self.crop_size = crop_size
        self.count = 0
        self._file = tempfile.TemporaryFile(prefix="tassn-crops-")

    def append(self, crop: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(crop, dtype=np.uint8).tobytes())
        self.count += 1

    def read(self) -> np.ndarray:
        """All crops, ``N×S×S×3`` uint8, memory-mapped."""
        self._file.flush()
        s = self.crop_size
        return np.memmap(self._file, dtype=np.uint8, mode="r", shape=(self.count, s, s, 3))

    def close(self) -> None:
        self._file.close()


class Stepper:
    """Runs frames through ``PME.step`` in one direction, restarting the recurrence at segment starts."""

    def __init__(self, model: LoadedModel, keypoint_method: str = "quadratic", temperature: float = 0.25) -> None:
        self.net = model.net
        self.device = model.device
        self.crop_size = model.net.image_size
        self.keypoint_method = keypoint_method
        self.temperature = temperature
        self._prev: torch.Tensor | None = None
        self._heat: torch.Tensor | None = None

    def restart(self) -> None:
        """The next frame is a first frame: paired with itself, no previous heatmaps."""
        self._prev = None
        self._heat = None

    @torch.inference_mode()
    def __call__(self, crop: np.ndarray, commit: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One ``S×S×3`` uint8 crop → keypoints ``21×2`` (crop px), confidence ``21``, pose ``21×3``, mesh ``V×3``.

        ``commit=False`` leaves the recurrence as it was (a trial crop of the frame: the next call sees the same
        previous frame and heatmaps)."""
        image = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device)
        image = image.permute(2, 0, 1)[None].float() / 255.0
        out = self.net.step(self._prev, image, self._heat)
        if commit:
            self._prev = image
            self._heat = self.net.feedback(out.heatmaps[:, -1])
        kp, conf = heatmaps_to_keypoints(out.heatmaps[:, -1], self.crop_size, self.keypoint_method, self.temperature)
        return (kp[0].double().cpu().numpy(), conf[0].double().cpu().numpy(),
                out.pose[0].double().cpu().numpy(), out.mesh[0].float().cpu().numpy())


def segment_starts(num_frames: int, clip_length: int | None) -> list[int]:
    """First frame of every segment the recurrence runs over (one segment when ``clip_length`` is None)."""
    if clip_length is None:
        return [0]
    if clip_length < 1:
        raise ValueError(f"clip_length must be at least 1 (or None for the whole video), got {clip_length}")
    return list(range(0, num_frames, clip_length))


def unflip_keypoints(kp_crop: np.ndarray, crop_size: int, mirror: bool) -> np.ndarray:
    """Keypoints found in a horizontally flipped crop → the unflipped crop (``x → S − 1 − x``)."""
    if not mirror:
        return kp_crop
    out = np.array(kp_crop, dtype=np.float64, copy=True)
    out[..., 0] = crop_size - 1 - out[..., 0]
    return out


def cut_crop(frame: np.ndarray, box: CropBox, crop_size: int, mirror: bool) -> np.ndarray:
    """The network's input for ``box``: the crop, flipped horizontally for a left hand."""
    crop = box.cut(frame, crop_size)
    return np.ascontiguousarray(crop[:, ::-1]) if mirror else crop


def run_forward(
    source: FrameSource,
    provider: CropProvider,
    stepper: Stepper,
    clip_length: int | None,
    mirror: bool,
    store: CropStore | None,
    progress: bool,
) -> tuple[PassResult, list[CropBox]]:
    """The forward pass over the video; crops come from ``provider``, which sees each frame's prediction.

    With ``mirror`` (a left hand) the network sees each crop flipped horizontally, which is the crop of the mirrored
    frame around the mirrored box, so boxes and the provider stay in the original frame's pixels. A provider with
    ``refine`` = N > 0 (the tracking crop's test-time refinement) re-fits each frame's box to the frame's own
    prediction up to N times (:meth:`~tassn.predict.tracking.TrackingCrop.refit`) before the prediction that counts;
    the trial predictions leave the recurrence untouched.
    """
    result, boxes = PassResult(), []
    width, height, s = source.info.width, source.info.height, stepper.crop_size
    bar = tqdm(total=len(source), unit="frame", desc="forward", disable=not progress, dynamic_ncols=True)
    try:
        for index, frame in enumerate(source):
            if index == 0 or (clip_length is not None and index % clip_length == 0):
                stepper.restart()
            box = provider.box(index, width, height)
            for _ in range(getattr(provider, "refine", 0)):
                kp_crop, conf, _, _ = stepper(cut_crop(frame, box, s, mirror), commit=False)
                refit = provider.refit(index, box.to_frame(unflip_keypoints(kp_crop, s, mirror), s), conf)
                if refit is None:
                    break
                box = refit
            crop = cut_crop(frame, box, s, mirror)
            kp_crop, conf, pose, mesh = stepper(crop)
            provider.update(index, box.to_frame(unflip_keypoints(kp_crop, s, mirror), s), conf)
            result.append(kp_crop, conf, pose, mesh)
            boxes.append(box)
            if store is not None:
                store.append(crop)
            bar.update(1)
    finally:
        bar.close()
    if not boxes:
        raise ValueError(f"video {source.path} yielded no frames")
    return result, boxes


def run_reverse(store: CropStore, stepper: Stepper, clip_length: int | None, progress: bool) -> PassResult:
    """The reversed temporal measurement over the forward pass's crops; results returned in frame order."""
    crops = store.read()
    n = len(crops)
    outputs: list[tuple[np.ndarray, ...] | None] = [None] * n
    starts = segment_starts(n, clip_length)
    ends = [*starts[1:], n]
    with tqdm(total=n, unit="frame", desc="reverse", disable=not progress, dynamic_ncols=True) as bar:
        for start, end in zip(reversed(starts), reversed(ends), strict=True):
            stepper.restart()
            for index in range(end - 1, start - 1, -1):
                outputs[index] = stepper(np.array(crops[index]))
                bar.update(1)
    del crops
    result = PassResult()
    for item in outputs:
        result.append(*item)  # type: ignore[misc]  # every frame was visited above
    return result


def fuse_passes(passes: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One pass as is; forward and reverse averaged key by key (:func:`~tassn.predict.decode.fuse_directions`)."""
    if len(passes) == 1:
        return dict(passes[0])
    forward, reverse = passes
    return {
        key: fuse_directions(torch.from_numpy(forward[key]), torch.from_numpy(reverse[key])).numpy()
        for key in forward
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
    frame_index: np.ndarray | None = None,
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
        frame_index=np.arange(n, dtype=np.int64) if frame_index is None else np.asarray(frame_index, np.int64),
        time_s=(np.arange(n) if frame_index is None else np.asarray(frame_index)) / fps,
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
    crop_margin: float = 1.5,
    track_smoothing: float = 0.5,
    track_options: dict[str, Any] | None = None,
    left_hand: bool = False,
    fuse_reverse: bool = False,
    confidence: bool = True,
    agreement_scale: float = AGREEMENT_SCALE,
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
        crop_margin: crop side = margin × the keypoints' longer extent (training uses 1.5).
        track_smoothing: weight of the previous box when tracking (0 = follow each prediction at once).
        track_options: further :class:`~tassn.predict.tracking.TrackingCrop` arguments (``max_scale_step``,
            ``floor_fraction``, ``reinit_confidence``, ``patience``).
        left_hand: the video shows a left hand; frames are mirrored for the right-hand network and results mirrored
            back.
        fuse_reverse: average the forward and the backward pass (otherwise the forward pass is the answer).
        confidence: run the video backwards too and write each joint's forward/backward confidence
            (:mod:`tassn.predict.confidence`) into the 3D CSVs, ``confidence.json`` and ``predictions.npz``.
        agreement_scale: ``τ`` of that confidence, in reference-bone lengths.
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
    provider = make_crop_provider(crop, box=tuple(box) if box is not None else None, keypoints_file=keypoints_file,
                                  margin=crop_margin, smoothing=track_smoothing, track_options=track_options)
    segment_starts(1, clip_length)  # validates clip_length before the model loads
    if keypoint_method not in KEYPOINT_METHODS:
        raise ValueError(f"keypoint_method must be one of {KEYPOINT_METHODS}, got {keypoint_method!r}")
    if mesh_format not in MESH_FORMATS:
        raise ValueError(f"mesh_format must be one of {MESH_FORMATS}, got {mesh_format!r}")
    if mm_scale is not None and not mm_scale > 0:
        raise ValueError(f"mm_scale (reference bone length in mm) must be positive, got {mm_scale}")
    if not agreement_scale > 0:
        raise ValueError(f"agreement_scale (τ, reference-bone lengths) must be positive, got {agreement_scale}")
    model = load_model(ckpt, allowed_stages=allowed_stages, net_overrides=net_overrides, device=device)
    loaded = time.perf_counter()
    stepper = Stepper(model, keypoint_method, heatmap_temperature)
    store = CropStore(model.net.image_size) if fuse_reverse or confidence else None
    try:
        forward, boxes = run_forward(source, provider, stepper, clip_length, left_hand, store, progress)
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
            passes[0]["pose"], passes[1]["pose"], passes[0]["confidence"], passes[1]["confidence"], agreement_scale)
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
