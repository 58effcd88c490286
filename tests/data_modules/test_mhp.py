"""MHP parsing: a tiny copy in the original formats must give back the hand it was written from."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from data_modules.conversions import MHP_NAME_TO_CANONICAL
from data_modules.layout import DatasetLayoutError
from data_modules.mhp import MHPDataModule, check_webcams, load_mhp, read_joints_file
from fake_datasets import (
    CANONICAL,
    MHP_DIST,
    MHP_K,
    distorted_pinhole,
    mhp_bbox,
    mhp_camera,
    mhp_joints_text,
    palm_for_wrist,
    right_hand_mm,
    write_mhp,
)

FRAME_IDS = (2, 10, 1)  # written out of order; numeric order is 1, 2, 10 (text order would be 1, 10, 2)


def _frames(x: float = 0.0, y: float = 0.0) -> dict[int, np.ndarray]:
    base = right_hand_mm((x, y, 0.0))
    return {f: base + np.array([2.0 * f, -1.0 * f, 0.5 * f]) for f in FRAME_IDS}


@pytest.fixture
def mhp_root(tmp_path):
    # data_3 sits near an image corner, where the lens distortion is strong
    sequences = {"data_1": _frames(), "data_3": _frames(x=150.0, y=70.0)}
    return write_mhp(tmp_path / "mhp", sequences), sequences


def test_names_map_to_canonical():
    assert MHP_NAME_TO_CANONICAL["PALM_POSITION"] == 0
    assert MHP_NAME_TO_CANONICAL["TH_KNU1_B"] == 1  # thumb MCP
    assert MHP_NAME_TO_CANONICAL["F4_KNU1_B"] == 5  # index MCP
    assert MHP_NAME_TO_CANONICAL["F4_KNU1_A"] == 6  # index PIP
    assert MHP_NAME_TO_CANONICAL["F3_KNU3_A"] == 12  # middle tip
    assert MHP_NAME_TO_CANONICAL["F2_KNU2_A"] == 15  # ring DIP
    assert MHP_NAME_TO_CANONICAL["F1_KNU1_B"] == 17  # little MCP
    assert sorted(MHP_NAME_TO_CANONICAL.values()) == list(range(21))


def test_keypoints_land_on_the_projected_hand(mhp_root):
    root, sequences = mhp_root
    videos = load_mhp(root, ["data_1", "data_3"])
    assert [v.name for v in videos] == [f"mhp/{s}/webcam_{c}" for s in ("data_1", "data_3") for c in (1, 2, 3, 4)]
    for video in videos:
        sequence, webcam = video.name.split("/")[1], int(video.name[-1])
        assert video.mirror is False and video.image_size == (640, 480)
        assert [f.index for f in video.frames] == [1, 2, 10]
        for frame in video.frames:
            world = sequences[sequence][frame.index]
            camera = mhp_camera(world, webcam)
            assert frame.image_path.name == f"{frame.index}_webcam_{webcam}.jpg" and frame.image_path.is_file()
            np.testing.assert_allclose(frame.kp3d, camera, atol=1e-3)  # camera frame, mm, known wrist
            np.testing.assert_allclose(frame.kp2d, distorted_pinhole(camera, MHP_K, MHP_DIST), atol=0.5)
            np.testing.assert_allclose(frame.K, MHP_K, rtol=1e-6)
            top, left, bottom, right = mhp_bbox(world, webcam)
            assert frame.bbox == (left, top, right, bottom)
            assert frame.bbox[0] < frame.kp2d[:, 0].min() and frame.kp2d[:, 1].max() < frame.bbox[3]


def test_distortion_is_applied(mhp_root):
    """Pixels near the image corner move by more than a pixel under the published distortion."""
    root, sequences = mhp_root
    frame = load_mhp(root, ["data_3"], webcams=[2])[0].frames[0]
    camera = mhp_camera(sequences["data_3"][frame.index], 2)
    undistorted = camera[:, :2] / camera[:, 2:] * MHP_K[[0, 1], [0, 1]] + MHP_K[[0, 1], [2, 2]]
    assert np.abs(frame.kp2d - undistorted).max() > 1.0


@pytest.mark.parametrize("rule", ["ring", "middle", "idein"])
def test_palm_to_wrist_rule_gives_the_known_wrist(tmp_path, rule):
    root = write_mhp(tmp_path / "mhp", {"data_5": _frames()}, webcams=(3,), rule=rule)
    video = load_mhp(root, ["data_5"], webcams=[3], palm_rule=rule)[0]
    for frame in video.frames:
        np.testing.assert_allclose(frame.kp3d[0], mhp_camera(_frames()[frame.index], 3)[0], atol=1e-3)


def test_joints_file_drops_the_palm_normal(tmp_path):
    world = right_hand_mm()
    path = tmp_path / "7_joints.txt"
    path.write_text(mhp_joints_text(world))
    assert len(path.read_text().splitlines()) == 22
    joints = read_joints_file(path)
    np.testing.assert_allclose(joints[1:], world[1:], atol=1e-5)
    np.testing.assert_allclose(joints[0], palm_for_wrist(world), atol=1e-5)  # palm, before the wrist rule
    assert CANONICAL[17] == "little_mcp"


def test_webcam_subset(mhp_root):
    root, _ = mhp_root
    videos = load_mhp(root, ["data_1"], webcams=[4, 2])
    assert [v.name for v in videos] == ["mhp/data_1/webcam_4", "mhp/data_1/webcam_2"]
    with pytest.raises(ValueError, match="webcams"):
        check_webcams([0, 5])


def test_without_bboxes(mhp_root):
    root, _ = mhp_root
    for p in (root / "bounding_boxes" / "data_1").iterdir():
        p.unlink()
    assert all(f.bbox is None for f in load_mhp(root, ["data_1"], use_bboxes=False)[0].frames)
    with pytest.raises(DatasetLayoutError, match="bounding-box"):
        load_mhp(root, ["data_1"])


def _error(root, sequences, **kwargs) -> DatasetLayoutError:
    with pytest.raises(DatasetLayoutError) as info:
        load_mhp(root, sequences, **kwargs)
    return info.value


def test_missing_calibration_names_the_file(mhp_root):
    root, _ = mhp_root
    path = root / "calibrations" / "data_3" / "webcam_2" / "tvec.pkl"
    path.unlink()
    err = _error(root, ["data_3"])
    assert err.problems == [f"missing calibration file {path}"]


def test_malformed_calibration(mhp_root):
    root, _ = mhp_root
    path = root / "calibrations" / "data_1" / "webcam_1" / "rvec.pkl"
    with path.open("wb") as f:
        pickle.dump(np.zeros(2), f, protocol=2)
    assert str(path) in str(_error(root, ["data_1"]))


def test_calibration_payload_is_refused_before_it_runs(mhp_root, tmp_path):
    from payloads import PAYLOAD_GLOBAL, payload_pickle

    root, _ = mhp_root
    marker = tmp_path / "marker"
    path = root / "calibrations" / "data_1" / "webcam_1" / "tvec.pkl"
    path.write_bytes(payload_pickle(marker))
    problems = _error(root, ["data_1"]).problems
    assert any(str(path) in p and f"refused to load {PAYLOAD_GLOBAL}" in p for p in problems)
    assert not marker.exists()


@pytest.mark.parametrize("value", [["1", "2", "3"], [1.0, float("nan"), 2.0], np.zeros((2, 2)), {"x": 1.0}])
def test_calibration_must_be_three_finite_floats(mhp_root, value):
    root, _ = mhp_root
    path = root / "calibrations" / "data_1" / "webcam_1" / "rvec.pkl"
    path.write_bytes(pickle.dumps(value, protocol=2))
    assert any(str(path) in p and "expected" in p for p in _error(root, ["data_1"]).problems)


def test_truncated_joints_file_names_the_file_and_joints(mhp_root):
    root, sequences = mhp_root
    path = root / "annotated_frames" / "data_1" / "10_joints.txt"
    path.write_text(mhp_joints_text(sequences["data_1"][10], drop_last=3))  # no TH_KNU3_A, palm, normal
    err = _error(root, ["data_1"])
    assert len(err.problems) == 1
    assert str(path) in err.problems[0]
    assert "19 line(s)" in err.problems[0] and "TH_KNU3_A" in err.problems[0]
    assert "PALM_POSITION" in err.problems[0]


def test_joints_in_metres_are_refused(mhp_root):
    root, sequences = mhp_root
    for f, world in sequences["data_1"].items():
        (root / "annotated_frames" / "data_1" / f"{f}_joints.txt").write_text(mhp_joints_text(world / 1000.0))
    err = _error(root, ["data_1", "data_3"])
    assert len(err.problems) == 1
    assert str(root / "annotated_frames" / "data_1") in err.problems[0] and "millimetres" in err.problems[0]


def test_non_numeric_joint_line(mhp_root):
    root, _ = mhp_root
    path = root / "annotated_frames" / "data_3" / "1_joints.txt"
    lines = path.read_text().splitlines()
    lines[4] = "F3_KNU1_A 1.0 abc 2.0"
    path.write_text("\n".join(lines))
    assert f"{path}:5" in str(_error(root, ["data_3"]))


def test_missing_sequence_folder(mhp_root):
    root, _ = mhp_root
    err = _error(root, ["data_1", "data_9"])
    text = str(err)
    assert f"missing sequence folder {root / 'annotated_frames' / 'data_9'}" in text
    assert str(root / "calibrations" / "data_9" / "webcam_1" / "rvec.pkl") in text
    assert len(err.problems) == 5 and all("data_9" in p for p in err.problems)  # folder + 4 webcams


def test_missing_frame_names_the_image(mhp_root):
    root, _ = mhp_root
    missing = root / "annotated_frames" / "data_3" / "2_webcam_4.jpg"
    missing.unlink()
    err = _error(root, ["data_3"])
    assert err.problems == [f"missing data_3 webcam 4 image: {missing}"]


def test_bad_bbox_file(mhp_root):
    root, _ = mhp_root
    path = root / "bounding_boxes" / "data_1" / "1_bbox_3.txt"
    path.write_text("TOP 10\nLEFT 20\nBOTTOM 30\n")
    err = _error(root, ["data_1"])
    assert err.problems == [f"{path}: expected 4 lines (top, left, bottom, right), got 3"]


def test_unknown_sequence_name():
    with pytest.raises(ValueError, match="data_22"):
        MHPDataModule.check_sequence_names(["data_1", "data_22"], "test_sequences")


# ---------------------------------------------------------------------------------------------- the DataModule


@pytest.fixture
def mhp_module(tmp_path):
    sequences = {"data_1": _frames(), "data_4": _frames(x=-20.0)}
    root = write_mhp(tmp_path / "mhp", sequences, webcams=(1, 2))

    def build(**kwargs) -> MHPDataModule:
        args = dict(train_sequences=["data_4"], test_sequences=["data_1"], webcams=[1, 2], clip_len=2,
                    clip_stride=1, crop_size=32, heatmap_sigma=1.0, batch_size=2)
        return MHPDataModule(str(root), **(args | kwargs))

    return build, root, sequences


def test_datamodule_serves_batches(mhp_module):
    build, root, sequences = mhp_module
    dm = build()
    dm.prepare_data()
    assert (root / "grabcut").is_dir()
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    assert train["frames"].shape == (2, 2, 3, 32, 32)
    assert train["kp2d"].shape == (2, 2, 21, 2) and train["heatmaps"].shape == (2, 2, 21, 8, 8)
    assert train["silhouettes"].shape == (2, 2, 1, 32, 32) and train["K"].shape == (2, 2, 3, 3)
    assert "kp3d" not in train

    val = next(iter(dm.val_dataloader()))  # val = test = data_1; one clip of frames 1, 2 per webcam
    assert val["video"] == ["mhp/data_1/webcam_1", "mhp/data_1/webcam_2"]
    assert val["frame_index"].tolist() == [[1, 2], [1, 2]]
    for b, webcam in enumerate((1, 2)):
        for t, f in enumerate((1, 2)):
            expected = mhp_camera(sequences["data_1"][f], webcam)
            np.testing.assert_allclose(val["kp3d"][b, t].double().numpy(), expected, atol=1e-2)
    assert (val["kp2d"] > 0).all() and (val["kp2d"] < 31).all()


def test_val_sequences_can_differ_from_test(mhp_module):
    build, _, _ = mhp_module
    dm = build(val_sequences=["data_4"], silhouettes=False)
    assert [v.name for v in dm.load_videos("val")] == ["mhp/data_4/webcam_1", "mhp/data_4/webcam_2"]
    assert [v.name for v in dm.load_videos("predict")] == ["mhp/data_1/webcam_1", "mhp/data_1/webcam_2"]


def test_prepare_data_reports_the_folder(mhp_module):
    build, root, _ = mhp_module
    (root / "calibrations" / "data_4" / "webcam_2" / "rvec.pkl").unlink()
    with pytest.raises(DatasetLayoutError, match="webcam_2/rvec.pkl"):
        build(silhouettes=False).prepare_data()


# ------------------------------------------------------------------------------------------- missing labels, gaps


def test_missing_joints_file_is_an_error_naming_it(mhp_root):
    """A frame with images and boxes but no label is reported, not dropped (it used to vanish silently)."""
    root, _ = mhp_root
    missing = root / "annotated_frames" / "data_3" / "2_joints.txt"
    missing.unlink()
    err = _error(root, ["data_1", "data_3"])
    assert err.problems == [f"missing data_3 label (joints file): {missing}"]
    assert str(missing) in str(err)


def test_missing_joints_file_is_listed_by_prepare(mhp_module):
    build, root, _ = mhp_module
    missing = root / "annotated_frames" / "data_4" / "1_joints.txt"
    missing.unlink()
    (root / "calibrations" / "data_1" / "webcam_1" / "tvec.pkl").unlink()
    with pytest.raises(DatasetLayoutError) as info:
        build(silhouettes=False).prepare_data()
    text = str(info.value)
    assert f"missing data_4 label (joints file): {missing}" in text and "webcam_1/tvec.pkl" in text


def test_a_frame_with_only_a_box_is_reported(mhp_root):
    root, sequences = mhp_root
    frame = right_hand_mm()
    top, left, bottom, right = mhp_bbox(frame, 1)
    (root / "bounding_boxes" / "data_1" / "3_bbox_1.txt").write_text(f"TOP {top}\nLEFT {left}\nBOTTOM {bottom}\n"
                                                                    f"RIGHT {right}\n")
    err = _error(root, ["data_1"])
    assert f"missing data_1 label (joints file): {root / 'annotated_frames' / 'data_1' / '3_joints.txt'}" \
        in err.problems


def test_no_clip_spans_a_gap_in_frame_numbers(mhp_module):
    """Frames 1, 2, 10: clips of 2 frames may hold 1-2 but never 2-10."""
    build, _, _ = mhp_module
    dm = build(silhouettes=False, eval_clip_stride=1)
    dm.setup("test")
    served = [dm.datasets["test"][i]["frame_index"].tolist() for i in range(len(dm.datasets["test"]))]
    assert served == [[1, 2], [1, 2]]  # one clip per webcam
