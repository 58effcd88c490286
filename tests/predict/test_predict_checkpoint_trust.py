"""`tassn predict --video` and the prediction writer read checkpoints weights-only, each file once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tassn.stages.checkpoints as checkpoints
from payloads import PAYLOAD_GLOBAL, payload_checkpoint
from tassn.predict.model import load_model


def test_load_model_reads_the_file_once(tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = checkpoints.torch.load

    def counting_load(path, *args, **kwargs):
        reads.append(str(path))
        assert kwargs.get("weights_only") is True
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints.torch, "load", counting_load)
    model = load_model(tiny_ckpt, device="cpu")
    assert model.stage == "stage3" and reads == [str(tiny_ckpt)]


@pytest.mark.parametrize("entry", ["tassn", "python -m tassn.predict"])
def test_predict_video_refuses_a_payload(entry: str, blob_folder: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "marker"
    path = payload_checkpoint(tmp_path / "evil.ckpt", marker)
    args = ["--video", str(blob_folder), "--ckpt", str(path), "--out", str(tmp_path / "out"), "--quiet"]
    if entry == "tassn":
        from tassn.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main(["predict", *args])
        code = exit_info.value.code
    else:
        from tassn.predict.__main__ import main

        code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and PAYLOAD_GLOBAL in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_checkpoints_network_config_never_chooses_a_path(tiny_net_config: dict, tmp_path: Path) -> None:
    from predict_testdata import stage_checkpoint

    from tassn.config_trust import UntrustedConfigError

    planted = tmp_path / "planted"
    path = stage_checkpoint(tmp_path / "stage3.ckpt", tiny_net_config)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["net"]["init_args"]["graph_cache_dir"] = str(planted)
    torch.save(checkpoint, path)
    model = load_model(path, device="cpu")
    assert not planted.exists() and "graph_cache_dir" not in model.net_config
    # the user may name the folder
    load_model(path, device="cpu", net_overrides={"graph_cache_dir": str(tmp_path / "mine")})
    assert (tmp_path / "mine").is_dir()

    checkpoint["hyper_parameters"]["net"]["init_args"]["template"] = str(tmp_path / "MANO.pkl")
    mano = tmp_path / "mano.ckpt"
    torch.save(checkpoint, mano)
    with pytest.raises(UntrustedConfigError, match=r"mano\.ckpt.*template .*MANO\.pkl.*--net-config"):
        load_model(mano, device="cpu")
