"""STB (Stereo Tracking Benchmark, Zhang et al. 2016), SK subset: the original files → :class:`VideoRecord`.

Labels ``<root>/labels/<seq>_SK.mat`` hold ``handPara`` (3×21×N, mm) in the *depth* camera's frame with the palm
centre as joint 0 and the fingers ordered little → thumb. Each sequence becomes one video: joints are moved to the
colour camera (``X_color = Rᵀ(X_depth − t)``), put in canonical order, the palm replaced by the wrist, and projected
with the SK colour intrinsics (no distortion). The hands are left hands; ``VideoRecord.mirror`` asks the clip
pipeline to mirror them into right hands.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import scipy.io

from .conversions import PalmToWrist, millimetre_problem, palm_to_wrist, stb_to_canonical
from .layout import LayoutProblems
from .records import FrameRecord, VideoRecord
from .sequences import SequenceDataModule, load_sequences

STB_SEQUENCES: tuple[str, ...] = tuple(f"B{b}{kind}" for b in range(1, 7) for kind in ("Counting", "Random"))
STB_IMAGE_SIZE = (640, 480)  # (width, height)

#: SK colour camera intrinsics (the images we read).
SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
#: SK depth camera intrinsics (the frame ``handPara`` is written in); kept for reference and depth work.
SK_DEPTH_K = np.array([[475.62768, 0.0, 336.41179], [0.0, 474.77709, 238.77962], [0.0, 0.0, 1.0]])
#: Published depth → colour extrinsics: Rodrigues vector and translation (mm).
DEPTH_TO_COLOR_RVEC = np.array([0.00531, -0.01196, 0.00301])
DEPTH_TO_COLOR_T = np.array([-24.0381, -0.4563, -1.2326])

DEFAULT_TRAIN_SEQUENCES: tuple[str, ...] = tuple(s for s in STB_SEQUENCES if not s.startswith("B1"))
DEFAULT_EVAL_SEQUENCES: tuple[str, ...] = ("B1Counting", "B1Random")

LABEL_VARIABLE = "handPara"


def depth_to_color(points: np.ndarray) -> np.ndarray:
    """Move ``…×3`` mm points from the SK depth camera to the SK colour camera: ``Rᵀ(X − t)``."""
    rotation, _ = cv2.Rodrigues(DEPTH_TO_COLOR_RVEC.reshape(3, 1))
    return (np.asarray(points, dtype=np.float64) - DEPTH_TO_COLOR_T) @ rotation


def project_pinhole(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels ``…×2`` of camera-frame points ``…×3`` under intrinsics ``K`` (no distortion)."""
    uvw = np.asarray(points, dtype=np.float64) @ K.T
    return uvw[..., :2] / uvw[..., 2:3]


def label_path(root: Path, sequence: str) -> Path:
    return Path(root) / "labels" / f"{sequence}_SK.mat"


def image_dir(root: Path, sequence: str) -> Path | None:
    """The folder holding ``SK_color_<i>.png`` of ``sequence``: ``<root>/<seq>`` or ``<root>/images/<seq>``."""
    for candidate in (Path(root) / sequence, Path(root) / "images" / sequence):
        if candidate.is_dir():
            return candidate
    return None


def color_image_path(folder: Path, index: int) -> Path:
    return folder / f"SK_color_{index}.png"


