"""Test inputs built by the tests themselves: a short video of a moving blob, and tiny random PME checkpoints."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning
import numpy as np
import torch

from tiny_pme import TINY_PME, sphere_template  # noqa: F401  (re-exported to the predict tests)

WIDTH, HEIGHT, FRAMES, FPS = 96, 80, 8, 10.0


def blob_centre(t: int) -> tuple[float, float]:
    """Where the blob is in frame ``t`` (moves right and down by 3 px a frame)."""
    return 30.0 + 3.0 * t, 32.0 + 2.0 * t


def blob_frames(n: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """``n×H×W×3`` RGB uint8 frames with a skin-coloured disc of radius 12 at :func:`blob_centre`."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    frames[..., 2] = 40
    for t in range(n):
        cx, cy = blob_centre(t)
        cv2.circle(frames[t], (round(cx), round(cy)), 12, (230, 180, 150), -1)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames.shape[2:0:-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path




#: A tiny PME (64 px crops, 16 px heatmaps) on a sphere "hand" template: seconds on a CPU.
TINY_NET: dict = TINY_PME


def stage_checkpoint(path: Path, net_config: dict, stage: str = "stage3", seed: int = 0,
                     record_config: bool = True, training_data: dict | None = None) -> Path:
    """A checkpoint laid out as ``tassn fit`` (LightningCLI + a stage module) writes it, for a random PME;
    ``training_data``: the data module's recorded hyper-parameters (crop margin, heatmap σ)."""
    from tassn.nets.pme import PME

    torch.manual_seed(seed)
    net = PME(**net_config)
    with torch.no_grad():  # heatmap heads of a trained network's scale (a fresh PME starts them near zero)
        for head in net.heatmap.hourglass.to_heatmaps:
            head.weight.normal_(0.0, 0.2)
    hparams = {"_class_path": f"tassn.stages.{stage}.{stage.capitalize()}", "lr": 1e-5,
               "_instantiator": "lightning.pytorch.cli.instantiate_module"}
    if record_config:
        hparams["net"] = {"class_path": "tassn.nets.PME", "init_args": dict(net_config)}
    torch.save({
        "epoch": 0, "global_step": 0, "pytorch-lightning_version": lightning.__version__,
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": hparams, "tassn_stage": stage,
        **({"datamodule_hyper_parameters": training_data} if training_data is not None else {}),
    }, path)
    return path
