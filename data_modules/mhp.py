"""MHP (Multiview 3D Hand Pose, Gomez-Donoso et al. 2017): the original files → :class:`VideoRecord`.

Every sequence ``data_<k>`` was filmed by four webcams; a video is the frames of one webcam of one sequence,
sorted by frame id. The joints files hold 21 points plus a palm normal in the Leap Motion world frame (mm); each
webcam's ``rvec``/``tvec`` pickles move them to that camera (``X_cam = R·X + t``), and ``cv2.projectPoints`` with
the shared intrinsics and distortion gives the pixels. The palm position becomes a wrist as for STB. The pickles
are downloaded over plain http, so they are read as data: only numpy arrays are allowed in them.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from tassn.safe_load import BUILTIN_GLOBALS, NUMPY_GLOBALS, UntrustedFileError, load_pickle

from .conversions import MHP_JOINT_NAMES, PalmToWrist, mhp_to_canonical, millimetre_problem, palm_to_wrist
from .layout import LayoutProblems
from .records import FrameRecord, VideoRecord
from .sequences import SequenceDataModule, load_sequences

MHP_SEQUENCES: tuple[str, ...] = tuple(f"data_{k}" for k in range(1, 22))
MHP_WEBCAMS: tuple[int, ...] = (1, 2, 3, 4)
MHP_IMAGE_SIZE = (640, 480)  # (width, height)

#: One pinhole + distortion model shared by all webcams of all sequences.
MHP_K = np.array([[614.878, 0.0, 313.219], [0.0, 615.479, 231.288], [0.0, 0.0, 1.0]])
MHP_DISTORTION = np.array([0.092701, -0.175877, -0.0035687, -0.00302299, 0.0])

DEFAULT_TEST_SEQUENCES: tuple[str, ...] = ("data_1", "data_2")
DEFAULT_TRAIN_SEQUENCES: tuple[str, ...] = tuple(f"data_{k}" for k in range(3, 22))

_FRAME_FILE = re.compile(r"^(\d+)_(?:joints\.txt|webcam_(\d+)\.jpg)$")
_BBOX_FILE = re.compile(r"^(\d+)_bbox_(\d+)\.txt$")


def sequence_dir(root: Path, sequence: str) -> Path:
    return Path(root) / "annotated_frames" / sequence


def joints_path(root: Path, sequence: str, frame: int) -> Path:
    return sequence_dir(root, sequence) / f"{frame}_joints.txt"


def image_path(root: Path, sequence: str, frame: int, webcam: int) -> Path:
    return sequence_dir(root, sequence) / f"{frame}_webcam_{webcam}.jpg"


def bbox_path(root: Path, sequence: str, frame: int, webcam: int) -> Path:
    return Path(root) / "bounding_boxes" / sequence / f"{frame}_bbox_{webcam}.txt"


def calibration_dir(root: Path, sequence: str, webcam: int) -> Path:
    return Path(root) / "calibrations" / sequence / f"webcam_{webcam}"


def listed_frame_ids(root: Path, sequence: str, webcams: Sequence[int], use_bboxes: bool) -> list[int]:
    """Ids of every frame that has any of its files (joints, a used webcam's image or box), sorted numerically (``2`` before ``10``).

    Frames are listed from all their files, not from the joints files alone, so that a frame whose label is
    missing is reported rather than silently dropped (which would also join its neighbours into one clip).
    """
    wanted = {str(c) for c in webcams}
    ids = {int(m.group(1)) for p in sequence_dir(root, sequence).iterdir()
           if (m := _FRAME_FILE.match(p.name)) and (m.group(2) is None or m.group(2) in wanted)}
    boxes = Path(root) / "bounding_boxes" / sequence
    if use_bboxes and boxes.is_dir():
        ids |= {int(m.group(1)) for p in boxes.iterdir() if (m := _BBOX_FILE.match(p.name)) and m.group(2) in wanted}
    return sorted(ids)


def read_joints_file(path: Path) -> np.ndarray:
    """Canonical ``21×3`` world-frame joints (palm in slot 0, mm) from one ``<f>_joints.txt``.

    Lines are ``NAME x y z``; names outside the 21 joints (the palm normal) are ignored.
    """
    path = Path(path)
    named: dict[str, np.ndarray] = {}
    lines = path.read_text(encoding="latin1").splitlines()
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] not in MHP_JOINT_NAMES:
            continue
        if len(parts) != 4:
            raise ValueError(f"{path}:{number}: expected 'NAME x y z', got {line.strip()!r}")
        try:
            named[parts[0]] = np.array([float(v) for v in parts[1:]])
        except ValueError as err:
            raise ValueError(f"{path}:{number}: coordinates are not numbers: {line.strip()!r}") from err
    missing = [n for n in MHP_JOINT_NAMES if n not in named]
    if missing:
        raise ValueError(
            f"{path}: {len(lines)} line(s), missing joint(s) {missing} "
            f"(expected 22 lines 'NAME x y z': 21 joints and PALM_NORMAL)"
        )
    joints = mhp_to_canonical(named)
    if not np.isfinite(joints).all():
        raise ValueError(f"{path}: joint coordinates must be finite")
    return joints


def read_bbox_file(path: Path) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` from a ``<f>_bbox_<c>.txt`` whose 4 lines are ``NAME int``: top, left, bottom, right."""
    path = Path(path)
    values: list[float] = []
    for line in path.read_text(encoding="latin1").splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            values.append(float(parts[-1]))
        except ValueError as err:
            raise ValueError(f"{path}: expected lines 'NAME int', got {line.strip()!r}") from err
    if len(values) != 4:
        raise ValueError(f"{path}: expected 4 lines (top, left, bottom, right), got {len(values)}")
    top, left, bottom, right = values
    if right <= left or bottom <= top:
        raise ValueError(f"{path}: empty box top={top} left={left} bottom={bottom} right={right}")
    return (left, top, right, bottom)


#: What an MHP ``rvec.pkl``/``tvec.pkl`` may name: a pickled numpy array, nothing else.
CALIBRATION_GLOBALS = {**NUMPY_GLOBALS, **BUILTIN_GLOBALS}


def _read_vector(path: Path) -> np.ndarray:
    """3 finite floats from a calibration pickle, read through an allow-list (the files are downloaded)."""
    if not path.is_file():
        raise FileNotFoundError(f"missing calibration file {path}")
    try:
        value = load_pickle(path, CALIBRATION_GLOBALS)
    except UntrustedFileError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError,
            KeyError, MemoryError, OverflowError) as err:  # the ways a damaged pickle fails
        raise ValueError(f"cannot unpickle {path}: {type(err).__name__}: {err}") from err
    if isinstance(value, (list, tuple)) and not all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"{path}: expected 3 numbers, got a {type(value).__name__} of other values")
    if not isinstance(value, (np.ndarray, list, tuple)):
        raise ValueError(f"{path}: expected an array of 3 numbers, got {type(value).__name__}")
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{path}: expected 3 numbers, got an array of dtype {array.dtype}")
    vector = array.astype(np.float64).reshape(-1)
    if vector.shape != (3,) or not np.isfinite(vector).all():
        raise ValueError(f"{path}: expected 3 finite numbers, got shape {vector.shape}")
    return vector


