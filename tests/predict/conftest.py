"""Fixtures of the predict tests: a short synthetic video and the same frames as a folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from predict_testdata import TINY_NET, blob_frames, sphere_template, stage_checkpoint, write_video

import tassn.hand.template as hand_template


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


@pytest.fixture
def tiny_net_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """PME arguments of a tiny network whose template is a sphere, graphs cached in tmp_path (also where a
    checkpoint's network is rebuilt: its recorded graph_cache_dir is not taken from the file).

    A checkpoint names its template (``procedural``) and never holds one, so the sphere stands in for the loader's
    ``procedural`` hand."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = sphere_template()
    monkeypatch.setattr(hand_template, "load_template", lambda name: template)
    return {**TINY_NET, "graph_cache_dir": str(tmp_path / "graphs")}


@pytest.fixture
def tiny_ckpt(tmp_path: Path, tiny_net_config: dict) -> Path:
    return stage_checkpoint(tmp_path / "stage3.ckpt", tiny_net_config)
