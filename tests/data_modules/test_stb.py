"""STB parsing: a tiny copy in the original formats must give back the hand it was written from."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from data_modules.conversions import STB_TO_CANONICAL, palm_to_wrist
from data_modules.layout import DatasetLayoutError
from data_modules.stb import STBDataModule, load_stb
from fake_datasets import (
    CANONICAL,
    STB_K_COLOR,
    hand_motion,
    palm_for_wrist,
    pinhole,
    right_hand_mm,
    stb_hand_para,
    write_stb,
)

N_FRAMES = 3


def _left_hand(n: int = N_FRAMES, z: float = 450.0) -> np.ndarray:
    """STB hands are left hands: the known right hand mirrored through the camera's y-z plane."""
    hand = right_hand_mm((0.0, 0.0, z)) * np.array([-1.0, 1.0, 1.0])
    return hand_motion(n, hand)


@pytest.fixture
def stb_root(tmp_path):
    hands = {"B1Counting": _left_hand(), "B2Random": _left_hand(z=520.0)}
    return write_stb(tmp_path / "stb", hands), hands


def test_file_order_maps_to_canonical():
    # canonical thumb MCP is the 17th joint of the file, index MCP the 13th, little MCP the 1st
    assert STB_TO_CANONICAL == (0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4)


@pytest.mark.parametrize("nested", [False, True])
def test_keypoints_land_on_the_projected_hand(tmp_path, nested):
    hands = {"B1Counting": _left_hand(), "B3Random": _left_hand(z=600.0)}
    root = write_stb(tmp_path / "stb", hands, nested=nested)
    videos = load_stb(root, ["B1Counting", "B3Random"])
    assert [v.name for v in videos] == ["stb/B1Counting", "stb/B3Random"]
    for video, (name, joints) in zip(videos, hands.items(), strict=True):
        assert video.name == f"stb/{name}"
        assert len(video) == N_FRAMES and video.mirror is True and video.image_size == (640, 480)
        for i, frame in enumerate(video.frames):
            assert frame.index == i
            assert frame.image_path.is_file()
            assert frame.image_path.name == f"SK_color_{i}.png"
            assert (frame.image_path.parent.parent.name == "images") is nested
            np.testing.assert_allclose(frame.kp3d, joints[i], atol=1e-3)  # mm round trip, wrist included
            np.testing.assert_allclose(frame.kp2d, pinhole(joints[i], STB_K_COLOR), atol=0.5)
            np.testing.assert_allclose(frame.K, STB_K_COLOR, rtol=1e-6)
            assert frame.visible.shape == (21,) and frame.visible.all()
            assert frame.bbox is None


def test_depth_frame_is_not_the_colour_frame(stb_root):
    """The file holds depth-camera points ~24 mm away; reading them as colour-camera points would be wrong."""
    root, hands = stb_root
    para = scipy.io.loadmat(root / "labels" / "B1Counting_SK.mat")["handPara"]
    assert para.shape == (3, 21, N_FRAMES)
    raw_middle_tip = para[:, 12, 0]  # file slot 12 = middle tip
    expected = hands["B1Counting"][0, CANONICAL.index("middle_tip")]
    assert np.linalg.norm(raw_middle_tip - expected) > 20.0
    frame = load_stb(root, ["B1Counting"])[0].frames[0]
    np.testing.assert_allclose(frame.kp3d[CANONICAL.index("middle_tip")], expected, atol=1e-3)


@pytest.mark.parametrize("rule", ["ring", "middle", "idein"])
def test_palm_to_wrist_rule_gives_the_known_wrist(tmp_path, rule):
    hands = {"B1Random": _left_hand()}
    root = write_stb(tmp_path / "stb", hands, rule=rule)
    video = load_stb(root, ["B1Random"], palm_rule=rule)[0]
    np.testing.assert_allclose(np.stack([f.kp3d[0] for f in video.frames]), hands["B1Random"][:, 0], atol=1e-3)


