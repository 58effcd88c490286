"""The command line: ``tassn fit|validate|test|predict --config …`` (LightningCLI) and ``tassn report``.

Configs compose: a stage file, a data file and a size overlay, later files overriding earlier ones::

    tassn fit --config experiments/stage3.yaml --config experiments/data/synthetic.yaml --config experiments/cpu.yaml

Every run writes into ``trainer.default_root_dir``:
``checkpoints/{best,last}.ckpt`` (``--ckpt_path last`` resumes from them; a new run without it first moves an
earlier run's to ``checkpoints.<n>/``) and a new ``version_<n>/`` per run with its ``config.yaml``, ``metrics.csv``,
PCK curves and test results; a previous run's config is never overwritten. W&B logs too (offline when not logged in; ``WANDB_MODE=disabled`` turns it off).

Configs and checkpoints are data (see SECURITY.md): a config may instantiate only classes of tassn, data_modules,
Lightning and torch.optim; ``--ckpt_path`` is read weights-only (a URL or ``--weights_only false`` is refused),
and of its hyper-parameters only plain, non-path values fill what the user left at its default.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_modules.layout import DatasetLayoutError
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tassn.cli_errors import TassnArgumentParser
from tassn.config_trust import (
    UntrustedConfigError,
    check_ckpt_path,
    check_config,
    checkpoint_overrides,
    merged,
)
from tassn.data_config import data_config_parser
from tassn.quiet import configure_logging, install_filters, quiet_wandb, wandb_run_line
from tassn.run_folder import is_first_process, set_aside_checkpoints
from tassn.safe_load import UntrustedFileError
from tassn.stages.checkpoints import (
    CheckpointMismatchError,
    WeightsOnlyCheckpointIO,
    read_checkpoint,
    refusal,
)

log = logging.getLogger(__name__)

SUBCOMMANDS = ("fit", "validate", "test", "predict")
DESCRIPTION = (
    "Train and evaluate TASSN's stages (LightningCLI). Compose configs: --config experiments/<stage>.yaml "
    "--config experiments/data/<data>.yaml --config experiments/<cpu|paper>.yaml. Also: `tassn prepare --config …` "
    "(generate/check the data and its GrabCut silhouettes), `tassn report RUN_DIR …` (results beside the "
    "paper's Table 1), `tassn predict --video PATH --ckpt CKPT --out DIR` (a trained model on your video) and "
    "`tassn adapt --video PATH --ckpt CKPT --out DIR` (fine-tune on your unlabeled video, then predict; "
    "`tassn adapt --help`)."
)
MONITOR = "val/epe_mm"
#: ``tassn --help``: every command a user has, one line each.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("fit", "train a stage: --config experiments/<stage>.yaml --config experiments/data/<data>.yaml …"),
    ("validate", "evaluate a checkpoint on the validation split (--ckpt_path CKPT)"),
    ("test", "evaluate a checkpoint on the test split: EPE, PCK, AUC (--ckpt_path CKPT)"),
    ("predict", "run a checkpoint over a config's data (LightningCLI; --config … --ckpt_path CKPT)"),
    ("predict --video", "a trained model on your video: keypoints, meshes, overlay (tassn predict --video V --ckpt C "
                        "--out D)"),
    ("adapt", "fine-tune on your unlabeled video, then predict it (tassn adapt --video V --ckpt C --out D)"),
    ("prepare", "generate or check a config's dataset and its GrabCut silhouettes (--config …)"),
    ("report", "results of test runs beside the paper's Table 1 (RUN_DIR …)"),
    ("train-detector", "train the whole-frame hand detector that gives predict its first box (--config … --out D)"),
)


def checkpoint_dir(default_root_dir: str | None) -> str:
    """Where a run folder keeps its checkpoints: one place per folder, so ``--ckpt_path last`` finds them."""
    return str(Path(default_root_dir or os.getcwd()) / "checkpoints")


def crop_side(datamodule: Any) -> int:
    """The side of the data's square crops, which is the network's input side."""
    return datamodule.crop.size


def heatmap_sigma(datamodule: Any) -> float:
    """The width of the data's heatmap targets: the network re-draws its fed-back ``H_t`` with the same width."""
    return float(datamodule.heatmap_sigma)


