"""benchmarks/bench_train_meshes.py: ``--init-from`` starts every benchmarked PME from a checkpoint (and refuses one
of another size, naming the file), and the rendered meshes' size is measured right."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_train  # noqa: E402
import bench_train_meshes  # noqa: E402
from payloads import payload_checkpoint  # noqa: E402
from tassn.render import SilhouetteRenderer  # noqa: E402
from tassn.stages.checkpoints import STAGE_KEY, CheckpointMismatchError, UntrustedCheckpointError  # noqa: E402

TINY = bench_train.Size("tiny-32", 32, dict(bench_train.CPU_NET), batch=1, clip_len=2, steps=1, warmup=0)


def write_checkpoint(path: Path, net: nn.Module, stage: str = "stage2",
                     extra: dict[str, torch.Tensor] | None = None) -> Path:
    """A stage checkpoint as Lightning writes it, reduced to what the loader reads."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()} | (extra or {})
    torch.save({"state_dict": state, STAGE_KEY: stage}, path)
    return path


@pytest.fixture
def restore_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test sets, the next one builds fresh PMEs again."""
    monkeypatch.setattr(bench_train, "net_init", bench_train.net_init)


def test_init_from_loads_the_checkpoint_into_every_stage(tmp_path: Path, restore_init: None) -> None:
    trained = bench_train.build_net(TINY)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.rand_like(p))  # other than the seeded fresh weights
    # a flow network's weights (another backend than the benchmark's "none") are left out, not refused
    path = write_checkpoint(tmp_path / "last.ckpt", trained, extra={"net.flow.conv.weight": torch.ones(2, 2)})
    bench_train.net_init = bench_train_meshes.read_init(path)
    expected = trained.state_dict()
    for name in ("pretrain", "stage3"):
        loaded = bench_train.build_stage(name, TINY).net.state_dict()
        assert loaded.keys() == expected.keys()
        assert all(torch.equal(loaded[k], expected[k]) for k in expected), name
    assert bench_train.net_init.describe() == {"init": "checkpoint", "init_from": str(path), "init_stage": "stage2",
                                               "init_modules": ["heatmap", "mesh", "pose"]}
    fresh = bench_train.build_net(TINY, init=bench_train_meshes.NetInit())
    assert not torch.equal(fresh.mesh.decoder.fc[0].weight, trained.mesh.decoder.fc[0].weight)


def test_a_checkpoint_of_another_size_is_refused_naming_the_file(tmp_path: Path, restore_init: None) -> None:
    other = bench_train.Size("other", 32, dict(bench_train.CPU_NET, mesh_channels=(16, 8, 3)), 1, 2, 1, 0)
    path = write_checkpoint(tmp_path / "other.ckpt", bench_train.build_net(other))
    bench_train.net_init = bench_train_meshes.read_init(path)
    with pytest.raises(CheckpointMismatchError) as err:
        bench_train.build_stage("stage3", TINY)
    message = str(err.value)
    assert message.startswith(str(path)) and "mesh.decoder" in message and "at size tiny-32" in message


def test_the_command_line_fails_before_timing_on_a_checkpoint_of_another_size(
        tmp_path: Path, restore_init: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_checkpoint(tmp_path / "tiny.ckpt", bench_train.build_net(TINY))  # 32² crops; "cpu" is 64²
    with pytest.raises(SystemExit) as exit_:
        bench_train.main(["--sizes", "cpu", "--parts", "train", "--init-from", str(path),
                          "--out", str(tmp_path / "train.json")])
    assert exit_.value.code == 2 and f"--init-from: {path}" in capsys.readouterr().err
    assert bench_train.net_init.path is None and not (tmp_path / "train.json").exists()


def test_init_from_reads_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = payload_checkpoint(tmp_path / "payload.ckpt", marker)
    with pytest.raises(UntrustedCheckpointError, match=str(path)):
        bench_train_meshes.read_init(path)
    assert not marker.exists()


def test_face_area_and_silhouette_fraction_of_a_known_mesh() -> None:
    # an 8×8 px square of two triangles in a 16² silhouette: faces of 32 px², a quarter of the image
    square = torch.tensor([[[4.0, 4.0, 1.0], [12.0, 4.0, 1.0], [12.0, 12.0, 1.0], [4.0, 12.0, 1.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 3, 2]])  # one face each way round: both count
    assert bench_train_meshes.face_areas(square, faces).tolist() == [[32.0, 32.0]]
    renderer = SilhouetteRenderer(16, backend="soft")
    meshes = bench_train_meshes.RenderedMeshes(renderer, factor=2)  # silhouettes at half the crop's side
    assert meshes.size() == {}
    alpha = renderer(square, faces)
    size = meshes.size()
    assert size["face_area_px"] == 4 * 32.0  # in crop pixels
    assert size["silhouette_fraction"] == pytest.approx(float(alpha.mean()))
    assert size["silhouette_fraction"] == pytest.approx(0.25, abs=0.02)
    meshes.remove()
    renderer(square[..., [1, 0, 2]] * 0.5, faces)
    assert meshes.size() == size  # removed: the latest call is no longer kept
