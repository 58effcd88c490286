from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from predict_testdata import FPS, FRAMES, HEIGHT, WIDTH, blob_centre, blob_frames

from tassn.predict import video_io
from tassn.predict.video_io import FrameSource, Mp4Writer, VideoReadError, read_frames


def test_video_file_frames_and_info(blob_video: Path) -> None:
    source = FrameSource(blob_video)
    assert (source.info.width, source.info.height, source.info.num_frames) == (WIDTH, HEIGHT, FRAMES)
    assert source.info.fps == pytest.approx(FPS)
    frames = np.stack(list(source))
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    # RGB order survives: the blob is red-dominant, the background blue-dominant (lossy codec: loose bounds).
    cx, cy = blob_centre(5)
    assert frames[5, round(cy), round(cx), 0] > 180 and frames[5, round(cy), round(cx), 2] < 190
    assert frames[5, 2, 2, 2] > frames[5, 2, 2, 0]
    assert len(list(FrameSource(blob_video, max_frames=3))) == 3


def test_folder_is_sorted_naturally(blob_folder: Path) -> None:
    # f_10 would sort before f_2 alphabetically; add f_8 … f_10 and check the order numbers give.
    for t in range(FRAMES, 11):
        cv2.imwrite(str(blob_folder / f"f_{t}.png"), np.full((HEIGHT, WIDTH, 3), t, np.uint8))
    frames = read_frames(blob_folder)
    assert frames.shape == (11, HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(frames[:FRAMES], blob_frames())  # PNG is lossless
    assert [int(f[0, 0, 0]) for f in frames[FRAMES:]] == list(range(FRAMES, 11))
    assert FrameSource(blob_folder, fps=12.5).info.fps == 12.5


def test_clear_errors(tmp_path: Path, blob_folder: Path) -> None:
    with pytest.raises(VideoReadError, match="does not exist"):
        FrameSource(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(VideoReadError, match=r"bad\.mp4"):
        FrameSource(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    with pytest.raises(VideoReadError, match="holds no images"):
        FrameSource(empty)
    cv2.imwrite(str(blob_folder / f"f_{FRAMES}.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(VideoReadError, match="same size"):
        list(FrameSource(blob_folder))


@pytest.mark.parametrize("force_fallback", [False, True])
def test_mp4_writer_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force_fallback: bool) -> None:
    if force_fallback:
        class Closed:
            def __init__(self, *args: object) -> None: ...
            def isOpened(self) -> bool: return False  # noqa: N802, E704
            def release(self) -> None: ...  # noqa: E704
        monkeypatch.setattr(video_io.cv2, "VideoWriter", Closed)
    frames = blob_frames(5)
    path = tmp_path / "out.mp4"
    with Mp4Writer(path, fps=FPS, size=(WIDTH, HEIGHT)) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.backend == ("imageio-ffmpeg" if force_fallback else "opencv")
    monkeypatch.undo()
    back = read_frames(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 6
    with pytest.raises(ValueError, match="must be uint8"):
        Mp4Writer(tmp_path / "x.mp4", FPS, (WIDTH, HEIGHT)).write(np.zeros((3, 3, 3), np.uint8))


def test_folder_with_a_gap_in_frame_numbers_is_refused(blob_folder: Path) -> None:
    files = sorted(blob_folder.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    assert len(files) >= 3
    files[1].unlink()
    with pytest.raises(VideoReadError, match=f"skips from {files[0].name} to {files[2].name}"):
        FrameSource(blob_folder)
