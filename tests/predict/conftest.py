"""Fixtures of the predict tests: a short synthetic video and the same frames as a folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from predict_testdata import blob_frames, write_video


@pytest.fixture
def blob_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "blob.mp4", blob_frames())


@pytest.fixture
def blob_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(blob_frames()):
        cv2.imwrite(str(folder / f"f_{t}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder
