"""Configs and checkpoints given to the command line are data: payloads never run, paths never come from a
checkpoint, and a real `last.ckpt` still resumes, initialises the next stage and predicts."""

from __future__ import annotations

import http.server
import sys
import threading
from pathlib import Path

import cv2
import pytest
import torch
import yaml

from payloads import PAYLOAD_GLOBAL, payload_checkpoint, payload_pickle

sys.path.insert(0, str(Path(__file__).parent / "stages"))
from stage_fixtures import *  # noqa: E402,F401,F403  (tiny nets, videos and configs)


def run_main(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from tassn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


def assert_refused(code: int, err: str, names: str) -> None:
    """Exit status 2 and one line naming ``names`` (progress bars may come before it), no traceback."""
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and names in lines[0] and lines[0] == err.strip().splitlines()[-1], err


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_ckpt_path_payload_is_refused(subcommand: str, write_configs, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "marker"
    path = payload_checkpoint(tmp_path / "evil.ckpt", marker)
    code, err = run_main([subcommand, *write_configs("Stage3"), f"--ckpt_path={path}"], capsys)
    assert_refused(code, err, str(path))
    assert PAYLOAD_GLOBAL in err and not marker.exists()


def test_last_checkpoint_payload_is_refused(write_configs, tmp_path: Path, capsys) -> None:
    """``--ckpt_path last`` is resolved and loaded by Lightning itself, weights-only."""
    marker = tmp_path / "marker"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    path = payload_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", marker)
    code, err = run_main(["fit", *write_configs("Stage3", trainer={"max_steps": 1}), "--ckpt_path=last"], capsys)
    assert_refused(code, err, str(path))
    assert PAYLOAD_GLOBAL in err and not marker.exists()


def test_remote_ckpt_path_and_full_unpickling_are_refused(write_configs, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "marker"
    payload_checkpoint(tmp_path / "evil.ckpt", marker)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/evil.ckpt"
        configs = write_configs("Stage3")
        code, err = run_main(["test", *configs, f"--ckpt_path={url}"], capsys)
        assert_refused(code, err, url)
        code, err = run_main(["test", *configs, f"--ckpt_path={url}", "--weights_only=false"], capsys)
        assert_refused(code, err, "--weights_only false")
    finally:
        server.shutdown()
        server.server_close()
    assert not marker.exists() and requests == []
    # also from a config file, and for a local file
    settings = tmp_path / "unsafe.yaml"
    settings.write_text("weights_only: false\n")
    code, err = run_main(["test", *configs, "--config", str(settings), f"--ckpt_path={tmp_path / 'evil.ckpt'}"],
                         capsys)
    assert_refused(code, err, "--weights_only false")
    assert not marker.exists()


def test_checkpoint_hyper_parameters_never_choose_a_path(write_configs, tmp_path: Path, capsys) -> None:
    from tassn.cli import TassnCLI

    configs = write_configs("Stage3", trainer={"max_steps": 1})
    TassnCLI(args=["fit", *configs])
    real = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(real, weights_only=True)
    marker, evil_template = tmp_path / "marker", tmp_path / "template.pkl"
    evil_template.write_bytes(payload_pickle(marker))
    hparams = checkpoint["hyper_parameters"]
    net = hparams["net"]["init_args"]
    net.update(template=str(evil_template), graph_cache_dir=str(tmp_path / "planted"),
               flow_checkpoint=str(tmp_path / "flow.pth"), hourglass_features=4096)
    hparams.update(init_from=str(tmp_path / "other.ckpt"), lr=0.5, lambda_s=0.7)
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)

    reads: list[object] = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        reads.append(f)
        return real_load(f, *args, **kwargs)

    torch.load = counting_load
    try:
        cli = TassnCLI(args=["test", *configs, f"--ckpt_path={crafted}"])
    finally:
        torch.load = real_load
    assert len(reads) == 1  # hyper-parameters and weights come from one read
    model = cli.model
    assert not marker.exists() and not (tmp_path / "planted").exists()
    assert model.init_from is None
    assert model.lr == 1e-3  # the user's value wins over the checkpoint's
    assert model.lambda_s == 0.7  # a plain value the user left at its default is taken
    config = cli.config["test"]
    assert config.model.init_args.net.init_args.template == "procedural"
    assert config.model.init_args.net.init_args.hourglass_features == 8  # the user's
    saved = next((tmp_path / "run").glob("version_1/config.yaml")).read_text()
    assert str(tmp_path / "planted") not in saved and str(evil_template) not in saved
    assert "other.ckpt" not in saved and "flow.pth" not in saved


def test_checkpoint_overrides_take_only_plain_values() -> None:
    from tassn.config_trust import checkpoint_overrides

    user = {"class_path": "tassn.stages.Stage3",
            "init_args": {"lr": 1e-5, "lambda_s": 0.1, "lr_schedule": "constant", "init_from": None,
                          "net": {"class_path": "tassn.nets.PME",
                                  "init_args": {"template": "procedural", "flow": "dis", "cheb_k": 3}}}}
    hparams = {"lr": 2e-5, "lambda_s": 0.3, "lr_schedule": "cosine", "init_from": "/x.ckpt",
               "net": {"class_path": "tassn.nets.PME", "init_args": {"template": "mano", "flow": "none", "cheb_k": 2}}}
    assert checkpoint_overrides(hparams, user) == {
        "lr": 2e-5, "lambda_s": 0.3, "lr_schedule": "cosine",
        "net": {"class_path": "tassn.nets.PME", "init_args": {"cheb_k": 2}},  # flow is a free string: not taken
    }
    hparams["net"]["class_path"] = "subprocess.Popen"
    assert "net" not in checkpoint_overrides(hparams, user)


def test_configs_instantiate_only_allow_listed_classes(write_configs, tmp_path: Path, capsys) -> None:
    from tassn.cli import main

    marker = tmp_path / "marker"
    popen = {"class_path": "subprocess.Popen", "init_args": {"args": f"touch {marker}", "shell": True}}
    configs = write_configs("Stage1", data={"root": str(tmp_path / "fresh"), "num_test_videos": 1})
    ignored = tmp_path / "ignored.yaml"
    ignored.write_text(yaml.safe_dump({"model": popen, "optimizer": popen, "trainer": {"plugins": popen}}))
    main(["prepare", *configs, "--config", str(ignored)])  # the sections prepare ignores are never instantiated
    assert not marker.exists() and list((tmp_path / "fresh").glob("target-train-*"))

    callback = tmp_path / "callback.yaml"
    callback.write_text(yaml.safe_dump({"trainer": {"callbacks": [{
        "class_path": "lightning.pytorch.callbacks.LambdaCallback", "init_args": {"on_fit_start": "os.system"}}]}}))
    code, err = run_main(["fit", *configs, "--config", str(callback)], capsys)
    assert_refused(code, err, PAYLOAD_GLOBAL)  # os.system, under its real module
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"data": popen}))
    code, err = run_main(["prepare", *configs, "--config", str(data)], capsys)
    assert code == 2 and not marker.exists()