def wandb_mode() -> str:
    """``online``, ``offline`` or ``disabled``: ``WANDB_MODE`` if set, else online only when logged in."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("disabled", "dryrun", "offline", "online"):
        return "offline" if mode == "dryrun" else mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    import wandb

    return "online" if wandb.login(prompt=False, verify=False) else "offline"


def default_loggers(root_dir: str) -> list[Logger]:
    """CSV logs in a new ``version_<n>`` folder of ``root_dir`` (first, so it is the run's log_dir) plus W&B."""
    loggers: list[Logger] = [CSVLogger(save_dir=root_dir, name="")]
    mode = wandb_mode()
    if mode != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        root = Path(root_dir)
        wandb_logger = WandbLogger(
            save_dir=root_dir,
            project=os.environ.get("WANDB_PROJECT", "tassn"),
            name=f"{root.parent.name}/{root.name}" if root.parent.name else root.name,
            # wandb's own mode (WandbLogger(offline=True) sets a mode that wandb 0.2x+ still logs in for)
            mode=mode,
        )
        # Lightning always passes anonymous=None, which wandb ≥ 0.19 answers with a deprecation warning per run
        wandb_logger._wandb_init.pop("anonymous", None)
        loggers.append(wandb_logger)
    return loggers


class TassnCLI(LightningCLI):
    """LightningCLI over every stage (``tassn.stages``) and every dataset (``data_modules``).

    Adds a configurable best/last :class:`ModelCheckpoint` (``--checkpoint.*``) kept in
    ``<default_root_dir>/checkpoints``, a :class:`~tassn.stages.step_checkpoint.StepCheckpoint` that rewrites its
    ``last.ckpt`` every ``--step_checkpoint.every_n_train_steps`` steps (a killed run resumes mid-epoch) and,
    unless ``trainer.logger`` is configured, CSV + W&B loggers.
    ``model.init_args.net.init_args.image_size`` is linked to ``data.init_args.crop_size``.
    """

    def __init__(self, args: Sequence[str] | dict | None = None, run: bool = True, **kwargs: Any) -> None:
        from data_modules.base import HandClipDataModule

        from tassn.stages.base import StageModule

        install_filters()
        self._preloaded: tuple[str, dict] | None = None  # the --ckpt_path checkpoint, read once
        kwargs.setdefault("save_config_kwargs", {"overwrite": False})
        kwargs.setdefault("parser_kwargs", {"prog": "tassn", "description": DESCRIPTION})
        kwargs.setdefault("parser_class", TassnArgumentParser)
        super().__init__(
            StageModule,
            HandClipDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            run=run,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        from tassn.stages.step_checkpoint import StepCheckpoint

        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(StepCheckpoint, "step_checkpoint")
        parser.link_arguments("trainer.default_root_dir", "step_checkpoint.dirpath", compute_fn=checkpoint_dir)
        parser.set_defaults(
            {
                "checkpoint.monitor": MONITOR,
                "checkpoint.mode": "min",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
                "checkpoint.enable_version_counter": False,
            }
        )
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath", compute_fn=checkpoint_dir)
        # one size for crops and network: the PME's input side is the data's crop side (an instantiation link,
        # so that the checkpoint's hyper-parameters record it and the network can be rebuilt from them)
        parser.link_arguments(
            "data", "model.init_args.net.init_args.image_size", compute_fn=crop_side, apply_on="instantiate"
        )
        parser.link_arguments(
            "data", "model.init_args.net.init_args.feedback_sigma", compute_fn=heatmap_sigma, apply_on="instantiate"
        )

    def _parse_ckpt_path(self) -> None:
        """Lightning's hyper-parameter merge, made safe: weights-only, local files, no paths, the user wins."""
        if not self.config.get("subcommand"):
            return
        config = self.config[self.config.subcommand]
        if config.get("weights_only") is False:
            raise UntrustedConfigError(
                "--weights_only false is refused: checkpoints are read weights-only (see SECURITY.md)"
            )
        if "weights_only" in config:
            config.weights_only = True
        ckpt_path = config.get("ckpt_path")
        check_ckpt_path(ckpt_path)
        if not ckpt_path or not Path(ckpt_path).is_file():
            return  # "last"/"best": Lightning resolves them and loads weights-only
        checkpoint = read_checkpoint(ckpt_path)
        self._preloaded = (ckpt_path, checkpoint)  # handed to the trainer: the file is read once
        hparams = checkpoint.get("hyper_parameters") or {}
        overrides = checkpoint_overrides(hparams, config.model) if isinstance(hparams, dict) else {}
        if overrides:
            update = {"model": merged(config.model.as_dict(), {"init_args": overrides})}
            self.config = self.parser.parse_object({self.config.subcommand: update}, self.config)

    def before_instantiate_classes(self) -> None:
        check_config(self.config)
        # A W&B sweep runs many trials with one command line: give each its own run folder.
        sweep, run_id = os.environ.get("WANDB_SWEEP_ID"), os.environ.get("WANDB_RUN_ID")
        if sweep and run_id:
            config = self.config[self.subcommand] if self.subcommand else self.config
            root = Path(config.trainer.default_root_dir or os.getcwd()) / f"trial-{run_id}"
            config.trainer.default_root_dir = str(root)
            config.checkpoint.dirpath = checkpoint_dir(str(root))
            config.step_checkpoint.dirpath = checkpoint_dir(str(root))
        # a new training in a folder with a finished run's checkpoints sets those aside instead of writing over them
        if self.subcommand == "fit":
            config = self.config.fit
            if not config.get("ckpt_path") and is_first_process():
                set_aside_checkpoints(config.checkpoint.dirpath or checkpoint_dir(config.trainer.default_root_dir))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True) and "logger" not in kwargs:
            kwargs["logger"] = default_loggers(trainer_config.get("default_root_dir") or os.getcwd())
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own plugin is left alone
            trainer.strategy.checkpoint_io = WeightsOnlyCheckpointIO(self._preloaded)
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        self._announce_wandb()
        try:
            super()._run_subcommand(subcommand)
        except pickle.UnpicklingError as err:  # a checkpoint Lightning resolved itself ("last") was refused
            raise refusal(self.trainer.ckpt_path or "--ckpt_path", err) from None


    def _announce_wandb(self) -> None:
        """One line saying where the W&B run is and how to upload it (W&B's own output is silenced)."""
        from lightning.pytorch.loggers import WandbLogger

        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger) and self.trainer.is_global_zero:
                run_dir = Path(logger.experiment.dir).parent  # …/wandb/<offline->run-<date>-<id>
                log.info("%s", wandb_run_line(str(run_dir), wandb_mode()))


