"""The files a prediction run writes, all from one :class:`PredictionArrays` so they cannot disagree.

Layout of a run folder (names in :data:`OUTPUTS`):

- ``predictions.npz``: every array below plus the mesh of every frame (the "one NPZ" mesh output);
- ``keypoints2d.csv``: per frame ``frame, time_s, crop_cx, crop_cy, crop_size`` and ``<joint>_x, <joint>_y,
  <joint>_conf`` in frame pixels (re-usable as ``--keypoints-file`` of a later run);
- ``keypoints3d.csv``: ``<joint>_x/_y/_z`` root-relative and scale-normalised (reference bone = 1);
- ``keypoints3d_mm.csv``: the same in mm, only when a reference-bone length in mm was given; both 3D files end
  with ``<joint>_conf`` columns when the run measured the forward/backward confidence
  (:mod:`tassn.predict.confidence`);
- ``confidence.json``: that confidence per frame and joint, with its two factors and its formula;
- ``meshes/frame_000000.obj`` (or ``.ply``): one mesh per frame, in mm when a scale was given, else normalised;
- ``overlay.mp4`` and ``run.json`` (settings and provenance) are written by the runner.

A run is written into a temporary sibling folder and moved into place when it is complete
(:func:`run_out_dir`); ``run.json`` marks a folder as a tassn run, the only kind ``--overwrite`` replaces.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import trimesh

from tassn.hand.skeleton import JOINT_NAMES, NUM_JOINTS

from .confidence import CONFIDENCE3D_KEY, DISAGREEMENT_KEY

PREDICTIONS_NPZ = "predictions.npz"
KEYPOINTS2D_CSV = "keypoints2d.csv"
KEYPOINTS3D_CSV = "keypoints3d.csv"
KEYPOINTS3D_MM_CSV = "keypoints3d_mm.csv"
MESH_DIR = "meshes"
OVERLAY_MP4 = "overlay.mp4"
RUN_JSON = "run.json"
CONFIDENCE_JSON = "confidence.json"
#: Everything a run may write; ``overwrite`` removes exactly these (mesh files by name) and nothing else.
OUTPUTS: tuple[str, ...] = (
    PREDICTIONS_NPZ, KEYPOINTS2D_CSV, KEYPOINTS3D_CSV, KEYPOINTS3D_MM_CSV, MESH_DIR, OVERLAY_MP4, RUN_JSON,
    CONFIDENCE_JSON,
)
MESH_FORMATS: tuple[str, ...] = ("obj", "ply", "none")


#: the mesh files a run writes into :data:`MESH_DIR`; ``overwrite`` removes only these from it.
MESH_FILE = re.compile(r"^frame_\d{6}\.(obj|ply)$")


def _refuse_links(path: Path) -> None:
    """Refuse a symlinked run folder or output: replacing outputs never follows a link out of the folder."""
    for target in (path, *(path / name for name in OUTPUTS)):
        if target.is_symlink():
            raise FileExistsError(
                f"{target} is a symbolic link; tassn never writes or deletes through links: remove it or "
                "choose another output folder"
            )


def _is_previous_run(path: Path) -> bool:
    """Whether ``path`` holds a tassn prediction run: a regular ``run.json`` holding a JSON object."""
    marker = path / RUN_JSON
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        run = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(run, dict)


def _check_writable(path: Path) -> None:
    """Raise unless the run can be written next to ``path`` (its staging folder is a sibling) and moved into it."""
    existing = path.parent.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FileExistsError(f"cannot create output folder {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or (path.is_dir() and not os.access(path, os.W_OK | os.X_OK)):
        folder = path if path.is_dir() and not os.access(path, os.W_OK | os.X_OK) else existing
        raise PermissionError(f"cannot write output folder {path}: {folder} is not writable; choose another --out")


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Raise unless ``out_dir`` is new, empty, or (with ``overwrite``) a previous tassn run; changes nothing.

    Called before any slow work so that a run which would be refused fails at once, and again before the new
    outputs move in.
    """
    path = Path(out_dir)
    _refuse_links(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"output folder {path} is an existing file; expected a folder path")
    _check_writable(path)
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"output folder {path} already exists and is not empty; choose a new folder or pass "
                "overwrite=True (--overwrite) to replace the previous run's outputs"
            )
        if not _is_previous_run(path):
            raise FileExistsError(
                f"output folder {path} does not hold a previous tassn run (no valid {RUN_JSON}); --overwrite "
                "replaces only a tassn run's outputs: choose a new or empty folder"
            )
    return path