def read_hand_para(path: Path) -> np.ndarray:
    """``handPara`` of one label file as ``N×21×3`` (file joint order, depth camera, mm).

    Raises ``FileNotFoundError`` or ``ValueError`` with the path and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing label file {path}")
    try:
        content = scipy.io.loadmat(str(path), variable_names=[LABEL_VARIABLE])
    except Exception as err:  # scipy raises several types for unreadable files
        raise ValueError(f"cannot read {path} as a MATLAB file: {err}") from err
    if LABEL_VARIABLE not in content:
        raise ValueError(f"{path} has no variable {LABEL_VARIABLE!r} (expected 3×21×N joint positions in mm)")
    para = np.asarray(content[LABEL_VARIABLE])
    if para.ndim != 3 or para.shape[0] != 3 or para.shape[1] != 21 or para.shape[2] == 0:
        raise ValueError(f"{path}: {LABEL_VARIABLE!r} has shape {para.shape}, expected 3×21×N with N ≥ 1")
    if not np.issubdtype(para.dtype, np.number) or not np.isfinite(para).all():
        raise ValueError(f"{path}: {LABEL_VARIABLE!r} must hold finite numbers")
    return para.astype(np.float64).transpose(2, 1, 0)


def stb_joints(hand_para: np.ndarray, palm_rule: PalmToWrist = "ring") -> np.ndarray:
    """STB file joints ``N×21×3`` (depth camera, palm) → canonical joints in the colour camera with a wrist."""
    return palm_to_wrist(stb_to_canonical(depth_to_color(hand_para)), palm_rule)


def scan_sequence(
    root: Path, sequence: str, problems: LayoutProblems, palm_rule: PalmToWrist = "ring", mirror: bool = True
) -> list[VideoRecord]:
    """One sequence as one video, or none after adding to ``problems`` everything that is missing."""
    folder = image_dir(root, sequence)
    if folder is None:
        problems.add(f"missing sequence folder {Path(root) / sequence} (or {Path(root) / 'images' / sequence})")
    try:
        hand_para = read_hand_para(label_path(root, sequence))
    except (OSError, ValueError) as err:
        problems.add(str(err))
        return []
    if folder is None:
        return []
    paths = [color_image_path(folder, i) for i in range(hand_para.shape[0])]
    before = len(problems.items)
    problems.missing_files(paths, f"{sequence} colour image")
    if len(problems.items) > before:
        return []
    joints = stb_joints(hand_para, palm_rule)
    if message := millimetre_problem(joints, str(label_path(root, sequence))):
        problems.add(message)
        return []
    kp2d = project_pinhole(joints, SK_COLOR_K)
    visible = np.ones(joints.shape[1], dtype=np.float32)
    frames = [
        FrameRecord(
            image_path=p,
            kp2d=kp2d[i].astype(np.float32),
            K=SK_COLOR_K.astype(np.float32),
            kp3d=joints[i].astype(np.float32),
            visible=visible.copy(),
            index=i,
        )
        for i, p in enumerate(paths)
    ]
    return [VideoRecord(name=f"stb/{sequence}", frames=frames, mirror=mirror, image_size=STB_IMAGE_SIZE)]


def load_stb(
    root: Path | str,
    sequences: Iterable[str],
    palm_rule: PalmToWrist = "ring",
    mirror: bool = True,
) -> list[VideoRecord]:
    """Read ``sequences`` of the STB SK subset under ``root``, one :class:`VideoRecord` each.

    Raises :class:`~data_modules.layout.DatasetLayoutError` listing every missing sequence, file or variable.
    """
    videos = load_sequences(
        "STB", root, sequences, lambda sequence, problems: scan_sequence(Path(root), sequence, problems, palm_rule, mirror)
    )
    return [v for vs in videos.values() for v in vs]


class STBDataModule(SequenceDataModule):
    """Clips of the STB SK colour videos (Zhang et al. 2016); see docs/datasets.md for the folder layout.

    Each sequence is one 1500-frame video; the split follows Ge et al. and TASSN ("the first video for
    validation"): B1Counting + B1Random for val/test/predict, B2…B6 for training. 3D labels reach only the
    val/test/predict batches (``serve_3d_in_train`` of the base class).

    Args:
        root: the STB folder holding ``labels/`` and one image folder per sequence (or ``images/<seq>/``).
        train_sequences: sequences of the training split.
        val_sequences: sequences of the validation split.
        test_sequences: sequences of the test and predict splits.
        palm_to_wrist: how the labelled palm centre becomes the wrist: ``ring`` (Ge et al., default),
            ``middle`` or ``idein`` (see :data:`data_modules.conversions.PalmToWrist`).
        mirror_left_hands: mirror the (left) STB hands into right hands, as Ge et al. do.
        **kwargs: the clip settings of :class:`~data_modules.base.HandClipDataModule` (clip_len, crop_size, …).
    """

    dataset_name: ClassVar[str] = "STB"
    sequences: ClassVar[tuple[str, ...]] = STB_SEQUENCES

    def __init__(
        self,
        root: str,
        train_sequences: Sequence[str] = DEFAULT_TRAIN_SEQUENCES,
        val_sequences: Sequence[str] = DEFAULT_EVAL_SEQUENCES,
        test_sequences: Sequence[str] = DEFAULT_EVAL_SEQUENCES,
        palm_to_wrist: PalmToWrist = "ring",
        mirror_left_hands: bool = True,
        **kwargs: Any,
    ):
        super().__init__(root=root, train_sequences=train_sequences, val_sequences=val_sequences,
                         test_sequences=test_sequences, **kwargs)
        self.palm_to_wrist = palm_to_wrist
        self.mirror_left_hands = mirror_left_hands

    def label_key(self) -> str:
        return f"palm_to_wrist={self.palm_to_wrist},mirror={self.mirror_left_hands}"

    def scan_sequence(self, sequence: str, problems: LayoutProblems) -> list[VideoRecord]:
        return scan_sequence(self.root, sequence, problems, self.palm_to_wrist, self.mirror_left_hands)