def test_rules_differ_on_the_same_palm(stb_root):
    """Reading a file with another rule moves only the wrist, by the published formula."""
    root, hands = stb_root
    joints = hands["B1Counting"][0]
    palm = palm_for_wrist(joints, "ring")
    middle_mcp = joints[CANONICAL.index("middle_mcp")]
    frame = load_stb(root, ["B1Counting"], palm_rule="middle")[0].frames[0]
    np.testing.assert_allclose(frame.kp3d[0], middle_mcp + 2.2 * (palm - middle_mcp), atol=1e-3)
    np.testing.assert_allclose(frame.kp3d[1:], joints[1:], atol=1e-3)
    assert np.linalg.norm(frame.kp3d[0] - joints[0]) > 1.0


def test_palm_to_wrist_known_numbers():
    joints = np.zeros((21, 3))
    joints[0] = (0.0, 10.0, 0.0)  # palm
    joints[CANONICAL.index("ring_mcp")] = (4.0, 0.0, 0.0)
    joints[CANONICAL.index("middle_mcp")] = (0.0, 0.0, 2.0)
    np.testing.assert_allclose(palm_to_wrist(joints, "ring")[0], (-4.0, 20.0, 0.0))
    np.testing.assert_allclose(palm_to_wrist(joints, "middle")[0], (0.0, 22.0, -2.4))
    np.testing.assert_allclose(palm_to_wrist(joints, "idein")[0], (0.0, 20.0, -2.0))
    with pytest.raises(ValueError, match="unknown palm"):
        palm_to_wrist(joints, "thumb")  # type: ignore[arg-type]


def test_mirror_is_a_choice(stb_root):
    root, _ = stb_root
    assert load_stb(root, ["B2Random"], mirror=False)[0].mirror is False


def _error(root, sequences) -> DatasetLayoutError:
    with pytest.raises(DatasetLayoutError) as info:
        load_stb(root, sequences)
    return info.value


def test_missing_variable_names_file_and_variable(stb_root):
    root, _ = stb_root
    path = root / "labels" / "B1Counting_SK.mat"
    scipy.io.savemat(path, {"somethingElse": np.zeros((3, 21, 2))})
    err = _error(root, ["B1Counting"])
    assert str(path) in str(err) and "handPara" in str(err)


def test_wrong_shape_is_reported(stb_root):
    root, _ = stb_root
    path = root / "labels" / "B2Random_SK.mat"
    scipy.io.savemat(path, {"handPara": np.zeros((3, 20, N_FRAMES))})
    err = _error(root, ["B2Random"])
    assert str(path) in str(err) and "(3, 20, 3)" in str(err)


def test_missing_sequence_folder_and_label_are_listed_together(stb_root):
    root, _ = stb_root
    (root / "labels" / "B2Random_SK.mat").unlink()
    err = _error(root, ["B1Counting", "B2Random", "B4Counting"])
    text = str(err)
    assert len(err.problems) == 3  # B2Random label; B4Counting folder and label
    assert str(root / "labels" / "B2Random_SK.mat") in text
    assert str(root / "B4Counting") in text and str(root / "labels" / "B4Counting_SK.mat") in text
    assert "B1Counting" not in text


def test_missing_frame_names_the_image(stb_root):
    root, _ = stb_root
    missing = root / "B1Counting" / "SK_color_1.png"
    missing.unlink()
    err = _error(root, ["B1Counting"])
    assert err.problems == [f"missing B1Counting colour image: {missing}"]


def test_labels_in_metres_are_refused(stb_root):
    root, _ = stb_root
    path = root / "labels" / "B1Counting_SK.mat"
    para = scipy.io.loadmat(path)["handPara"]
    scipy.io.savemat(path, {"handPara": para / 1000.0})
    err = _error(root, ["B1Counting", "B2Random"])
    assert len(err.problems) == 1 and str(path) in err.problems[0] and "millimetres" in err.problems[0]


