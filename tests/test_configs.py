"""Every config in experiments/ parses with the CLI in the compositions the Makefile and the docs use, and every
W&B sweep's command line parses with sample values (parse only: nothing is built or trained)."""

from __future__ import annotations

import functools
import itertools
import math
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tassn.cli import TassnCLI

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
STAGES = ("pretrain", "stage1", "stage2", "stage3")
TARGET_DATA = ("synthetic", "stb", "mhp")
SIZES = ("cpu", "paper")


class ParseOnly(TassnCLI):
    """Parses (configs, links, types) and stops before building anything."""

    def instantiate_classes(self) -> None:
        pass


def parse(*files: str | Path, extra: tuple[str, ...] = ()) -> dict:
    args = [x for f in files for x in ("--config", str(f))] + list(extra)
    return ParseOnly(args=args, run=False).config.as_dict()


def make_dry_run(target: str, data: str, size: str) -> str:
    """What ``make -n -B <target> DATA=data CONFIG=size`` would run, into a throw-away runs folder."""
    with tempfile.TemporaryDirectory() as runs:
        return subprocess.run(
            ["make", "-n", "-B", "--no-print-directory", target, f"DATA={data}", f"CONFIG={size}", f"RUNS={runs}",
             f"DATA_ROOT={runs}"],
            cwd=EXPERIMENTS.parent, capture_output=True, text=True, check=True,
        ).stdout


@functools.cache
def make_compositions(data: str, size: str) -> dict[str, list[Path]]:
    """The ``--config`` files of each stage's ``tassn fit`` in ``make train-stage3 DATA=data CONFIG=size``, read from
    ``make -n`` (the Makefile's own composition and order, not a copy of it)."""
    out = make_dry_run("train-stage3", data, size)
    compositions = {}
    for line in out.splitlines():
        if " -m tassn fit " not in line:
            continue
        words = shlex.split(line)
        files = [EXPERIMENTS.parent / words[i + 1] for i, w in enumerate(words[:-1]) if w == "--config"]
        compositions[files[0].stem] = files
    assert set(compositions) == set(STAGES), f"make -n train-stage3 DATA={data} CONFIG={size}: {sorted(compositions)}"
    return compositions


@functools.cache
def tracker_composition(data: str, size: str) -> list[Path]:
    """The ``--config`` files of ``make train-tracker DATA=data CONFIG=size``'s ``tassn fit``, read from ``make -n``."""
    out = make_dry_run("train-tracker", data, size)
    words = shlex.split([line for line in out.splitlines() if "/tracker" in line and " -m tassn fit " in line][0])
    return [EXPERIMENTS.parent / words[i + 1] for i, w in enumerate(words[:-1]) if w == "--config"]


def detector_composition(data: str, size: str) -> list[Path]:
    """The ``--config`` files of ``make train-detector DATA=data CONFIG=size``, read from ``make -n``."""
    out = make_dry_run("train-detector", data, size)
    words = shlex.split([line for line in out.splitlines() if " -m tassn train-detector " in line][0])
    return [EXPERIMENTS.parent / words[i + 1] for i, w in enumerate(words[:-1]) if w == "--config"]


def composition(stage: str, data: str, size: str | None) -> list[Path]:
    """The files a stage is composed of: as `make` composes them for a size overlay; stage and data alone without
    one (the plain ``tassn fit --config <stage> --config <data>`` of the docs)."""
    if size is not None:
        return make_compositions(data, size)[stage]
    data_file = "synthetic_source" if stage == "pretrain" else data
    return [EXPERIMENTS / f"{stage}.yaml", EXPERIMENTS / "data" / f"{data_file}.yaml"]


def test_every_yaml_file_is_used_by_a_composition() -> None:
    used = {p for s, d, z in itertools.product(STAGES, TARGET_DATA, (*SIZES, None)) for p in composition(s, d, z)}
    used |= set((EXPERIMENTS / "ablations").glob("*.yaml"))
    used |= {p for d, z in itertools.product(TARGET_DATA, SIZES) for p in tracker_composition(d, z)}
    used |= {p for d, z in itertools.product(TARGET_DATA, SIZES) for p in detector_composition(d, z)}
    on_disk = {p for p in EXPERIMENTS.rglob("*.yaml") if "sweeps" not in p.parts}
    assert on_disk - used == set()


@pytest.mark.parametrize("data", TARGET_DATA)
@pytest.mark.parametrize("size", SIZES)
def test_the_tracker_is_stage_one_on_jittered_crops(data: str, size: str) -> None:
    files = tracker_composition(data, size)
    assert files[: len(composition("stage1", data, size))] == composition("stage1", data, size)
    assert files[-1] == EXPERIMENTS / "tracker.yaml"  # last: its step and jitter win over stage 1's
    config = parse(*files)
    assert config["model"]["class_path"] == "tassn.stages.Stage1"
    jitter = config["data"]["init_args"]
    assert jitter["crop_jitter"] == 0.25 and jitter["crop_scale_jitter"] == 0.4
    assert config["model"]["init_args"]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("data", TARGET_DATA)
