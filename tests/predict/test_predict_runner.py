"""predict_video end to end on a short synthetic video with a tiny random network."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import trimesh
from predict_testdata import FRAMES, HEIGHT, WIDTH, blob_frames, stage_checkpoint

from tassn.hand.skeleton import JOINT_NAMES
from tassn.predict.__main__ import main
from tassn.predict.crop_box import CropBox
from tassn.predict.model import load_model
from tassn.predict.overlay import compose_frame, project
from tassn.predict.runner import predict_video
from tassn.predict.tracking import TrackingCrop
from tassn.predict.video_io import FrameSource, VideoReadError, read_frames
from tassn.predict.writers import PredictionArrays
from tassn.stages.checkpoints import CheckpointMismatchError

BOX = (10.0, 12.0, 60.0, 62.0)


def csv_values(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open() as handle:
        rows = list(csv.reader(handle))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def test_every_output_agrees(blob_video: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = predict_video(blob_video, tiny_ckpt, tmp_path / "run", box=BOX, mm_scale=30.0, fuse_reverse=True,
                        progress=False)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["confidence.json", "keypoints2d.csv", "keypoints3d.csv", "keypoints3d_mm.csv", "meshes",
                     "overlay.mp4", "predictions.npz", "run.json"]
    arrays = PredictionArrays.load_npz(out / "predictions.npz")
    assert len(arrays) == FRAMES and arrays.mesh.shape == (FRAMES, 162, 3) and arrays.faces.shape == (320, 3)
    assert np.isfinite(arrays.kp2d).all() and np.isfinite(arrays.kp3d).all()
    # CSVs, NPZ and OBJ files hold the same numbers
    _, rows2d = csv_values(out / "keypoints2d.csv")
    np.testing.assert_allclose(rows2d[:, 5:].reshape(FRAMES, 21, 3)[..., :2], arrays.kp2d, atol=1e-4)
    np.testing.assert_allclose(rows2d[:, 2:5], arrays.crop_boxes, atol=1e-4)
    header3d, rows3d = csv_values(out / "keypoints3d.csv")
    np.testing.assert_allclose(rows3d[:, 1:64].reshape(FRAMES, 21, 3), arrays.kp3d, atol=1e-6)
    _, rows_mm = csv_values(out / "keypoints3d_mm.csv")
    np.testing.assert_allclose(rows_mm[:, 1:64].reshape(FRAMES, 21, 3), arrays.kp3d * 30.0, atol=1e-4)
    # the forward/backward confidence: the same numbers in the 3D CSVs, confidence.json and the NPZ
    confidence = arrays.extra["confidence3d"]
    assert confidence.shape == (FRAMES, 21) and ((confidence >= 0) & (confidence <= 1)).all()
    assert header3d[64:] == [f"{name}_conf" for name in JOINT_NAMES]
    np.testing.assert_allclose(rows3d[:, 64:], confidence, atol=1e-5)
    np.testing.assert_allclose(rows_mm[:, 64:], confidence, atol=1e-5)
    saved = json.loads((out / "confidence.json").read_text())
    assert saved["frame_index"] == list(range(FRAMES)) and saved["joint_names"] == list(JOINT_NAMES)
    np.testing.assert_allclose(saved["confidence"], confidence, atol=1e-6)
    disagreement = np.linalg.norm(arrays.extra["kp3d_forward"] - arrays.extra["kp3d_reverse"], axis=-1)
    np.testing.assert_allclose(saved["fb_disagreement"], disagreement, atol=1e-6)
    assert "exp" in saved["formula"]
    obj = trimesh.load(out / "meshes" / "frame_000005.obj", process=False)
    np.testing.assert_allclose(obj.vertices, arrays.mesh[5] * 30.0, atol=1e-5)
    np.testing.assert_array_equal(obj.faces, arrays.faces)
    # the fused answer is the mean of the two passes, both kept
    np.testing.assert_allclose(arrays.kp3d, 0.5 * (arrays.extra["kp3d_forward"] + arrays.extra["kp3d_reverse"]))
    assert not np.allclose(arrays.extra["kp3d_forward"], arrays.extra["kp3d_reverse"])
    # the overlay video: one frame per input frame, same size, drawn from these arrays
    overlay = read_frames(out / "overlay.mp4")
    assert overlay.shape == (FRAMES, HEIGHT, WIDTH, 3)
    frames = read_frames(blob_video)
    drawn = [compose_frame(frames[i], arrays, i).astype(int) for i in (2, 6)]
    assert np.abs(overlay[2] - drawn[0]).mean() < 6 < np.abs(overlay[2] - drawn[1]).mean()
    run = json.loads((out / "run.json").read_text())
    assert run["stage"] == "stage3" and run["frames"] == FRAMES and run["crop"] == "track"


def test_forward_pass_is_the_networks_clip_recurrence(blob_folder: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    """With a fixed box and clips of 4, the frame-by-frame loop gives what PME.run gives on the same crops."""
    out = predict_video(blob_folder, tiny_ckpt, tmp_path / "run", box=BOX, crop="box", clip_length=4,
                        fuse_reverse=True, mesh_format="none", overlay=False, progress=False)
    arrays = PredictionArrays.load_npz(out / "predictions.npz")
    assert not (out / "meshes").exists() and not (out / "overlay.mp4").exists()
    net = load_model(tiny_ckpt, device="cpu").net
    box = CropBox.from_corners(*BOX)
    crops = np.stack([box.cut(f, 64) for f in blob_frames()])
    clips = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255).reshape(2, 4, 3, 64, 64)
    with torch.no_grad():
        forward, reverse = net.run(clips), net.run(clips, reverse=True)
    np.testing.assert_allclose(arrays.extra["kp3d_forward"], forward.pose.reshape(FRAMES, 21, 3), atol=1e-5)
    np.testing.assert_allclose(arrays.extra["kp3d_reverse"], reverse.pose.reshape(FRAMES, 21, 3), atol=1e-5)
    np.testing.assert_allclose(arrays.crop_boxes, np.tile(box.as_array(), (FRAMES, 1)))
    # the saved camera is the confidence-weighted least-squares fit of kp3d's xy to kp2d
    w = arrays.confidence[3].clip(min=0)
    residual = lambda cam: (w[:, None] * (project(arrays.kp3d[3], cam) - arrays.kp2d[3]) ** 2).sum()  # noqa: E731
    best = residual(arrays.camera[3])
    for step in np.eye(3) * 1e-3:
        assert best <= min(residual(arrays.camera[3] + step), residual(arrays.camera[3] - step))


def test_left_hand_is_the_mirror_image(tmp_path: Path, tiny_ckpt: Path) -> None:
    right, left = tmp_path / "right", tmp_path / "left"
    right.mkdir(), left.mkdir()
    for t, frame in enumerate(blob_frames(3)):
        cv2.imwrite(str(right / f"{t}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(left / f"{t}.png"), cv2.cvtColor(frame[:, ::-1], cv2.COLOR_RGB2BGR))
    x0, y0, x1, y1 = BOX
    mirrored_box = (WIDTH - 1 - x1, y0, WIDTH - 1 - x0, y1)
    common = dict(crop="box", mesh_format="none", overlay=False, progress=False)
    a = PredictionArrays.load_npz(predict_video(right, tiny_ckpt, tmp_path / "a", box=BOX, **common)
                                  / "predictions.npz")
    b = PredictionArrays.load_npz(predict_video(left, tiny_ckpt, tmp_path / "b", box=mirrored_box, left_hand=True,
                                                **common) / "predictions.npz")
    np.testing.assert_allclose(b.kp2d[..., 0], WIDTH - 1 - a.kp2d[..., 0], atol=1e-3)
    np.testing.assert_allclose(b.kp2d[..., 1], a.kp2d[..., 1], atol=1e-3)
    np.testing.assert_allclose(b.kp3d, a.kp3d * [-1.0, 1.0, 1.0], atol=1e-5)
    np.testing.assert_array_equal(b.faces, a.faces[:, ::-1])
    # the forward/backward confidence is the same joint's, whichever hand
    np.testing.assert_allclose(b.extra["confidence3d"], a.extra["confidence3d"], atol=1e-5)


def test_without_confidence_only_the_forward_pass_runs(blob_folder: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    common = dict(box=BOX, crop="box", mesh_format="none", overlay=False, progress=False)
    fast = predict_video(blob_folder, tiny_ckpt, tmp_path / "fast", confidence=False, **common)
    full = predict_video(blob_folder, tiny_ckpt, tmp_path / "full", **common)
    a = PredictionArrays.load_npz(fast / "predictions.npz")
    b = PredictionArrays.load_npz(full / "predictions.npz")
    assert a.extra == {} and not (fast / "confidence.json").exists()
    header, _ = csv_values(fast / "keypoints3d.csv")
    assert len(header) == 64
    np.testing.assert_allclose(b.kp3d, a.kp3d, atol=1e-6)  # without --fuse-reverse the answer is the forward pass
    np.testing.assert_allclose(b.kp3d, b.extra["kp3d_forward"])
    assert json.loads((full / "run.json").read_text())["settings"]["confidence"] is True


def test_refusals_and_clear_errors(blob_video: Path, tiny_ckpt: Path, tiny_net_config: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{}")
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_video(blob_video, tiny_ckpt, out, progress=False)
    predict_video(blob_video, tiny_ckpt, out, overwrite=True, max_frames=2, mesh_format="none", overlay=False,
                  progress=False)
    assert json.loads((out / "run.json").read_text())["frames"] == 2
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(VideoReadError, match=r"bad\.mp4"):
        predict_video(bad, tiny_ckpt, tmp_path / "r1", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoReadError, match="holds no images"):
        predict_video(empty, tiny_ckpt, tmp_path / "r2", progress=False)
    stage1 = stage_checkpoint(tmp_path / "stage1.ckpt", tiny_net_config, stage="stage1")
    with pytest.raises(CheckpointMismatchError, match=r"stage1\.ckpt.*stage 'stage1'"):
        predict_video(blob_video, stage1, tmp_path / "r3", progress=False)
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointMismatchError, match="not written by a tassn stage"):
        predict_video(blob_video, tmp_path / "foreign.ckpt", tmp_path / "r4", progress=False)
    bare = stage_checkpoint(tmp_path / "bare.ckpt", tiny_net_config, record_config=False)
    with pytest.raises(CheckpointMismatchError, match="net_config"):
        predict_video(blob_video, bare, tmp_path / "r5", progress=False)
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 6))  # nothing written by refused runs
    # … which net_overrides (--net-config) fixes
    predict_video(blob_video, bare, tmp_path / "r6", net_overrides=tiny_net_config, max_frames=1, overlay=False,
                  mesh_format="none", progress=False)


def test_command_line(blob_folder: Path, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    code = main(["--video", str(blob_folder), "--ckpt", str(tiny_ckpt), "--out", str(out), "--box", *map(str, BOX),
                 "--mesh-format", "ply", "--max-frames", "3", "--quiet"])
    assert code == 0 and capsys.readouterr().out.strip() == str(out)
    assert sorted(p.name for p in (out / "meshes").iterdir()) == [f"frame_00000{i}.ply" for i in range(3)]
    assert len(FrameSource(out / "overlay.mp4")) == 3
    assert main(["--video", str(blob_folder), "--ckpt", str(tiny_ckpt), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_tracking_crop_follows_each_frames_prediction(blob_video: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    # the untrained test network's peaks are ~0; no re-fit within a frame, so each box comes from the frame before
    trust_all = {"min_confidence": -1e9, "reinit_confidence": -1e9, "refine": 0}
    out = predict_video(blob_video, tiny_ckpt, tmp_path / "run", box=BOX, track_smoothing=0.25, mesh_format="none",
                        overlay=False, progress=False, track_options=trust_all)
    arrays = PredictionArrays.load_npz(out / "predictions.npz")
    replay = TrackingCrop(initial=CropBox.from_corners(*BOX), margin=1.5, smoothing=0.25, **trust_all)
    for t in range(FRAMES):
        np.testing.assert_allclose(arrays.crop_boxes[t], replay.box(t, WIDTH, HEIGHT).as_array(), atol=1e-9)
        replay.update(t, arrays.kp2d[t], arrays.confidence[t])
    assert np.abs(np.diff(arrays.crop_boxes, axis=0)).max() > 1.0  # the box did move
    tracking = json.loads((out / "run.json").read_text())["tracking"]
    assert tracking["floor"] == pytest.approx(replay.floor) and tracking["reinitialised_at"] == []


def test_an_unsure_network_puts_the_first_box_back(blob_video: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = predict_video(blob_video, tiny_ckpt, tmp_path / "run", box=BOX, mesh_format="none", overlay=False,
                        progress=False, confidence=False, track_options={"patience": 2})
    arrays = PredictionArrays.load_npz(out / "predictions.npz")
    np.testing.assert_allclose(arrays.crop_boxes, np.tile(CropBox.from_corners(*BOX).as_array(), (FRAMES, 1)))
    assert json.loads((out / "run.json").read_text())["tracking"]["reinitialised_at"] == list(range(2, FRAMES + 1, 2))


def test_a_run_that_fails_keeps_the_previous_outputs_byte_for_byte(blob_folder: Path, tiny_ckpt: Path,
                                                                   tmp_path: Path, monkeypatch) -> None:
    import tassn.predict.runner as runner

    out = predict_video(blob_folder, tiny_ckpt, tmp_path / "run", box=BOX, mesh_format="obj", overlay=False,
                        progress=False)
    before = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert "meshes/frame_000000.obj" in before

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runner, "render_overlay_video", fail)  # fails while the new outputs are being written
    with pytest.raises(OSError, match="disk full"):
        predict_video(blob_folder, tiny_ckpt, out, box=BOX, overwrite=True, progress=False)
    frames = sorted(blob_folder.iterdir())
    frames[len(frames) // 2].write_bytes(b"not an image")  # a frame that cannot be read mid-run
    with pytest.raises(VideoReadError, match=frames[len(frames) // 2].name):
        predict_video(blob_folder, tiny_ckpt, out, box=BOX, overwrite=True, overlay=False, progress=False)
    after = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run")) == []


def test_refinement_predicts_each_frame_on_its_refit_box(blob_video: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    trust_all = {"min_confidence": -1e9, "reinit_confidence": -1e9}  # the untrained test network's peaks are ~0
    runs = {}
    for refine in (0, 1):
        out = predict_video(blob_video, tiny_ckpt, tmp_path / f"r{refine}", box=BOX, mesh_format="none",
                            overlay=False, progress=False, confidence=False,
                            track_options={**trust_all, "refine": refine})
        runs[refine] = PredictionArrays.load_npz(out / "predictions.npz")
        assert json.loads((out / "run.json").read_text())["tracking"]["refine"] == refine
    first = CropBox.from_corners(*BOX)
    np.testing.assert_allclose(runs[0].crop_boxes[0], first.as_array())
    refined = runs[1].crop_boxes
    assert not np.allclose(refined, runs[0].crop_boxes)  # frames are predicted on re-fit boxes …
    sides = refined[:, 2]
    assert (sides[1:] / sides[:-1]).max() <= 1.25 + 1e-9 and (sides[:-1] / sides[1:]).max() <= 1.25 + 1e-9
    assert sides.min() >= 0.25 * first.size - 1e-9  # … within the tracker's bounds
    # the prediction that counts is the network's on that box, with the recurrence of the counted frames only
    model = load_model(tiny_ckpt, device="cpu")
    from tassn.predict.passes import Stepper

    stepper = Stepper(model)
    for t, frame in enumerate(FrameSource(blob_video)):
        if t == 0:
            stepper.restart()
        stepper(np.zeros_like(CropBox(*refined[t]).cut(frame, stepper.crop_size)), commit=False)  # a trial
        kp, _, _, _ = stepper(CropBox(*refined[t]).cut(frame, stepper.crop_size))
        np.testing.assert_allclose(CropBox(*refined[t]).to_frame(kp, stepper.crop_size), runs[1].kp2d[t], atol=1e-6)


def test_an_output_folder_that_cannot_be_written_is_one_line_and_status_2(
        blob_folder: Path, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import tassn.predict.writers as writers

    under_a_file = tmp_path / "notes.txt"
    under_a_file.write_text("a file")
    assert main(["--video", str(blob_folder), "--ckpt", str(tiny_ckpt), "--out", str(under_a_file / "run"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{under_a_file} is a file" in err and "Traceback" not in err
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(writers.os, "access", lambda p, mode: Path(p) != read_only and real_access(p, mode))
    assert main(["--video", str(blob_folder), "--ckpt", str(tiny_ckpt), "--out", str(read_only / "run"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{read_only} is not writable" in err
    assert list(read_only.iterdir()) == [] and under_a_file.read_text() == "a file"  # nothing half-written


def test_a_tracker_checkpoint_places_the_crops(blob_video: Path, tiny_ckpt: Path, tiny_net_config: dict,
                                               tmp_path: Path) -> None:
    # a stage-1 checkpoint (heatmaps only) is refused as the model but accepted as the tracker
    stage1 = stage_checkpoint(tmp_path / "stage1.ckpt", tiny_net_config, stage="stage1", seed=3)
    trust_all = {"min_confidence": -1e9, "reinit_confidence": -1e9, "refine": 0, "search": 0}
    common = dict(box=BOX, mesh_format="none", overlay=False, progress=False, confidence=False,
                  track_options=trust_all, max_frames=4)
    alone = predict_video(blob_video, tiny_ckpt, tmp_path / "alone", **common)
    located = predict_video(blob_video, tiny_ckpt, tmp_path / "located", tracker_ckpt=stage1, **common)
    run = json.loads((located / "run.json").read_text())
    assert run["tracker_checkpoint"] == str(stage1.resolve())
    assert json.loads((alone / "run.json").read_text())["tracker_checkpoint"] is None
    boxes = [PredictionArrays.load_npz(p / "predictions.npz").crop_boxes for p in (alone, located)]
    assert not np.allclose(boxes[0], boxes[1])  # another network's keypoints placed the crops
    with pytest.raises(ValueError, match="tracker-ckpt.*'box'"):
        predict_video(blob_video, tiny_ckpt, tmp_path / "r1", crop="box", tracker_ckpt=stage1, **common)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(stage1.read_bytes()[:4096])
    with pytest.raises(CheckpointMismatchError, match=r"truncated\.ckpt is not a readable checkpoint"):
        predict_video(blob_video, tiny_ckpt, tmp_path / "r2", tracker_ckpt=truncated, **common)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