def prepare(argv: Sequence[str]) -> None:
    """``tassn prepare --config …``: generate or check the configured dataset and its GrabCut silhouettes.

    Reads the same config files as ``fit`` and instantiates only ``data``, so a dataset is ready (with progress
    bars) before any training starts; ``fit`` would do the same work in ``prepare_data``.
    """
    parser = data_config_parser("tassn prepare", prepare.__doc__ or "")
    config = parser.parse_args(list(argv))
    check_config(config.data, "the data config")
    datamodule = parser.instantiate_classes(config).data
    datamodule.prepare_data()
    for stage in ("fit", "test"):
        datamodule.setup(stage)


def overview() -> str:
    """The text of ``tassn --help``."""
    width = max(len(name) for name, _ in COMMANDS)
    lines = ["usage: tassn COMMAND [options]", "", "Train, evaluate and run TASSN (hand pose and mesh from video).",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS]
    lines += ["", "`tassn COMMAND --help` shows a command's options (`tassn predict --help`: the video options;",
              "`tassn predict --config … --help`: LightningCLI's). Configs compose: stage, data, then size file."]
    return "\n".join(lines)


def wants_help(args: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in args)


USER_ERRORS = (FileNotFoundError, CheckpointMismatchError, DatasetLayoutError, UntrustedFileError)


def main(argv: Sequence[str] | None = None) -> None:
    """``tassn fit|validate|test|predict …`` (LightningCLI), ``tassn predict --video …``, ``tassn adapt …``,
    ``tassn prepare …`` and ``tassn report …``.

    Errors in the user's input (a missing dataset or checkpoint, a checkpoint of the wrong stage) end the
    command with their message and exit status 2 instead of a traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    configure_logging()
    quiet_wandb()
    if not args or args[0] in ("-h", "--help"):
        print(overview())
        raise SystemExit(0 if args else 2)
    try:
        if args and args[0] == "report":
            from tassn import report

            raise SystemExit(report.main(args[1:]))
        if args and args[0] == "adapt":
            from tassn.predict.adapt_main import main as adapt_main

            raise SystemExit(adapt_main(args[1:]))
        if args and args[0] == "prepare":
            prepare(args[1:])
            return
        if args and args[0] == "train-detector":
            from tassn.train_detector import main as train_detector_main

            raise SystemExit(train_detector_main(args[1:]))
        video = any(a == "--video" or a.startswith("--video=") for a in args[1:])
        configured = any(a in ("-c", "--config") or a.startswith("--config=") for a in args[1:])
        if args and args[0] == "predict" and (video or (wants_help(args[1:]) and not configured)):
            # a user's video: the standalone predictor (tassn.predict), not LightningCLI's predict subcommand
            from tassn.predict.__main__ import main as predict_video_main

            raise SystemExit(predict_video_main(args[1:]))
        # from the command line LightningCLI reads sys.argv itself (it is re-read by DDP's launched processes)
        TassnCLI(args=None if argv is None else args)
    except USER_ERRORS as err:
        sys.stderr.write(f"tassn: error: {err}\n")
        raise SystemExit(2) from err


LIGHTNING_CLASH = """\
This `lightning` command is tassn's: it runs `lightning {subcommands} --config …`, the same as `tassn`.
`{command}` is not one of those. Lightning ships no `lightning` command of its own; the separate lightning-sdk
package installs a different `lightning` tool under the same name (for Lightning AI's cloud). If you meant that
tool, install lightning-sdk in another environment, where it keeps the name.
"""


def lightning_main(argv: Sequence[str] | None = None) -> None:
    """``lightning fit|validate|test|predict …``: the tassn CLI under the name the Lightning docs use."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help")):
        main(argv)
        return
    sys.stderr.write(
        LIGHTNING_CLASH.format(subcommands="|".join(SUBCOMMANDS), command=" ".join(["lightning", *args]).strip())
    )
    raise SystemExit(2)


if __name__ == "__main__":
    main()
