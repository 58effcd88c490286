"""``tassn train-detector --config <a fit run's configs> --out DIR``: train the first-box hand detector.

The dataset comes from the same config files as ``tassn fit`` (their ``data`` section; the rest is ignored), so
``make train-detector`` reads the target videos the stages read. The detector's options are ``--detector.*``
(:class:`~tassn.stages.hand_detector.HandDetectorModule`) and ``--boxes.*``
(:class:`~data_modules.hand_boxes.HandBoxDataModule`); ``DIR/checkpoints/best.ckpt`` (the best validation IoU; logs in ``DIR/logs/version_<n>/metrics.csv``)
and ``last.ckpt`` are what ``tassn predict --detector-ckpt`` reads. An earlier run's ``DIR/checkpoints`` is moved
to ``DIR/checkpoints.<n>`` first, as ``tassn fit`` does: a trained detector is never overwritten.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser():  # noqa: ANN201  (a jsonargparse parser; its import is deferred with the command's)
    from data_modules.hand_boxes import HandBoxDataModule

    from tassn.data_config import data_config_parser
    from tassn.stages.hand_detector import HandDetectorModule

    parser = data_config_parser("tassn train-detector", __doc__ or "")
    parser.add_class_arguments(HandDetectorModule, "detector", instantiate=False)
    parser.add_class_arguments(HandBoxDataModule, "boxes", skip={"source", "seed"}, instantiate=False)
    parser.add_argument("--out", type=str, required=True, help="the run folder (checkpoints/, metrics.csv)")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the training frames (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the data (default 0)")
    parser.add_argument("--accelerator", type=str, default="auto", help="Lightning's accelerator (default auto)")
    parser.add_argument("--progress", type=bool, default=True, help="show Lightning's progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import lightning as L
    from data_modules.hand_boxes import HandBoxDataModule
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from tassn.config_trust import check_config
    from tassn.run_folder import set_aside_checkpoints
    from tassn.stages.checkpoints import WeightsOnlyCheckpointIO
    from tassn.stages.hand_detector import DETECTOR_MONITOR, HandDetectorModule

    parser = build_parser()
    config = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    check_config(config.data, "the data config")
    if config.detector.input_size != config.boxes.input_size:
        sys.stderr.write(f"tassn train-detector: error: --detector.input_size {config.detector.input_size} and "
                         f"--boxes.input_size {config.boxes.input_size} must be the same\n")
        return 2
    out = Path(config.out)
    checkpoints = out / "checkpoints"
    L.seed_everything(config.seed, workers=True)
    source = parser.instantiate_classes(config).data
    boxes = HandBoxDataModule(source, seed=config.seed, **config.boxes.as_dict())
    model = HandDetectorModule(**config.detector.as_dict())
    set_aside_checkpoints(checkpoints)
    trainer = L.Trainer(
        default_root_dir=str(out), max_epochs=config.epochs, accelerator=config.accelerator, devices=1,
        logger=CSVLogger(str(out), name="logs"), plugins=[WeightsOnlyCheckpointIO()],
        callbacks=[ModelCheckpoint(dirpath=str(checkpoints), filename="best", monitor=DETECTOR_MONITOR, mode="max",
                                   save_last=True, enable_version_counter=False)],
        reload_dataloaders_every_n_epochs=1, enable_progress_bar=config.progress, log_every_n_steps=10,
        deterministic=False,
    )
    trainer.fit(model, datamodule=boxes)
    best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    print(f"hand detector: best {DETECTOR_MONITOR} {float(best):.3f} → {checkpoints / 'best.ckpt'}"
          if best is not None else f"hand detector → {checkpoints}")
    return 0
