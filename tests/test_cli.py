"""The command line: fit/test through LightningCLI, run folders, resume, config errors, `lightning`, `report`.

Tiny networks and videos (tests/stages/conftest.py builds them); W&B is disabled.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "stages"))
from stage_fixtures import *  # noqa: E402,F401,F403  (tiny nets, videos and configs)


def run_cli(args: list[str]):
    from tassn.cli import TassnCLI

    return TassnCLI(args=args)


def metrics_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_fit_writes_run_folders_and_resumes_from_last(write_configs, tmp_path) -> None:
    configs = write_configs("Stage1", trainer={"max_steps": 2, "max_epochs": 5})
    run_cli(["fit", *configs])
    root = tmp_path / "run"
    last = root / "checkpoints" / "last.ckpt"
    assert last.is_file() and (root / "checkpoints" / "best.ckpt").is_file()
    first = torch.load(last, weights_only=True)
    assert first["global_step"] == 2 and first["tassn_stage"] == "stage1"
    assert first["hyper_parameters"]["net"]["init_args"]["image_size"] == 32  # linked from data.crop_size
    # how the training crops were cut and drawn, for tassn predict and tassn adapt to follow
    recorded = first["datamodule_hyper_parameters"]
    assert recorded["crop_size"] == 32 and recorded["crop_margin"] > 0 and recorded["heatmap_sigma"] > 0

    # a stopped run continues from its last checkpoint: the step count goes on, a new run folder keeps its config
    cli = run_cli(["fit", *configs, "--trainer.max_steps=4", "--ckpt_path=last"])
    assert cli.trainer.global_step == 4
    assert torch.load(last, weights_only=True)["global_step"] == 4
    assert sorted(p.name for p in root.glob("version_*")) == ["version_0", "version_1"]
    assert (root / "version_0" / "config.yaml").read_text() != (root / "version_1" / "config.yaml").read_text()
    rows = metrics_rows(root / "version_1" / "metrics.csv")
    steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert steps and min(steps) >= 2
    assert {"train/loss", "train/loss_h", "val/epe_mm", "val/auc_0_50", "val/auc_20_50", "val/pck2d",
            "val/accel_mm", "val/jitter_mm", "val/jitter_gt_mm"} <= set(rows[0])


def test_a_new_fit_sets_an_earlier_runs_checkpoints_aside(write_configs, tmp_path) -> None:
    configs = write_configs("Stage1", trainer={"max_steps": 2, "max_epochs": 5})
    run_cli(["fit", *configs])
    root = tmp_path / "run"
    finished = (root / "checkpoints" / "last.ckpt").read_bytes()
    run_cli(["fit", *configs, "--trainer.max_steps=1"])  # no --ckpt_path: a new training, not a resume
    kept = root / "checkpoints.1" / "last.ckpt"
    assert kept.read_bytes() == finished and (root / "checkpoints.1" / "best.ckpt").is_file()
    assert torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 1
    run_cli(["fit", *configs, "--trainer.max_steps=1"])
    assert (root / "checkpoints.2" / "last.ckpt").is_file() and kept.read_bytes() == finished


def test_test_subcommand_writes_results_and_report_prints_them(write_configs, tmp_path, capsys) -> None:
    configs = write_configs("Stage3", trainer={"max_steps": 1})
    run_cli(["fit", *configs])
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    run_cli(["test", *configs, f"--ckpt_path={last}"])
    results_files = list((tmp_path / "run").rglob("test_results.json"))
    assert len(results_files) == 1
    results = json.loads(results_files[0].read_text())
    assert results["stage"] == "stage3" and results["variant"] == "TASSN" and results["dataset"] == "synthetic"
    protocol = {"epe_mm", "epe_median_mm", "auc_0_50", "auc_20_50"}
    assert set(results["metrics"]) == {*protocol, *(f"st_{k}" for k in protocol), *(f"pa_{k}" for k in protocol),
                                       "pck2d", "accel_mm", "jitter_mm", "jitter_gt_mm"}
    assert results["metrics"]["pa_epe_mm"] <= results["metrics"]["st_epe_mm"] + 1e-6  # PA can only fit better
    assert results["metrics"]["accel_mm"] >= 0 and results["metrics"]["jitter_gt_mm"] > 0  # the hands move
    assert 0 < results["metrics"]["epe_mm"] < 1000
    assert 0 <= results["metrics"]["auc_20_50"] <= 1
    assert Path(results["pck_curve_png"]).is_file()

    from tassn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "run")])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    epe = f"{results['metrics']['epe_mm']:.1f}"
    assert "ACCEL" in out and f"{results['metrics']['accel_mm']:.2f}" in out
    ours = next(line for line in out.splitlines() if line.startswith("ours, synthetic"))
    assert "PA-EPE" in out and f" {results['metrics']['pa_epe_mm']:.1f} " in ours  # beside the protocol's EPE
    assert "ours, synthetic: TASSN" in out and epe in out and "paper, STB: TASSN" in out and "0.972" in out


def test_a_checkpoint_rebuilds_its_stage_without_the_config(write_configs, tmp_path) -> None:
    from tassn.stages import Stage2

    configs = write_configs("Stage2", trainer={"max_steps": 1})
    cli = run_cli(["fit", *configs])
    loaded = Stage2.load_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert loaded.net.image_size == 32 and loaded.lambda_s == pytest.approx(0.1)
    trained = cli.model.net.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in loaded.net.state_dict().items())


def test_config_typos_get_jsonargparse_errors(write_configs, tmp_path, capsys) -> None:
    configs = write_configs("Stage3")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", *configs, "--model.init_args.lamda_s=0.5"])
    assert exit_info.value.code != 0
    assert "lamda_s" in capsys.readouterr().err

    typo = tmp_path / "typo.yaml"
    typo.write_text("trainer:\n  max_epoch: 3\n")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", *configs, "--config", str(typo)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    first = err.splitlines()[0]  # the key and its nearest valid keys come first, no usage
    assert "unknown config key 'trainer.max_epoch'" in first and "trainer.max_epochs" in first
    assert "usage:" not in err and len(err.splitlines()) <= 5

    model_typo = tmp_path / "model_typo.yaml"
    model_typo.write_text("model:\n  init_args:\n    lamda_s: 0.5\n")
    with pytest.raises(SystemExit):
        run_cli(["fit", *configs, "--config", str(model_typo)])
    first = capsys.readouterr().err.splitlines()[0]
    assert "unknown config key 'model.init_args.lamda_s'" in first and "model.init_args.lambda_s" in first


def test_help_lists_every_command_on_one_line(capsys) -> None:
    from tassn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for command in ("fit", "validate", "test", "predict", "predict --video", "adapt", "prepare", "report",
                    "train-detector"):
        assert sum(line.split("  ")[1:2] == [command] for line in lines) == 1, f"{command!r} is not listed once"


def test_predict_help_shows_the_video_options(capsys) -> None:
    from tassn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--video", "--ckpt", "--out", "--bbox", "--track-max-step", "--track-floor", "--reinit-confidence"):
        assert option in out


def test_a_truncated_checkpoint_is_one_line_naming_the_file(tmp_path, capsys) -> None:
    from tassn.cli import main

    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2
    import numpy as np

    cv2.imwrite(str(frames / "frame_0.png"), np.zeros((32, 32, 3), np.uint8))
    ckpt = tmp_path / "truncated.ckpt"
    buffer = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64)}}, buffer)
    ckpt.write_bytes(buffer.read_bytes()[:200])
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--video", str(frames), "--ckpt", str(ckpt), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert str(ckpt) in err and "not a readable checkpoint" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_user_errors_end_with_a_message_and_status_2(write_configs, tmp_path, capsys) -> None:
    from tassn.cli import main

    configs = write_configs("Stage3", model={"init_from": str(tmp_path / "missing.ckpt")})
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *configs])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "tassn: error:" in err and "missing.ckpt" in err and "Traceback" not in err


def test_predict_with_a_video_goes_to_the_video_predictor(tmp_path, capsys) -> None:
    from tassn.cli import main

    missing = tmp_path / "missing.mp4"
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--video", str(missing), "--ckpt", str(tmp_path / "x.ckpt"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "expected a video file or a folder of frames" in err
    assert not (tmp_path / "out").exists()


def test_lightning_command_explains_the_name_clash(capsys) -> None:
    from tassn.cli import lightning_main

    with pytest.raises(SystemExit) as exit_info:
        lightning_main(["login"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "lightning login" in err and "lightning-sdk" in err and "fit|validate|test|predict" in err


def test_prepare_generates_the_configured_data(write_configs, tmp_path, capsys) -> None:
    from tassn.cli import main

    configs = write_configs("Stage1", data={"root": str(tmp_path / "fresh"), "num_test_videos": 1})
    main(["prepare", *configs])
    assert len(list((tmp_path / "fresh").glob("target-train-*"))) == 1
    assert len(list((tmp_path / "fresh").glob("target-test-*"))) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP on CPU is exercised on Linux")
def test_two_process_ddp_syncs_metrics_and_trains(write_configs, tmp_path) -> None:
    configs = write_configs(
        "Stage3",
        trainer={"max_steps": 2, "devices": 2, "strategy": "ddp", "num_sanity_val_steps": 0},
        data={"batch_size": 1},
        name="ddp",
    )
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(repo)])}
    proc = subprocess.run(
        [sys.executable, "-m", "tassn", "fit", *configs], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp_path / "ddp"
    last = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2  # 4 training clips, one per process per step: 2 steps per epoch
    rows = metrics_rows(next(root.glob("version_*/metrics.csv")))
    ddp_epe = [float(r["val/epe_mm"]) for r in rows if r.get("val/epe_mm")][-1]

    # the same weights validated in one process on all clips: the synced DDP value must match
    single = run_cli(
        ["validate", *configs, "--trainer.devices=1", "--trainer.strategy=auto",
         f"--ckpt_path={root / 'checkpoints' / 'last.ckpt'}"]
    )
    assert single.trainer.callback_metrics["val/epe_mm"].item() == pytest.approx(ddp_epe, rel=1e-4)


def test_default_loggers_follow_wandb_mode(tmp_path, monkeypatch) -> None:
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from tassn.cli import default_loggers, wandb_mode

    monkeypatch.setenv("WANDB_MODE", "disabled")
    loggers = default_loggers(str(tmp_path / "runs" / "stage3"))
    assert [type(lg) for lg in loggers] == [CSVLogger]  # the CSV logger comes first: its folder is the run folder
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert wandb_mode() == "offline"
    csv_logger, wandb_logger = default_loggers(str(tmp_path / "runs" / "stage3"))
    assert isinstance(wandb_logger, WandbLogger)
    assert wandb_logger._wandb_init["mode"] == "offline" and wandb_logger._wandb_init["name"] == "runs/stage3"
    assert Path(csv_logger.log_dir) == tmp_path / "runs" / "stage3" / "version_0"


def test_cosine_schedule_decays_to_zero_over_the_run(write_configs) -> None:
    configs = write_configs("Stage1", model={"lr_schedule": "cosine"}, trainer={"max_steps": 3, "max_epochs": 5})
    cli = run_cli(["fit", *configs])
    (optimizer,) = cli.trainer.optimizers
    assert cli.trainer.global_step == 3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert optimizer.param_groups[0]["initial_lr"] == pytest.approx(1e-3)


def test_train_detector_writes_a_detector_and_never_overwrites_one(write_configs, tmp_path, capsys) -> None:
    from tassn.cli import main
    from tassn.predict.detector import HandDetector

    configs = write_configs("Stage1")
    out = tmp_path / "detector"
    args = ["train-detector", *configs, "--out", str(out), "--epochs", "1", "--detector.input_size", "32",
            "--detector.width", "4", "--boxes.input_size", "32", "--boxes.batch_size", "2", "--progress", "false"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    best = out / "checkpoints" / "best.ckpt"
    detector = HandDetector.load(best)
    assert detector.net.input_size == 32 and len(detector(np.zeros((40, 56, 3), np.uint8))) == 1
    written = best.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main([*args[:-6], "--boxes.input_size", "64", "--boxes.batch_size", "2", "--progress", "false"])
    assert exit_info.value.code == 2 and "must be the same" in capsys.readouterr().err
    assert best.read_bytes() == written  # a refused run touches nothing
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    assert (out / "checkpoints.1" / "best.ckpt").read_bytes() == written  # the first run's, set aside
    assert best.is_file()