@pytest.mark.parametrize("size", SIZES)
def test_the_detector_reads_the_target_data_config(data: str, size: str) -> None:
    from tassn.train_detector import build_parser

    files = detector_composition(data, size)
    assert files[0] == EXPERIMENTS / "data" / f"{data}.yaml" and files[-1] == EXPERIMENTS / "detector.yaml"
    config = build_parser().parse_args([*(a for f in files for a in ("--config", str(f))), "--out", "x"])
    assert config.data.class_path == yaml.safe_load(files[0].read_text())["data"]["class_path"]
    assert config.detector.input_size == config.boxes.input_size == 128 and config.epochs == 10


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("data", TARGET_DATA)
@pytest.mark.parametrize("size", [*SIZES, None])
def test_stage_data_size_compositions_parse(stage: str, data: str, size: str | None) -> None:
    if stage == "pretrain" and data != "synthetic":
        pytest.skip("the pre-training always runs on the synthetic source domain")
    config = parse(*composition(stage, data, size))
    model, data_cfg, trainer = config["model"], config["data"]["init_args"], config["trainer"]
    assert model["class_path"] == f"tassn.stages.{ {'pretrain': 'Pretrain'}.get(stage, stage.capitalize()) }"
    net = model["init_args"]["net"]["init_args"]
    if size == "cpu":
        assert data_cfg["crop_size"] == 64 and net["hourglass_features"] == 32 and trainer["accelerator"] == "cpu"
        # short CPU schedules (the paper's 50–100 epochs are for GPUs); the pre-training ends by max_steps at 15
        # epochs of its 192 source videos, and its max_epochs is only a bound
        assert trainer["max_epochs"] <= (20 if stage == "pretrain" else 12)
        if stage == "pretrain":
            assert trainer["max_steps"] <= 15 * 192
    elif size == "paper":
        assert data_cfg["crop_size"] == 256 and net["hourglass_features"] == 256
        assert trainer["devices"] == 4 and trainer["strategy"] == "ddp" and data_cfg["batch_size"] * 4 == 24
        if stage != "pretrain":
            assert model["init_args"]["lr"] == pytest.approx(1e-5)
    if stage == "stage3":
        weights = [model["init_args"][k] for k in ("lambda_s", "lambda_h", "lambda_c_pose", "lambda_c_mesh")]
        assert weights == [0.1, 1.0, 10.0, 10.0]
    # target-domain stages never train on 3D labels; the pre-training does
    assert data_cfg.get("serve_3d_in_train", False) is (stage == "pretrain")


@pytest.mark.parametrize(
    ("ablation", "expected"), [("no_lc", (0.0, 0.0)), ("no_lc_mesh", (10.0, 0.0))]
)
def test_ablations_switch_off_the_consistency_terms(ablation: str, expected: tuple[float, float]) -> None:
    files = composition("stage3", "synthetic", "cpu")
    config = parse(files[0], EXPERIMENTS / "ablations" / f"{ablation}.yaml", *files[1:])
    init = config["model"]["init_args"]
    assert (init["lambda_c_pose"], init["lambda_c_mesh"]) == expected
    assert init["lambda_s"] == 0.1 and init["lambda_h"] == 1.0


def sample_value(spec: dict):
    """One value a sweep could pick for a parameter."""
    if "values" in spec:
        return spec["values"][-1]
    if "value" in spec:
        return spec["value"]
    low, high = spec["min"], spec["max"]
    return math.sqrt(low * high) if "log" in spec.get("distribution", "") else (low + high) / 2


@pytest.mark.parametrize("sweep", sorted((EXPERIMENTS / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_sweep_command_lines_parse_with_sample_values(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXPERIMENTS.parent)  # the sweep's paths are relative to the repository
    spec = yaml.safe_load(sweep.read_text())
    command = spec["command"]
    assert command[:5] == ["${env}", "python", "-m", "tassn", "fit"] and command[-1] == "${args}"
    assert spec["metric"]["name"] in {"val/epe_mm", "val/auc_0_50", "val/auc_20_50", "val/pck2d"}
    samples = {key: sample_value(p) for key, p in spec["parameters"].items()}
    args = [f"--{key}={value}" for key, value in samples.items()]  # how the agent expands ${args}
    config = parse(extra=tuple(command[5:-1] + args))
    for key, value in samples.items():
        node = config
        for part in key.split("."):
            node = node[part]
        assert node == pytest.approx(value), key
