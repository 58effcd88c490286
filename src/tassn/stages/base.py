"""What every training stage shares: the PME, which sub-networks train, Adam, evaluation and stage hand-over.

A stage (:mod:`tassn.stages.pretrain`, ``stage1``, ``stage2``, ``stage3``) declares its loss weights and what feeds
each term (:meth:`StageModule.loss_terms`, the paper's equation for that stage); the base's ``training_step`` drops
the 3D labels (except for the pre-training), adds the terms up (:func:`tassn.losses.weighted_sum`) and logs them.
A stage's ``__init__`` takes its own arguments and passes the base's on by keyword (``**kwargs``). Validation and test are the same for all: run the clip forward, measure 2D PCK on
the heatmaps and, when the batch has 3D labels, EPE / PCK / AUC of the pose (root and reference bone aligned to the
ground truth), log the PCK curve as an image and keep it as a PNG (and the test results as JSON) in the run folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from lightning.pytorch.utilities import rank_zero_only

from tassn.losses import LossTerms, check_weights, weighted_sum
from tassn.nets.pme import PME, SUBNETS, PMEOutput
from tassn.stages.checkpoints import STAGE_KEY, load_net_from_checkpoint
from tassn.stages.evaluation import EvaluationMetrics

#: how the learning rate moves during a run.
LRSchedule = Literal["constant", "cosine"]
#: batch entries that carry 3D ground truth; target-domain training never reads them.
LABELS_3D: tuple[str, ...] = ("kp3d", "mesh3d", "true_silhouettes")


def without_3d(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch minus its 3D labels: what a stage trained without 3D supervision is allowed to see."""
    return {k: v for k, v in batch.items() if k not in LABELS_3D}


