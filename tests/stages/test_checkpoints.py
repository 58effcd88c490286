"""Checkpoints are data: every stage entry point reads them weights-only and refuses a code payload unrun."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from payloads import PAYLOAD_GLOBAL, payload_checkpoint
from tassn.stages.checkpoints import CheckpointMismatchError, UntrustedCheckpointError, read_checkpoint


def test_read_checkpoint_refuses_a_payload_naming_file_and_global(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = payload_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UntrustedCheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and PAYLOAD_GLOBAL in message and "\n" not in message
    assert not marker.exists()


def test_damaged_or_foreign_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.ckpt").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(CheckpointMismatchError, match="junk.ckpt is not a readable checkpoint"):
        read_checkpoint(tmp_path / "junk.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointMismatchError, match="list.ckpt holds a list"):
        read_checkpoint(tmp_path / "list.ckpt")


@pytest.mark.parametrize("argument", ["init_from", "init_heatmap_from", "init_mesh_from"])
def test_every_init_from_refuses_a_payload(argument: str, make_net, tmp_path: Path) -> None:
    from tassn.stages import Stage2

    marker = tmp_path / "marker"
    path = payload_checkpoint(tmp_path / "evil.ckpt", marker)
    stage = Stage2(make_net(), **{argument: str(path)})
    with pytest.raises(UntrustedCheckpointError, match=rf"{path.name}: refused to load {PAYLOAD_GLOBAL}"):
        stage.setup("fit")
    assert not marker.exists()