def _remove_previous_outputs(path: Path) -> None:
    """Delete the files a previous run wrote (:data:`OUTPUTS`, mesh files by name); keep everything else."""
    _refuse_links(path)
    for name in OUTPUTS:
        target = path / name
        if name == MESH_DIR and target.is_dir():
            for file in target.iterdir():
                if MESH_FILE.match(file.name) and (file.is_symlink() or file.is_file()):
                    file.unlink()  # a link itself, never what it points to
            if not any(target.iterdir()):
                target.rmdir()
        elif target.is_file():
            target.unlink()


def _publish(staging: Path, final: Path, overwrite: bool) -> None:
    """Move a finished run from ``staging`` into ``final``, replacing only a previous run's own files."""
    check_out_dir(final, overwrite)
    if final.is_dir() and not any(final.iterdir()):
        final.rmdir()
    if not final.exists():
        staging.rename(final)
        return
    _remove_previous_outputs(final)
    for entry in sorted(staging.iterdir()):
        target = final / entry.name
        if entry.is_dir():
            target.mkdir(exist_ok=True)  # a kept meshes/ folder with the user's own files
            for file in sorted(entry.iterdir()):
                os.replace(file, target / file.name)
        else:
            os.replace(entry, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def run_out_dir(out_dir: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary sibling folder to write a run into; moved into ``out_dir`` only when the block succeeds.

    A run that fails leaves ``out_dir`` (a previous run's outputs included) exactly as it was. With
    ``overwrite`` only a previous tassn run (:func:`check_out_dir`) is replaced, and only its own files.
    """
    final = check_out_dir(out_dir, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's 0o700 would become the run folder's mode
    try:
        yield staging
        _publish(staging, final, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


@dataclass
class PredictionArrays:
    """Per-frame predictions of one video, in the original frame's pixels (F frames, V vertices).

    frame_index ``F`` (int64); time_s ``F``; crop_boxes ``F×3`` (cx, cy, side) in frame px; kp2d ``F×21×2``
    frame px; confidence ``F×21`` (heatmap peak); kp3d ``F×21×3`` and mesh ``F×V×3`` root-relative and
    scale-normalised (camera axes); faces ``Fc×3`` (int64, consistent with the mesh's handedness); camera
    ``F×3`` weak-perspective ``(s, tx, ty)`` with ``kp2d ≈ s·kp3d_xy + t``, the same camera the overlay draws
    the mesh with; mm_scale: reference-bone length in mm (or None); extra: more ``F×…`` arrays saved as is
    (e.g. the forward and reverse passes before fusion).
    """

    frame_index: np.ndarray
    time_s: np.ndarray
    crop_boxes: np.ndarray
    kp2d: np.ndarray
    confidence: np.ndarray
    kp3d: np.ndarray
    mesh: np.ndarray
    faces: np.ndarray
    camera: np.ndarray
    fps: float
    image_size: tuple[int, int]  # (width, height)
    mm_scale: float | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.frame_index)
        expected = {
            "time_s": (n,), "crop_boxes": (n, 3), "kp2d": (n, NUM_JOINTS, 2), "confidence": (n, NUM_JOINTS),
            "kp3d": (n, NUM_JOINTS, 3), "camera": (n, 3),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"{name} must have shape {shape} for {n} frames, got {got}")
        if self.mesh.ndim != 3 or self.mesh.shape[0] != n or self.mesh.shape[2] != 3:
            raise ValueError(f"mesh must be {n}×V×3, got {self.mesh.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be Fc×3, got {self.faces.shape}")
        if self.mm_scale is not None and not self.mm_scale > 0:
            raise ValueError(f"mm_scale (reference bone length in mm) must be positive, got {self.mm_scale}")

    def __len__(self) -> int:
        return len(self.frame_index)

    @property
    def kp3d_mm(self) -> np.ndarray | None:
        """Root-relative 3D keypoints in mm (``kp3d × mm_scale``), or None without a scale."""
        return None if self.mm_scale is None else self.kp3d * self.mm_scale

    @property
    def mesh_mm(self) -> np.ndarray | None:
        """Root-relative mesh vertices in mm, or None without a scale."""
        return None if self.mm_scale is None else self.mesh * self.mm_scale

    def save_npz(self, path: str | Path) -> Path:
        """Write every array (and the mm versions when a scale is known) to one compressed NPZ."""
        data: dict[str, np.ndarray] = {
            f.name: np.asarray(getattr(self, f.name)) for f in fields(self) if f.name not in ("extra", "mm_scale")
        }
        data["mm_scale"] = np.asarray(np.nan if self.mm_scale is None else self.mm_scale)
        data["joint_names"] = np.asarray(JOINT_NAMES)
        if self.mm_scale is not None:
            data["kp3d_mm"] = self.kp3d_mm
            data["mesh_mm"] = self.mesh_mm
        for key, value in self.extra.items():
            if key in data:
                raise ValueError(f"extra array {key!r} clashes with a standard prediction array")
            data[key] = np.asarray(value)
        path = Path(path)
        np.savez_compressed(path, **data)
        return path

    @classmethod
    def load_npz(cls, path: str | Path) -> PredictionArrays:
        """Read back what :meth:`save_npz` wrote."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"predictions file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            names = [f.name for f in fields(cls) if f.name not in ("extra", "mm_scale")]
            missing = [n for n in names if n not in data.files]
            if missing:
                raise ValueError(f"{path} is not a tassn predictions file: it lacks {missing}")
            values = {n: data[n] for n in names}
            scale = float(data["mm_scale"]) if "mm_scale" in data.files else float("nan")
            standard = set(names) | {"mm_scale", "joint_names", "kp3d_mm", "mesh_mm"}
            extra = {k: data[k] for k in data.files if k not in standard}
        values["fps"] = float(values["fps"])
        values["image_size"] = tuple(int(v) for v in values["image_size"])
        return cls(**values, mm_scale=None if np.isnan(scale) else scale, extra=extra)


def _write_csv(path: Path, header: Sequence[str], rows: np.ndarray, formats: Sequence[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([fmt % value for fmt, value in zip(formats, row, strict=True)])
    return path


def write_keypoint_csvs(arrays: PredictionArrays, out_dir: str | Path) -> list[Path]:
    """``keypoints2d.csv``, ``keypoints3d.csv`` and (with a scale) ``keypoints3d_mm.csv``; one row per frame."""
    out_dir = Path(out_dir)
    n = len(arrays)
    written = []
    header2d = ["frame", "time_s", "crop_cx", "crop_cy", "crop_size"] + [
        f"{name}_{c}" for name in JOINT_NAMES for c in ("x", "y", "conf")
    ]
    per_joint = np.concatenate([arrays.kp2d, arrays.confidence[..., None]], axis=2).reshape(n, -1)
    rows2d = np.concatenate(
        [arrays.frame_index[:, None], arrays.time_s[:, None], arrays.crop_boxes, per_joint], axis=1
    )
    formats2d = ["%d", "%.6f", "%.4f", "%.4f", "%.4f"] + ["%.4f", "%.4f", "%.5f"] * NUM_JOINTS
    written.append(_write_csv(out_dir / KEYPOINTS2D_CSV, header2d, rows2d, formats2d))
    header3d = ["frame"] + [f"{name}_{c}" for name in JOINT_NAMES for c in ("x", "y", "z")]
    confidence = arrays.extra.get(CONFIDENCE3D_KEY)
    if confidence is not None:  # appended, so the coordinate columns keep their places
        header3d += [f"{name}_conf" for name in JOINT_NAMES]
    targets = [(KEYPOINTS3D_CSV, arrays.kp3d, "%.6f")]
    if arrays.kp3d_mm is not None:
        targets.append((KEYPOINTS3D_MM_CSV, arrays.kp3d_mm, "%.4f"))
    for name, values, fmt in targets:
        columns = [arrays.frame_index[:, None], values.reshape(n, -1)]
        formats = ["%d"] + [fmt] * (3 * NUM_JOINTS)
        if confidence is not None:
            columns.append(np.asarray(confidence).reshape(n, NUM_JOINTS))
            formats += ["%.5f"] * NUM_JOINTS
        written.append(_write_csv(out_dir / name, header3d, np.concatenate(columns, axis=1), formats))
    return written


def write_confidence_json(arrays: PredictionArrays, out_dir: str | Path, formula: str) -> Path | None:
    """``confidence.json`` (``frame_index``, ``joint_names`` and per frame and joint ``confidence``, the two passes'
    mean ``heatmap_peak`` and ``fb_disagreement``), or None when the run measured no forward/backward confidence."""
    confidence = arrays.extra.get(CONFIDENCE3D_KEY)
    if confidence is None:
        return None

    def rounded(values: np.ndarray) -> list[list[float]]:
        return np.round(np.asarray(values, dtype=np.float64), 6).tolist()

    payload = {
        "formula": formula,
        "joint_names": list(JOINT_NAMES),
        "frame_index": arrays.frame_index.astype(int).tolist(),
        "confidence": rounded(confidence),
        "heatmap_peak": rounded(0.5 * (arrays.extra["confidence_forward"] + arrays.extra["confidence_reverse"])),
        "fb_disagreement": rounded(arrays.extra[DISAGREEMENT_KEY]),
    }
    path = Path(out_dir) / CONFIDENCE_JSON
    path.write_text(json.dumps(payload) + "\n")
    return path


def mesh_path(out_dir: str | Path, frame: int, fmt: str) -> Path:
    """Where the mesh of ``frame`` goes."""
    return Path(out_dir) / MESH_DIR / f"frame_{frame:06d}.{fmt}"


def write_meshes(arrays: PredictionArrays, out_dir: str | Path, fmt: str = "obj") -> list[Path]:
    """One mesh file per frame (``obj`` text with 7 decimals, ``ply`` binary float64, or ``none``).

    Vertices are in mm when the arrays carry a scale, otherwise root-relative and scale-normalised.
    """
    if fmt not in MESH_FORMATS:
        raise ValueError(f"mesh format must be one of {MESH_FORMATS}, got {fmt!r}")
    if fmt == "none":
        return []
    (Path(out_dir) / MESH_DIR).mkdir(parents=True, exist_ok=True)
    vertices = arrays.mesh_mm if arrays.mesh_mm is not None else arrays.mesh
    written = []
    for frame, verts in zip(arrays.frame_index, vertices, strict=True):
        mesh = trimesh.Trimesh(np.asarray(verts, dtype=np.float64), arrays.faces, process=False)
        path = mesh_path(out_dir, int(frame), fmt)
        if fmt == "obj":
            text = trimesh.exchange.obj.export_obj(
                mesh, include_normals=False, include_color=False, include_texture=False, digits=7
            )
            path.write_text(text)
        else:
            path.write_bytes(trimesh.exchange.ply.export_ply(mesh, encoding="binary", include_attributes=False))
        written.append(path)
    return written
