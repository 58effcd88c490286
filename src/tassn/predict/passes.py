"""The network's passes over a video: frames one at a time, in order, through :meth:`PME.step`.

The recurrence (the flow pair and the previous heatmaps) is carried the way the network was trained;
``clip_length`` restarts it every so many frames, as at the start of a training clip. One frame at a time is what
lets the crop track the hand from the previous frame's prediction. The forward pass keeps its crops so that the
reversed temporal measurement (the paper's backward pass) runs on exactly the same pixels.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from .crop_box import CropBox
from .decode import fuse_directions, heatmaps_to_keypoints
from .detector import HandDetector
from .hand_crop import CropProvider
from .model import LoadedModel
from .video_io import FrameSource

#: One step's outputs: keypoints ``21×2`` (crop px), confidence ``21``, pose ``21×3``, mesh ``V×3``.
StepOutputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: The recurrence a step leaves behind: its image and the heatmaps fed back to the next frame.
RecurrentState = tuple[torch.Tensor, torch.Tensor]


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

    def __call__(self, crop: np.ndarray, commit: bool = True) -> StepOutputs:
        """One ``S×S×3`` uint8 crop → keypoints ``21×2`` (crop px), confidence ``21``, pose ``21×3``, mesh ``V×3``.

        ``commit=False`` leaves the recurrence as it was (a trial crop of the frame: the next call sees the same
        previous frame and heatmaps)."""
        outputs, state = self.trial(crop)
        if commit:
            self.adopt(state)
        return outputs

    @torch.inference_mode()
    def trial(self, crop: np.ndarray) -> tuple[StepOutputs, RecurrentState]:
        """A step on ``crop`` that leaves the recurrence as it was, and the state it would leave: :meth:`adopt`
        makes it the frame's committed step, exactly as ``self(crop)`` would have (no second network pass)."""
        image = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device)
        image = image.permute(2, 0, 1)[None].float() / 255.0
        out = self.net.step(self._prev, image, self._heat)
        state = (image, self.net.feedback(out.heatmaps[:, -1]))
        kp, conf = heatmaps_to_keypoints(out.heatmaps[:, -1], self.crop_size, self.keypoint_method, self.temperature)
        outputs = (kp[0].double().cpu().numpy(), conf[0].double().cpu().numpy(),
                   out.pose[0].double().cpu().numpy(), out.mesh[0].float().cpu().numpy())
        return outputs, state

    def adopt(self, state: RecurrentState) -> None:
        """Commit a trial's state: the next frame is paired with its crop and reads its heatmaps."""
        self._prev, self._heat = state


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


def crop_to_frame(box: CropBox, kp_crop: np.ndarray, crop_size: int, mirror: bool) -> np.ndarray:
    """Keypoints predicted on ``box``'s (possibly flipped) crop → frame pixels."""
    return box.to_frame(unflip_keypoints(kp_crop, crop_size, mirror), crop_size)