class StageModule(LightningModule):
    """Base of the training stages: owns a :class:`~tassn.nets.PME` and trains the sub-networks it names.

    Args:
        net: the PME network (``class_path: tassn.nets.PME`` in configs).
        lr: Adam learning rate (paper: 1e-5).
        weight_decay: Adam weight decay.
        lr_schedule: ``constant``, or ``cosine`` decay to 0 over the run's optimiser steps (short CPU runs).
        train_modules: sub-networks that train (among ``flow, heatmap, mesh, pose``); the others are frozen.
            Default: the stage's own (:attr:`default_train_modules`).
        fixed_norm_stats: training sub-networks whose BatchNorm statistics stay as loaded (their BatchNorm layers
            normalise by the stored statistics and never update them). Default: the stage's own
            (:attr:`default_fixed_norm_stats`).
        init_from: a Lightning checkpoint of an earlier stage whose network weights start this one (loaded when
            fitting starts; a resumed run restores its own weights afterwards).
        init_from_stages: stages whose checkpoints ``init_from`` accepts (default: :attr:`default_init_stages`).
        pck2d_threshold: pixel distance (in the ``S×S`` crop) under which a 2D keypoint counts as correct.
    """

    #: name stored in every checkpoint this stage writes (:data:`~tassn.stages.checkpoints.STAGE_KEY`).
    stage: ClassVar[str] = "base"
    default_train_modules: ClassVar[tuple[str, ...]] = ("heatmap", "mesh", "pose")
    default_fixed_norm_stats: ClassVar[tuple[str, ...]] = ()
    default_init_stages: ClassVar[tuple[str, ...]] = ()
    #: whether the training step may read the batch's 3D labels (only the pre-training on the source domain).
    reads_3d_labels: ClassVar[bool] = False
    #: whether the training loss reads the mesh or the pose; without them the training pass skips both estimators.
    trains_on_3d_outputs: ClassVar[bool] = True

    def __init__(
        self,
        net: PME,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        lr_schedule: LRSchedule = "constant",
        train_modules: Sequence[str] | None = None,
        fixed_norm_stats: Sequence[str] | None = None,
        init_from: str | None = None,
        init_from_stages: Sequence[str] | None = None,
        pck2d_threshold: float = 5.0,
    ) -> None:
        super().__init__()
        # Under LightningCLI the hyper-parameters are the parsed config, ``net`` included as class_path/init_args,
        # which is what lets ``load_from_checkpoint`` rebuild the network; outside it ``net`` is an object.
        self.save_hyperparameters(ignore=[] if _given_hyperparameters.get() is not None else ["net", "renderer"])
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr}")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"{type(self).__name__}: lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        self.net = net
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.train_modules = tuple(self.default_train_modules if train_modules is None else train_modules)
        unknown = [m for m in self.train_modules if m not in SUBNETS]
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown train_modules {unknown}; expected names among {SUBNETS}")
        self.init_from = init_from
        self.init_from_stages = tuple(self.default_init_stages if init_from_stages is None else init_from_stages)
        self.net.unfreeze(*self.train_modules)
        self.net.freeze(*[m for m in SUBNETS if m not in self.train_modules])
        self.fixed_norm_stats = tuple(self.default_fixed_norm_stats if fixed_norm_stats is None else fixed_norm_stats)
        unknown = [m for m in self.fixed_norm_stats if m not in SUBNETS]
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown fixed_norm_stats {unknown}; expected names among {SUBNETS}"
            )
        self.net.fix_norm_stats(*self.fixed_norm_stats)
        self.val_metrics = EvaluationMetrics(pck2d_threshold)
        self.test_metrics = EvaluationMetrics(pck2d_threshold)
        self._initialised = False

    # ------------------------------------------------------------------------------------------ initialisation
    def init_sources(self) -> list[tuple[str, Sequence[str], Sequence[str] | None]]:
        """``(checkpoint, accepted stages, sub-networks or None for all)`` to load, in order, when fitting starts."""
        if self.init_from is None:
            return []
        return [(self.init_from, self.init_from_stages, None)]

    def initialise(self) -> None:
        """Load :meth:`init_sources` into ``net`` once (the checkpoint's stage and shapes are checked)."""
        if self._initialised:
            return
        for path, stages, modules in self.init_sources():
            load_net_from_checkpoint(self.net, path, stages, modules)
        self._initialised = True

    def setup(self, stage: str) -> None:
        # Before Lightning restores a resumed run, so its own weights win over the initialisation.
        if stage == "fit":
            self.initialise()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[STAGE_KEY] = self.stage

    # ---------------------------------------------------------------------------------------------------- loss
    def keep_loss_weights(self, **weights: float) -> None:
        """Keep the stage's loss weights as attributes (``lambda_h=…``), refusing negative ones."""
        check_weights(weights, owner=type(self).__name__)
        for name, weight in weights.items():
            setattr(self, name, weight)

    def loss_terms(self, batch: Mapping[str, Any]) -> LossTerms:
        """The stage's loss as ``{log name: (weight, term)}``: its weights and what feeds each term, a tensor or a
        zero-argument callable (not called when its weight is 0). ``batch`` has no 3D labels unless
        :attr:`reads_3d_labels`."""
        raise NotImplementedError(f"{type(self).__name__} must define loss_terms")

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        """The stage's equation on one batch: the weighted sum of :meth:`loss_terms`, each term logged."""
        if not self.reads_3d_labels:
            batch = without_3d(batch)
        losses = weighted_sum(self.loss_terms(batch))
        self.log_losses(losses, batch_size=batch["frames"].shape[0])
        return losses["loss"]

    # -------------------------------------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        params = [p for p in self.net.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self).__name__}: nothing to train; train_modules={self.train_modules}")
        optimizer = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_schedule == "constant":
            return optimizer
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def log_losses(self, losses: Mapping[str, torch.Tensor], batch_size: int) -> None:
        """Log ``{name: value}`` of a training step as ``train/name`` (the total on the progress bar)."""
        for name, value in losses.items():
            self.log(f"train/{name}", value.detach(), prog_bar=name == "loss", on_step=True, on_epoch=False,
                     batch_size=batch_size)

    def run_training(self, batch: Mapping[str, Any], reverse: bool = False, with_3d: bool | None = None) -> PMEOutput:
        """The clip through the network for a training step: with the PME's teacher-forced ``H_t`` (noised 2D
        labels of the previous frame) when ``net.teacher_forcing``, else with its fed-back predictions. ``with_3d``:
        run the mesh and pose estimators (default: :attr:`trains_on_3d_outputs`)."""
        teacher = self.net.teacher(batch["kp2d"], batch["visible"]) if self.net.teacher_forcing else None
        with_3d = self.trains_on_3d_outputs if with_3d is None else with_3d
        return self.net.run(batch["frames"], reverse=reverse, teacher=teacher, with_3d=with_3d)

    # -------------------------------------------------------------------------------------------- evaluation
    def forward(self, clip: torch.Tensor, reverse: bool = False) -> PMEOutput:
        return self.net.run(clip, reverse=reverse)

    def _evaluate(self, batch: Mapping[str, Any], metrics: EvaluationMetrics) -> PMEOutput:
        out = self.net.run(batch["frames"])
        metrics.update(out, batch)
        return out

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        out = self.net.run(batch["frames"])
        return {"pose": out.pose, "mesh": out.mesh, "heatmaps": out.heatmaps[:, :, -1]}

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        results = self._finish_evaluation("test", self.test_metrics)
        self._write_results(results, self.run_dir())

    def _finish_evaluation(self, split: str, metrics: EvaluationMetrics) -> dict[str, Any]:
        results = metrics.compute()  # synced across processes
        for name, value in results["scalars"].items():
            self.log(f"{split}/{name}", value, sync_dist=False)
        run_dir = self.run_dir()  # on every process: finding it is a collective call under DDP
        if results.get("curve") is not None and not self.trainer.sanity_checking:
            self._log_curve(split, results["curve"], run_dir)
        metrics.reset()
        return results

    @rank_zero_only
    def _log_curve(self, split: str, curve: dict[str, list[float]], run_dir: Path | None) -> None:
        from tassn.stages.evaluation import pck_curve_image, save_png

        title = f"{self.run_name()}: {type(self).__name__} ({self.variant()}), {split} split"
        if split == "val":
            title += f", epoch {self.current_epoch}"  # val curves follow training; a test curve has no epoch
        image = pck_curve_image(curve, title=title, dataset=self.dataset_name())
        if run_dir is not None:
            save_png(image, run_dir / f"pck_curve_{split}.png")
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=f"{split}/pck_curve", images=[image], step=self.global_step)

    def run_name(self) -> str:
        """The run's folder as a user names it (``synthetic-cpu/stage3``): the last two parts of its root dir."""
        trainer = getattr(self, "_trainer", None)
        if trainer is None:
            return "run"
        root = Path(trainer.default_root_dir).resolve()
        return "/".join(root.parts[-2:])

    def run_dir(self) -> Path | None:
        """This run's own folder (the first logger's ``version_<n>``), or None without a trainer or logger.

        Call it on every process: under DDP the trainer broadcasts the folder from rank 0."""
        trainer = getattr(self, "_trainer", None)
        if trainer is None or trainer.log_dir is None:
            return None
        return Path(trainer.log_dir)

    @rank_zero_only
    def _write_results(self, results: dict[str, Any], run_dir: Path | None) -> None:
        if run_dir is None:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "stage": self.stage,
            "variant": self.variant(),
            "dataset": self.dataset_name(),
            "checkpoint": self.trainer.ckpt_path,
            "metrics": {k: float(v) for k, v in results["scalars"].items()},
            "pck_curve": results.get("curve"),
            "pck_curve_png": str(run_dir / "pck_curve_test.png") if results.get("curve") else None,
        }
        (run_dir / "test_results.json").write_text(json.dumps(payload, indent=2) + "\n")

    def dataset_name(self) -> str | None:
        """``synthetic``, ``stb``, ``mhp``, … from the trainer's datamodule class, or None without one."""
        trainer = getattr(self, "_trainer", None)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        return type(datamodule).__name__.removesuffix("DataModule").lower() if datamodule is not None else None

    def variant(self) -> str:
        """A short name of this configuration for result tables."""
        return self.stage
