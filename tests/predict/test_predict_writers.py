from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh

from tassn.hand.skeleton import JOINT_NAMES
from tassn.predict.hand_crop import KeypointFileCrop
from tassn.predict.writers import (
    KEYPOINTS2D_CSV,
    KEYPOINTS3D_CSV,
    KEYPOINTS3D_MM_CSV,
    MESH_DIR,
    RUN_JSON,
    PredictionArrays,
    check_out_dir,
    mesh_path,
    run_out_dir,
    write_keypoint_csvs,
    write_meshes,
)


def make_arrays(n: int = 3, mm_scale: float | None = 25.0, seed: int = 0) -> PredictionArrays:
    rng = np.random.default_rng(seed)
    return PredictionArrays(
        frame_index=np.arange(n, dtype=np.int64),
        time_s=np.arange(n) / 10.0,
        crop_boxes=np.tile([48.0, 40.0, 60.0], (n, 1)),
        kp2d=rng.uniform(0, 90, (n, 21, 2)),
        confidence=rng.uniform(0, 1, (n, 21)),
        kp3d=rng.normal(size=(n, 21, 3)).astype(np.float32),
        mesh=rng.normal(size=(n, 6, 3)).astype(np.float32),
        faces=np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]], np.int64),
        camera=np.tile([10.0, 48.0, 40.0], (n, 1)),
        fps=10.0,
        image_size=(96, 80),
        mm_scale=mm_scale,
        extra={"kp3d_forward": np.zeros((n, 21, 3))},
    )


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open() as handle:
        rows = list(csv.reader(handle))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def test_npz_roundtrip(tmp_path: Path) -> None:
    arrays = make_arrays()
    back = PredictionArrays.load_npz(arrays.save_npz(tmp_path / "p.npz"))
    np.testing.assert_array_equal(back.kp2d, arrays.kp2d)
    np.testing.assert_array_equal(back.mesh, arrays.mesh)
    np.testing.assert_array_equal(back.extra["kp3d_forward"], arrays.extra["kp3d_forward"])
    assert back.mm_scale == 25.0 and back.image_size == (96, 80) and back.fps == 10.0
    with np.load(tmp_path / "p.npz") as data:
        np.testing.assert_allclose(data["kp3d_mm"], arrays.kp3d * 25.0)
        assert list(data["joint_names"]) == list(JOINT_NAMES)
    assert PredictionArrays.load_npz(make_arrays(mm_scale=None).save_npz(tmp_path / "q.npz")).mm_scale is None


def test_shapes_are_checked() -> None:
    good = make_arrays()
    with pytest.raises(ValueError, match="kp2d must have shape"):
        PredictionArrays(**{**good.__dict__, "kp2d": np.zeros((3, 20, 2))})
    with pytest.raises(ValueError, match="mm_scale"):
        PredictionArrays(**{**good.__dict__, "mm_scale": -1.0})


def test_csvs_agree_with_arrays(tmp_path: Path) -> None:
    arrays = make_arrays()
    written = write_keypoint_csvs(arrays, tmp_path)
    assert [p.name for p in written] == [KEYPOINTS2D_CSV, KEYPOINTS3D_CSV, KEYPOINTS3D_MM_CSV]
    header, rows = read_csv(tmp_path / KEYPOINTS2D_CSV)
    assert header[:5] == ["frame", "time_s", "crop_cx", "crop_cy", "crop_size"] and len(header) == 5 + 63
    np.testing.assert_allclose(rows[:, 5:].reshape(3, 21, 3)[..., :2], arrays.kp2d, atol=1e-4)
    np.testing.assert_allclose(rows[:, 5:].reshape(3, 21, 3)[..., 2], arrays.confidence, atol=1e-5)
    _, rows3 = read_csv(tmp_path / KEYPOINTS3D_CSV)
    np.testing.assert_allclose(rows3[:, 1:].reshape(3, 21, 3), arrays.kp3d, atol=1e-6)
    _, rows_mm = read_csv(tmp_path / KEYPOINTS3D_MM_CSV)
    np.testing.assert_allclose(rows_mm[:, 1:].reshape(3, 21, 3), arrays.kp3d * 25.0, atol=1e-4)
    # the 2D CSV is a valid keypoint file for a later run's crops
    assert KeypointFileCrop(tmp_path / KEYPOINTS2D_CSV).boxes.shape == (3, 3)
    (tmp_path / "no_scale").mkdir()
    assert len(write_keypoint_csvs(make_arrays(mm_scale=None), tmp_path / "no_scale")) == 2


