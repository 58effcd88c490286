"""The overlay video: each frame with the predicted mesh silhouette, 2D skeleton, crop box and a small 3D view.

Everything drawn comes from one saved ``predictions.npz`` (:class:`~tassn.predict.writers.PredictionArrays`): the
skeleton is ``kp2d``, the silhouette is the mesh projected with the saved weak-perspective ``camera``, the inset is
``kp3d`` — the numbers in the CSV/NPZ/OBJ files and the pictures cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from tassn.hand.skeleton import BONES
from tassn.viz import draw_skeleton, joint_color, overlay_silhouette

from .video_io import FrameSource, Mp4Writer, VideoReadError
from .view3d import ViewFrame, render_view3d, view_frame
from .writers import PredictionArrays

#: RGB per bone of :data:`~tassn.hand.skeleton.BONES`: its finger's colour, as in :func:`tassn.viz.draw_skeleton`.
BONE_COLORS: tuple[tuple[int, int, int], ...] = tuple(joint_color(child) for _, child in BONES)
_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel positions for lines, circles and polygons
_MAX_COORD = 2**15  # pixels; drawn coordinates beyond this are left out


@dataclass(frozen=True)
class OverlayStyle:
    """How the overlay looks.

    silhouette_color/alpha: tint of the mesh silhouette; min_confidence: joints below it (heatmap peak) and their
    bones are left out; inset_fraction: side of the 3D view relative to the frame's shorter side;
    yaw_deg/pitch_deg: the 3D view's viewpoint; show_box: draw the crop box.
    """

    silhouette_color: tuple[int, int, int] = (90, 200, 255)
    silhouette_alpha: float = 0.35
    min_confidence: float = 0.1
    inset_fraction: float = 0.3
    yaw_deg: float = 70.0
    pitch_deg: float = -20.0
    show_box: bool = True
    show_frame_number: bool = True


def project(points3d: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Weak-perspective pixels ``…×2`` of ``…×3`` points with ``camera (s, tx, ty)`` (as
    :func:`tassn.render.weak_perspective_project`)."""
    return camera[0] * points3d[..., :2] + camera[1:3]


def mesh_silhouette(vertices: np.ndarray, faces: np.ndarray, camera: np.ndarray, width: int, height: int) -> np.ndarray:
    """``H×W`` uint8 {0, 1}: the union of the mesh's projected triangles (exact for a weak-perspective camera)."""
    mask = np.zeros((height, width), np.uint8)
    pixels = project(np.asarray(vertices, dtype=np.float64), camera)
    if not np.isfinite(pixels).all():
        return mask
    triangles = pixels[faces]
    # OpenCV's fixed-point drawing needs small coordinates; a face that far out is a broken prediction anyway
    triangles = triangles[(np.abs(triangles) < _MAX_COORD).all(axis=(1, 2))]
    if len(triangles):
        cv2.fillPoly(mask, list(np.round(triangles * (1 << _SHIFT)).astype(np.int32)), 1, cv2.LINE_8, _SHIFT)
    return mask


def _fixed(point: np.ndarray | tuple[float, float]) -> tuple[int, int]:
    return int(round(point[0] * (1 << _SHIFT))), int(round(point[1] * (1 << _SHIFT)))


def outline(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Draw the outer contour of a {0, 1} mask on an RGB image, in place (the tint alone hides thin parts)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(image, contours, -1, color, 1, cv2.LINE_AA)
    return image


def compose_frame(
    frame: np.ndarray, arrays: PredictionArrays, i: int, view: ViewFrame | None = None,
    style: OverlayStyle | None = None,
) -> np.ndarray:
    """The overlay of frame ``i`` of ``arrays`` on the RGB ``frame``: a new RGB image of the same size.

    ``view`` is the 3D inset's framing (default: :func:`~tassn.predict.view3d.view_frame` of all of ``arrays``).
    """
    style = style or OverlayStyle()
    view = view if view is not None else view_frame(arrays.kp3d)
    height, width = frame.shape[:2]
    silhouette = mesh_silhouette(arrays.mesh[i], arrays.faces, arrays.camera[i], width, height)
    image = overlay_silhouette(frame, silhouette, style.silhouette_color, style.silhouette_alpha)
    outline(image, silhouette, style.silhouette_color)
    if style.show_box:
        x0, y0 = arrays.crop_boxes[i, :2] - arrays.crop_boxes[i, 2] / 2
        x1, y1 = arrays.crop_boxes[i, :2] + arrays.crop_boxes[i, 2] / 2
        cv2.rectangle(image, _fixed((x0, y0)), _fixed((x1, y1)), (160, 160, 160), 1, cv2.LINE_AA, _SHIFT)
    image = draw_skeleton(image, arrays.kp2d[i], arrays.confidence[i] >= style.min_confidence)
    side = int(np.clip(round(min(width, height) * style.inset_fraction), 48, 320))
    if side + 4 <= min(width, height):
        inset = render_view3d(arrays.kp3d[i], side, view, BONE_COLORS, style.yaw_deg, style.pitch_deg)
        image[2 : 2 + side, width - side - 2 : width - 2] = inset
    if style.show_frame_number:
        cv2.putText(image, f"{int(arrays.frame_index[i])}", (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.35, min(width, height) / 800), (255, 255, 255), 1, cv2.LINE_AA)
    return image


def render_overlay_video(
    source: FrameSource | str | Path,
    predictions: PredictionArrays | str | Path,
    out_path: str | Path,
    style: OverlayStyle | None = None,
    progress: bool = True,
) -> Path:
    """Write the overlay MP4 of a video from its saved predictions (one output frame per predicted frame)."""
    arrays = predictions if isinstance(predictions, PredictionArrays) else PredictionArrays.load_npz(predictions)
    source = source if isinstance(source, FrameSource) else FrameSource(source, fps=arrays.fps)
    if (source.info.width, source.info.height) != tuple(arrays.image_size):
        raise ValueError(
            f"video {source.path} is {source.info.width}×{source.info.height} but the predictions are for "
            f"{arrays.image_size[0]}×{arrays.image_size[1]} frames"
        )
    view = view_frame(arrays.kp3d)
    wanted = {int(f): i for i, f in enumerate(arrays.frame_index)}
    out_path = Path(out_path)
    with Mp4Writer(out_path, arrays.fps, (source.info.width, source.info.height)) as writer, tqdm(
        total=len(arrays), unit="frame", desc="overlay", disable=not progress, dynamic_ncols=True
    ) as bar:
        for index, frame in enumerate(source):
            if index in wanted:
                writer.write(compose_frame(frame, arrays, wanted[index], view, style))
                bar.update(1)
            if writer.frames_written == len(arrays):
                break
    if writer.frames_written != len(arrays):
        raise VideoReadError(
            f"video {source.path} ended after {index + 1} frames, before the {len(arrays)} predicted frames"
        )
    return out_path