def read_calibration(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(rvec, tvec)`` (Rodrigues vector, mm) of one webcam from ``rvec.pkl`` and ``tvec.pkl`` in ``folder``."""
    return _read_vector(Path(folder) / "rvec.pkl"), _read_vector(Path(folder) / "tvec.pkl")


def world_to_camera(points: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """``X_cam = R·X + t`` for world points ``…×3``."""
    rotation, _ = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3, 1))
    return np.asarray(points, dtype=np.float64) @ rotation.T + np.asarray(tvec, dtype=np.float64).reshape(3)


def project_mhp(points_world: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """Distorted pixels ``N×2`` of world points ``N×3`` in one webcam (``cv2.projectPoints``)."""
    pixels, _ = cv2.projectPoints(
        np.asarray(points_world, dtype=np.float64).reshape(-1, 1, 3),
        np.asarray(rvec, dtype=np.float64).reshape(3, 1),
        np.asarray(tvec, dtype=np.float64).reshape(3, 1),
        MHP_K,
        MHP_DISTORTION,
    )
    return pixels.reshape(-1, 2)


def scan_sequence(
    root: Path,
    sequence: str,
    problems: LayoutProblems,
    webcams: Sequence[int] = MHP_WEBCAMS,
    palm_rule: PalmToWrist = "ring",
    use_bboxes: bool = True,
    mirror: bool = False,
) -> list[VideoRecord]:
    """The videos (one per webcam) of one sequence; adds to ``problems`` everything that is missing or malformed."""
    folder = sequence_dir(root, sequence)
    calibrations: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in webcams:
        try:
            calibrations[c] = read_calibration(calibration_dir(root, sequence, c))
        except (OSError, ValueError) as err:
            problems.add(str(err))
    if not folder.is_dir():
        problems.add(f"missing sequence folder {folder}")
        return []
    ids = listed_frame_ids(root, sequence, webcams, use_bboxes)
    if not ids:
        problems.add(f"no '<f>_joints.txt' files in {folder}")
        return []

    before = len(problems.items)
    problems.missing_files([joints_path(root, sequence, f) for f in ids], f"{sequence} label (joints file)")
    joints: list[np.ndarray] = []
    for f in ids:
        if not joints_path(root, sequence, f).is_file():
            continue  # reported above
        try:
            joints.append(palm_to_wrist(read_joints_file(joints_path(root, sequence, f)), palm_rule))
        except (OSError, ValueError) as err:
            problems.add(str(err))
    for c in webcams:
        problems.missing_files([image_path(root, sequence, f, c) for f in ids], f"{sequence} webcam {c} image")
        if use_bboxes:
            problems.missing_files([bbox_path(root, sequence, f, c) for f in ids], f"{sequence} bounding-box")
    if len(problems.items) > before or len(calibrations) < len(webcams):
        return []

    world = np.stack(joints)  # F×21×3
    if message := millimetre_problem(world, f"joints files of {folder}"):
        problems.add(message)
        return []
    visible = np.ones(world.shape[1], dtype=np.float32)
    videos = []
    for c in webcams:
        rvec, tvec = calibrations[c]
        camera = world_to_camera(world, rvec, tvec)
        pixels = project_mhp(world.reshape(-1, 3), rvec, tvec).reshape(world.shape[0], -1, 2)
        frames = []
        for i, f in enumerate(ids):
            bbox = None
            if use_bboxes:
                try:
                    bbox = read_bbox_file(bbox_path(root, sequence, f, c))
                except (OSError, ValueError) as err:
                    problems.add(str(err))
            frames.append(
                FrameRecord(
                    image_path=image_path(root, sequence, f, c),
                    kp2d=pixels[i].astype(np.float32),
                    K=MHP_K.astype(np.float32),
                    kp3d=camera[i].astype(np.float32),
                    bbox=bbox,
                    visible=visible.copy(),
                    index=f,
                )
            )
        videos.append(
            VideoRecord(name=f"mhp/{sequence}/webcam_{c}", frames=frames, mirror=mirror, image_size=MHP_IMAGE_SIZE)
        )
    return videos


def load_mhp(
    root: Path | str,
    sequences: Iterable[str],
    webcams: Sequence[int] = MHP_WEBCAMS,
    palm_rule: PalmToWrist = "ring",
    use_bboxes: bool = True,
    mirror: bool = False,
) -> list[VideoRecord]:
    """Read ``sequences`` of MHP under ``root``: one :class:`VideoRecord` per sequence and webcam.

    Raises :class:`~data_modules.layout.DatasetLayoutError` listing every missing sequence, file or variable.
    """
    videos = load_sequences("MHP", root, sequences, lambda sequence, problems: scan_sequence(
        Path(root), sequence, problems, webcams, palm_rule, use_bboxes, mirror))
    return [v for vs in videos.values() for v in vs]


def check_webcams(webcams: Sequence[int]) -> list[int]:
    unknown = [c for c in webcams if c not in MHP_WEBCAMS]
    if unknown or not webcams:
        raise ValueError(f"webcams: expected a non-empty subset of {MHP_WEBCAMS}, got {list(webcams)}")
    return list(webcams)


class MHPDataModule(SequenceDataModule):
    """Clips of the MHP webcam videos (Gomez-Donoso et al. 2017); see docs/datasets.md for the folder layout.

    A video is one webcam of one sequence, frames in numeric order. The default split is the TASSN authors':
    train on data_3…data_21, test on data_1 and data_2 (also used for validation unless ``val_sequences`` is set).
    3D labels reach only the val/test/predict batches (``serve_3d_in_train`` of the base class).

    Args:
        root: the MHP folder holding ``annotated_frames/``, ``calibrations/`` and ``bounding_boxes/``.
        train_sequences: sequences of the training split.
        test_sequences: sequences of the test and predict splits.
        val_sequences: sequences of the validation split; ``None``: the test sequences.
        webcams: which of the four webcams to use.
        palm_to_wrist: how the labelled palm position becomes the wrist (as for STB; ``ring`` by default).
        use_bboxes: crop around the dataset's hand boxes (``bounding_boxes/``) instead of the keypoints' box.
        mirror: mirror every hand (MHP hands are right hands already; published loaders do not mirror).
        **kwargs: the clip settings of :class:`~data_modules.base.HandClipDataModule` (clip_len, crop_size, …).
    """

    dataset_name: ClassVar[str] = "MHP"
    sequences: ClassVar[tuple[str, ...]] = MHP_SEQUENCES

    def __init__(
        self,
        root: str,
        train_sequences: Sequence[str] = DEFAULT_TRAIN_SEQUENCES,
        test_sequences: Sequence[str] = DEFAULT_TEST_SEQUENCES,
        val_sequences: Sequence[str] | None = None,
        webcams: Sequence[int] = MHP_WEBCAMS,
        palm_to_wrist: PalmToWrist = "ring",
        use_bboxes: bool = True,
        mirror: bool = False,
        **kwargs: Any,
    ):
        super().__init__(root=root, train_sequences=train_sequences, val_sequences=val_sequences,
                         test_sequences=test_sequences, **kwargs)
        self.webcams = check_webcams(webcams)
        self.palm_to_wrist = palm_to_wrist
        self.use_bboxes = use_bboxes
        self.mirror = mirror

    def label_key(self) -> str:
        return f"palm_to_wrist={self.palm_to_wrist},bboxes={self.use_bboxes},mirror={self.mirror}"

    def scan_sequence(self, sequence: str, problems: LayoutProblems) -> list[VideoRecord]:
        return scan_sequence(self.root, sequence, problems, self.webcams, self.palm_to_wrist, self.use_bboxes,
                             self.mirror)