@pytest.mark.parametrize("fmt", ["obj", "ply"])
def test_meshes_agree_with_arrays(tmp_path: Path, fmt: str) -> None:
    arrays = make_arrays()
    paths = write_meshes(arrays, tmp_path, fmt)
    assert paths == [mesh_path(tmp_path, i, fmt) for i in range(3)]
    mesh = trimesh.load(paths[2], process=False)
    np.testing.assert_allclose(mesh.vertices, arrays.mesh[2] * 25.0, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, arrays.faces)
    assert write_meshes(arrays, tmp_path / "none", "none") == []


def previous_run(path: Path) -> Path:
    """A folder holding a previous tassn run beside a user's own files."""
    (path / MESH_DIR).mkdir(parents=True)
    (path / MESH_DIR / "frame_000000.obj").write_text("old mesh")
    (path / MESH_DIR / "hand_scan.blend").write_text("the user's")
    (path / KEYPOINTS3D_CSV).write_text("old")
    (path / RUN_JSON).write_text(json.dumps({"outputs": [KEYPOINTS3D_CSV]}))
    (path / "my_notes.txt").write_text("keep me")
    return path


def test_out_dir_is_never_overwritten_silently(tmp_path: Path) -> None:
    out = previous_run(tmp_path / "run")
    with pytest.raises(FileExistsError, match="overwrite"):
        check_out_dir(out)
    with run_out_dir(out, overwrite=True) as staging:
        (staging / KEYPOINTS2D_CSV).write_text("new")
        (staging / RUN_JSON).write_text(json.dumps({"outputs": [KEYPOINTS2D_CSV]}))
        assert staging.parent == out.parent and staging != out
    assert sorted(p.name for p in out.iterdir()) == [KEYPOINTS2D_CSV, MESH_DIR, "my_notes.txt", RUN_JSON]
    assert [p.name for p in (out / MESH_DIR).iterdir()] == ["hand_scan.blend"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="existing file"):
        check_out_dir(tmp_path / "file", overwrite=True)


def test_overwrite_replaces_only_a_previous_tassn_run(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    (foreign / MESH_DIR).mkdir(parents=True)
    (foreign / MESH_DIR / "hand_scan.blend").write_text("the user's")
    (foreign / KEYPOINTS3D_CSV).write_text("the user's table")
    before = snapshot(foreign)
    for marker in (None, "not json", json.dumps(["a list"])):
        if marker is not None:
            (foreign / RUN_JSON).write_text(marker)
        with pytest.raises(FileExistsError, match="does not hold a previous tassn run"):
            with run_out_dir(foreign, overwrite=True) as staging:
                (staging / KEYPOINTS3D_CSV).write_text("new")
        (foreign / RUN_JSON).unlink(missing_ok=True)
        assert snapshot(foreign) == before


@pytest.mark.parametrize("link", [MESH_DIR, KEYPOINTS3D_CSV, RUN_JSON, "."])
def test_overwrite_never_follows_a_symlink(link: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / MESH_DIR).mkdir(parents=True)
    (elsewhere / MESH_DIR / "frame_000000.obj").write_text("not the run's")
    (elsewhere / KEYPOINTS3D_CSV).write_text("not the run's")
    (elsewhere / RUN_JSON).write_text(json.dumps({"outputs": []}))
    kept = snapshot(elsewhere)
    if link == ".":
        out = tmp_path / "run"
        out.symlink_to(elsewhere, target_is_directory=True)
    else:
        out = previous_run(tmp_path / "run")
        target = out / link
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.symlink_to(elsewhere / link, target_is_directory=link == MESH_DIR)
    with pytest.raises(FileExistsError, match="symbolic link"):
        with run_out_dir(out, overwrite=True) as staging:
            (staging / KEYPOINTS3D_CSV).write_text("new")
    assert snapshot(elsewhere) == kept


def test_a_failed_run_keeps_the_previous_one(tmp_path: Path) -> None:
    out = previous_run(tmp_path / "run")
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="crashed"):
        with run_out_dir(out, overwrite=True) as staging:
            (staging / KEYPOINTS3D_CSV).write_text("half")
            raise RuntimeError("crashed")
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (links are not followed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