def _trial_keypoints(stepper: Stepper, frame: np.ndarray, box: CropBox, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    """A trial prediction on ``box`` of ``frame``: keypoints in frame pixels and their confidence."""
    (kp_crop, conf, _, _), _ = stepper.trial(cut_crop(frame, box, stepper.crop_size, mirror))
    return crop_to_frame(box, kp_crop, stepper.crop_size, mirror), conf


def _locate(
    frame: np.ndarray,
    index: int,
    provider: CropProvider,
    stepper: Stepper,
    width: int,
    height: int,
    mirror: bool,
    detector: HandDetector | None = None,
) -> tuple[CropBox, np.ndarray, StepOutputs, RecurrentState]:
    """Frame ``index``'s box and ``stepper``'s step on it: the provider's box, searched for the hand on a first frame
    (from ``detector``'s boxes when given) and re-fit to the frame's own prediction where the provider does so
    (:func:`run_forward`)."""
    s = stepper.crop_size
    box = provider.box(index, width, height)
    searching = getattr(provider, "needs_search", None) is not None and provider.needs_search(index)
    checking = getattr(provider, "redetect_iou", None) is not None
    detected = [found for found, _ in detector(frame)] if detector is not None and (searching or checking) else None
    if detected and not searching and provider.check_detection(index, detected[0]):  # type: ignore[attr-defined]
        box = provider.box(index, width, height)
    if searching:
        box = provider.search_box(index, partial(_trial_keypoints, stepper, frame, mirror=mirror), detected)
    crop = cut_crop(frame, box, s, mirror)
    outputs, state = stepper.trial(crop)
    for _ in range(getattr(provider, "refine", 0)):
        refit = provider.refit(index, crop_to_frame(box, outputs[0], s, mirror), outputs[1])
        if refit is None:
            break
        refit_crop = cut_crop(frame, refit, s, mirror)
        refit_outputs, refit_state = stepper.trial(refit_crop)
        if provider.frame_confidence(refit_outputs[1]) < provider.frame_confidence(outputs[1]):
            provider.keep(index, box)  # the re-fit box reads the hand less surely: the frame stays put
            break
        box, crop, outputs, state = refit, refit_crop, refit_outputs, refit_state
    return box, crop, outputs, state


def _settled_box(
    provider: CropProvider, locator: Stepper, frame: np.ndarray, box: CropBox, found: np.ndarray,
    confidence: np.ndarray, mirror: bool,
) -> tuple[CropBox, tuple[np.ndarray, np.ndarray]]:
    """The box the model predicts on, and the locator reading it was settled from: ``box`` settled on the locator's
    keypoints ``found`` (frame pixels), then read again by the locator and settled again ``provider.settle_passes``
    times (trials: its recurrence is untouched), each side within a step of the frame's tracked box (the provider's
    ``settle_anchor``); a lost reading keeps the last box."""
    anchor = provider.settle_anchor()  # type: ignore[attr-defined]  # run_forward checks it
    reading = (found, confidence)
    settled = provider.settle(box, found, confidence, anchor) or box  # type: ignore[attr-defined]
    for _ in range(getattr(provider, "settle_passes", 0)):
        again_read = _trial_keypoints(locator, frame, settled, mirror)
        again = provider.settle(settled, *again_read, anchor)  # type: ignore[attr-defined]
        if again is None:
            break
        settled, reading = again, again_read
    return settled, reading


def run_forward(
    source: FrameSource,
    provider: CropProvider,
    stepper: Stepper,
    clip_length: int | None,
    mirror: bool,
    store: CropStore | None,
    progress: bool,
    locator: Stepper | None = None,
    detector: HandDetector | None = None,
) -> tuple[PassResult, list[CropBox]]:
    """The forward pass over the video; crops come from ``provider``, which sees each frame's prediction.

    With ``mirror`` (a left hand) the network sees each crop flipped horizontally, which is the crop of the mirrored
    frame around the mirrored box, so boxes and the provider stay in the original frame's pixels. A provider with
    ``refine`` = N > 0 (the tracking crop's test-time refinement) re-fits each frame's box to the frame's own
    prediction up to N times (:meth:`~tassn.predict.tracking.TrackingCrop.refit`), keeping a re-fit only when its
    prediction is at least as confident; a provider that searches a first frame for the hand
    (:meth:`~tassn.predict.tracking.TrackingCrop.search_box`) does so before. Trial predictions leave the recurrence
    untouched; the chosen box's trial becomes the frame's step.

    ``locator`` (a second network, e.g. one trained on jittered crops, which reads where the hand is in an off-centre
    crop): the search, the re-fits and the tracking all run on its keypoints, with its own recurrence, and
    ``stepper`` predicts each frame on the box those keypoints give (the provider's ``settle``: the training crop's
    rule, within the floor and the frame and a side step of the frame's tracked box; then ``settle_passes`` more
    readings of the settled box by the locator, each settled again) — the returned results and boxes are
    ``stepper``'s. The next frame's tracked box follows the locator's last reading (of the settled box: the locator
    reads a crop centred on the hand best), not its first.

    ``detector`` (a whole-frame hand detector, ``tassn predict --detector-ckpt``): a first frame's search for the
    hand starts from its boxes instead of the provider's grid of candidates, and, where the provider has a
    ``redetect_iou``, every other frame's box is checked against its strongest box
    (:meth:`~tassn.predict.tracking.TrackingCrop.check_detection`); it reads a frame only for one of the two.
    """
    if locator is not None and getattr(provider, "settle_anchor", None) is None:
        raise ValueError(f"a locator network places a tracking crop; the {provider.name!r} crop has none to place")
    if detector is not None and getattr(provider, "search_box", None) is None:
        raise ValueError(f"a hand detector gives a tracking crop its first box; the {provider.name!r} crop has none")
    result, boxes = PassResult(), []
    width, height, s = source.info.width, source.info.height, stepper.crop_size
    finder = stepper if locator is None else locator
    bar = tqdm(total=len(source), unit="frame", desc="forward", disable=not progress, dynamic_ncols=True)
    try:
        for index, frame in enumerate(source):
            if index == 0 or (clip_length is not None and index % clip_length == 0):
                stepper.restart()
                if locator is not None:
                    locator.restart()
            box, crop, outputs, state = _locate(frame, index, provider, finder, width, height, mirror, detector)
            finder.adopt(state)
            found = crop_to_frame(box, outputs[0], finder.crop_size, mirror)
            if locator is None:
                provider.update(index, found, outputs[1])
            else:  # the next frame's box follows the locator's reading of the settled box, its surest
                box, reading = _settled_box(provider, locator, frame, box, found, outputs[1], mirror)
                provider.update(index, *reading)
                crop = cut_crop(frame, box, s, mirror)
                outputs = stepper(crop)
            kp_crop, conf, pose, mesh = outputs
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