def test_a_real_last_checkpoint_resumes_initialises_and_predicts(write_configs, tmp_path: Path) -> None:
    from tassn.cli import TassnCLI
    from tassn.predict.runner import predict_video

    stage2 = write_configs("Stage2", trainer={"max_steps": 1, "max_epochs": 5}, name="s2")
    TassnCLI(args=["fit", *stage2])
    last2 = tmp_path / "s2" / "checkpoints" / "last.ckpt"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last2) == []
    cli = TassnCLI(args=["fit", *stage2, "--trainer.max_steps=2", "--ckpt_path=last"])
    assert cli.trainer.global_step == 2

    stage3 = write_configs("Stage3", trainer={"max_steps": 1}, name="s3", model={"init_from": str(last2)})
    cli = TassnCLI(args=["fit", *stage3])
    assert cli.model._initialised
    last3 = tmp_path / "s3" / "checkpoints" / "last.ckpt"

    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(3):
        image = torch.zeros(48, 48, 3, dtype=torch.uint8).numpy()
        cv2.circle(image, (20 + 2 * t, 24), 8, (200, 150, 120), -1)
        cv2.imwrite(str(frames / f"f_{t}.png"), image)
    out = predict_video(frames, last3, tmp_path / "predicted", crop="full", mesh_format="none", overlay=False,
                        progress=False, device="cpu")
    assert (out / "predictions.npz").is_file() and (out / "run.json").is_file()


def test_a_stage_s_arguments_include_the_base_s_it_passes_on() -> None:
    """Stage constructors pass the base's arguments on as ``**kwargs``; the trust rules and the CLI's hints still
    see every argument LightningCLI shows."""
    from tassn.cli_errors import class_arguments
    from tassn.config_trust import init_parameters
    from tassn.stages import Stage1, Stage3

    assert list(init_parameters(Stage3))[:8] == ["net", "lambda_s", "lambda_h", "lambda_c_pose", "lambda_c_mesh",
                                                 "consistency_keeps_scale", "batch_directions", "renderer"]
    assert {"lr", "lr_schedule", "init_from", "pck2d_threshold"} <= set(init_parameters(Stage3))
    assert class_arguments("tassn.stages.stage1.Stage1") == list(init_parameters(Stage1))
    assert "kwargs" not in init_parameters(Stage3)