def test_many_problems_are_capped(tmp_path):
    root = tmp_path / "stb"
    (root / "labels").mkdir(parents=True)
    for i in range(1, 7):
        scipy.io.savemat(root / "labels" / f"B{i}Counting_SK.mat", {"handPara": stb_hand_para(_left_hand(3))})
        (root / f"B{i}Counting").mkdir()
        (root / f"B{i}Random").mkdir()
    err = _error(root, [f"B{i}{k}" for i in range(1, 7) for k in ("Counting", "Random")])
    assert len(err.problems) == 24  # 6 × 3 missing images + 6 missing labels
    assert "… and 4 more" in str(err) and str(err).count("\n  - ") == 20


def test_missing_root():
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_stb("/nonexistent/stb", ["B1Counting"])


def test_unknown_sequence_name():
    with pytest.raises(ValueError, match="B7Counting"):
        STBDataModule.check_sequence_names(["B1Counting", "B7Counting"], "val_sequences")


# ---------------------------------------------------------------------------------------------- the DataModule


def _project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    uvw = np.einsum("...ij,...kj->...ki", K, X)
    return uvw[..., :2] / uvw[..., 2:]


@pytest.fixture
def stb_module(tmp_path):
    hands = {
        "B1Counting": _left_hand(4),
        "B1Random": _left_hand(4, z=500.0),
        "B2Counting": _left_hand(4, z=480.0),
        "B2Random": _left_hand(4, z=530.0),
    }
    root = write_stb(tmp_path / "stb", hands)

    def build(**kwargs) -> STBDataModule:
        args = dict(train_sequences=["B2Counting", "B2Random"], clip_len=2, clip_stride=1, crop_size=32,
                    heatmap_sigma=1.0, batch_size=2)
        return STBDataModule(str(root), **(args | kwargs))

    return build, root, hands


def test_datamodule_serves_mirrored_batches(stb_module):
    build, root, hands = stb_module
    dm = build()
    dm.prepare_data()
    assert (root / "grabcut").is_dir()  # silhouettes cached beside the data
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    assert train["frames"].shape == (2, 2, 3, 32, 32)
    assert train["kp2d"].shape == (2, 2, 21, 2) and train["heatmaps"].shape == (2, 2, 21, 8, 8)
    assert train["silhouettes"].shape == (2, 2, 1, 32, 32) and train["K"].shape == (2, 2, 3, 3)
    assert train["visible"].shape == (2, 2, 21)
    assert "kp3d" not in train

    val = next(iter(dm.val_dataloader()))
    assert val["video"] == ["stb/B1Counting", "stb/B1Counting"]
    assert val["frame_index"].tolist() == [[0, 1], [2, 3]]
    right = hands["B1Counting"] * np.array([-1.0, 1.0, 1.0])  # mirrored back to the known right hand
    kp3d = val["kp3d"].double().numpy()
    np.testing.assert_allclose(kp3d, right[[[0, 1], [2, 3]]], atol=1e-2)
    # the crop camera still projects the 3D onto the crop's 2D, and the hand sits inside the crop
    np.testing.assert_allclose(_project(val["K"].double().numpy(), kp3d), val["kp2d"].double().numpy(), atol=0.05)
    assert (val["kp2d"] > 0).all() and (val["kp2d"] < 31).all()


def test_layout_problems_of_every_split_in_one_error(stb_module):
    build, root, _ = stb_module
    (root / "labels" / "B2Counting_SK.mat").unlink()
    (root / "B1Random" / "SK_color_2.png").unlink()
    with pytest.raises(DatasetLayoutError) as info:
        build(silhouettes=False).prepare_data()
    assert len(info.value.problems) == 2
    assert "B2Counting_SK.mat" in str(info.value) and "SK_color_2.png" in str(info.value)


def test_corrupt_image_skips_its_clip(stb_module, caplog):
    build, root, _ = stb_module
    bad = root / "B1Random" / "SK_color_3.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dm = build()
    with caplog.at_level("WARNING"):
        dm.prepare_data()
        dm.setup("validate")
        clips = [item for batch in dm.val_dataloader() for item in batch["video"]]
    assert len(clips) == 4  # the bad clip is replaced by a readable one, never by zeros
    assert dm.datasets["val"].skipped == 1
    assert str(bad) in caplog.text


def test_bad_sequence_names_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="train_sequences"):
        STBDataModule(str(tmp_path), train_sequences=["B2counting"])
