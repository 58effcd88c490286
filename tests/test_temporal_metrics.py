"""ACCEL error and jitter over whole videos: hand-computed sequences, stitching of clips, DDP, evaluation wiring."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tassn.hand.normalize import normalize_3d
from tassn.metrics import TEMPORAL_KEYS, TemporalMetrics3D, consecutive_centres, video_key
from tassn.nets.pme import PMEOutput
from tassn.stages.evaluation import EvaluationMetrics


def static_hand(seed: int = 0) -> torch.Tensor:
    """One hand ``21×3`` in mm, 500 mm in front of the camera."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(21, 3, generator=g, dtype=torch.float64) * 30 + torch.tensor([0.0, 0.0, 500.0])


def numpy_accel(pred_mm: np.ndarray, gt_mm: np.ndarray) -> dict[str, float]:
    """The reference: second differences of one whole, gap-free video ``F×21×3`` (already aligned, in mm)."""
    a_pred = pred_mm[2:] - 2 * pred_mm[1:-1] + pred_mm[:-2]
    a_gt = gt_mm[2:] - 2 * gt_mm[1:-1] + gt_mm[:-2]
    return {
        "accel_mm": float(np.linalg.norm(a_pred - a_gt, axis=-1).mean()),
        "jitter_mm": float(np.linalg.norm(a_pred, axis=-1).mean()),
        "jitter_gt_mm": float(np.linalg.norm(a_gt, axis=-1).mean()),
    }


def random_video(frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A moving ground truth and a noisy prediction of it, both ``F×21×3`` in mm."""
    g = torch.Generator().manual_seed(seed)
    gt = static_hand(seed) + torch.cumsum(torch.randn(frames, 1, 3, generator=g, dtype=torch.float64) * 5, 0)
    gt = gt + torch.randn(frames, 21, 3, generator=g, dtype=torch.float64)
    pred = gt + torch.randn(frames, 21, 3, generator=g, dtype=torch.float64) * 4
    pred[:, 0] = gt[:, 0]  # root on the ground truth's, so "mm" input needs no alignment for the reference
    return pred, gt


def values(metric: TemporalMetrics3D) -> dict[str, float]:
    result = metric.compute()
    return {k: float(result[k]) for k in TEMPORAL_KEYS}


def test_constant_velocity_scores_zero_through_the_epe_alignment() -> None:
    frames = 7
    velocity = torch.tensor([3.0, -2.0, 1.5], dtype=torch.float64)
    gt = static_hand() + velocity * torch.arange(frames, dtype=torch.float64)[:, None, None]
    pose, _, _ = normalize_3d(static_hand(1))  # a different, fixed hand shape: wrong, but not accelerating
    metric = TemporalMetrics3D()
    metric.update(pose.expand(frames, 21, 3).float(), gt.float(), ["v"] * frames, torch.arange(frames))
    result = metric.compute()
    assert int(result["count"]) == (frames - 2) * 21
    assert float(result["accel_mm"]) == pytest.approx(0.0, abs=1e-3)
    assert float(result["jitter_mm"]) == pytest.approx(0.0, abs=1e-3)
    assert float(result["jitter_gt_mm"]) == pytest.approx(0.0, abs=1e-3)


def test_alternating_joints_score_four_times_the_amplitude() -> None:
    # 20 joints (all but the root, which alignment pins to the ground truth) jump ±A in x every frame around a
    # still hand: a_t = A·((−1)^{t+1} − 2(−1)^t + (−1)^{t−1}) = ∓4A, so ACCEL = jitter = 4A·20/21.
    frames, amplitude = 8, 2.5
    gt = static_hand().expand(frames, 21, 3).clone()
    pred = gt.clone()
    pred[:, 1:, 0] += amplitude * torch.tensor([(-1.0) ** t for t in range(frames)], dtype=torch.float64)[:, None]
    metric = TemporalMetrics3D(input_space="mm")
    metric.update(pred, gt, ["v"] * frames, torch.arange(frames))
    got = values(metric)
    assert got["accel_mm"] == pytest.approx(4 * amplitude * 20 / 21, rel=1e-9)
    assert got["jitter_mm"] == pytest.approx(4 * amplitude * 20 / 21, rel=1e-9)
    assert got["jitter_gt_mm"] == pytest.approx(0.0, abs=1e-9)


def test_circular_motion_has_its_known_acceleration() -> None:
    # the whole hand on a circle of radius R, ω rad/frame: |a| = 2R(1 − cos ω) for every frame and joint.
    frames, radius, omega = 12, 40.0, 0.3
    t = torch.arange(frames, dtype=torch.float64)
    shift = torch.stack([radius * torch.cos(omega * t), radius * torch.sin(omega * t), torch.zeros(frames)], -1)
    gt = static_hand() + shift[:, None, :]
    pred_norm, _, _ = normalize_3d(gt)  # a perfect prediction
    metric = TemporalMetrics3D()
    metric.update(pred_norm, gt, ["v"] * frames, t.long())
    got = values(metric)
    expected = 2 * radius * (1 - math.cos(omega))
    assert got["jitter_gt_mm"] == pytest.approx(expected, rel=1e-9)
    assert got["jitter_mm"] == pytest.approx(expected, rel=1e-6)
    assert got["accel_mm"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("clip_len", "stride"), [(3, 3), (4, 2), (5, 1)])
def test_clips_in_any_order_stitch_to_the_whole_video(clip_len: int, stride: int) -> None:
    frames = 11
    pred, gt = random_video(frames, seed=3)
    starts = list(range(0, frames - clip_len + 1, stride))
    if starts[-1] + clip_len < frames:  # cover the tail too
        starts.append(frames - clip_len)
    metric = TemporalMetrics3D(input_space="mm")
    for start in reversed(starts):  # served out of order, overlapping frames predicted identically
        idx = torch.arange(start, start + clip_len)
        metric.update(pred[idx], gt[idx], ["video/a"] * clip_len, idx)
    got = values(metric)
    expected = numpy_accel(pred.numpy(), gt.numpy())
    for key in TEMPORAL_KEYS:
        assert got[key] == pytest.approx(expected[key], rel=1e-9), key


def test_videos_do_not_mix_and_a_missing_frame_breaks_the_chain() -> None:
    pred_a, gt_a = random_video(6, seed=1)
    pred_b, gt_b = random_video(9, seed=2)
    metric = TemporalMetrics3D(input_space="mm")
    # video b lacks its frame 4 (e.g. an unreadable clip): its pieces 0–3 and 5–8 count separately
    keep = torch.tensor([0, 1, 2, 3, 5, 6, 7, 8])
    names = ["a"] * 6 + ["b"] * 8
    metric.update(torch.cat([pred_a, pred_b[keep]]), torch.cat([gt_a, gt_b[keep]]), names,
                  torch.cat([torch.arange(6), keep]))
    pieces = [(pred_a, gt_a), (pred_b[:4], gt_b[:4]), (pred_b[5:], gt_b[5:])]
    a_pred = np.concatenate([(p[2:] - 2 * p[1:-1] + p[:-2]).numpy() for p, _ in pieces])
    a_gt = np.concatenate([(g[2:] - 2 * g[1:-1] + g[:-2]).numpy() for _, g in pieces])
    result = metric.compute()
    assert int(result["count"]) == (4 + 2 + 2) * 21
    assert float(result["accel_mm"]) == pytest.approx(np.linalg.norm(a_pred - a_gt, axis=-1).mean(), rel=1e-9)


def test_frame_step_and_visibility() -> None:
    # every 2nd frame served (frame_step=2): the step is 2, so the chain holds; an invisible joint is left out
    index = torch.tensor([10, 12, 14, 16])
    assert consecutive_centres(torch.zeros(4, dtype=torch.long), index).tolist() == [1, 2]
    assert consecutive_centres(torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 3, 4])).tolist() == []
    pred, gt = random_video(4, seed=5)
    visible = torch.ones(4, 21)
    visible[1, 7] = 0  # joint 7 is hidden in the frame that both triples use
    metric = TemporalMetrics3D(input_space="mm")
    metric.update(pred, gt, ["v"] * 4, index, visible)
    assert int(metric.compute()["count"]) == 2 * 21 - 2  # joint 7 drops out of both triples


def test_bad_input_is_named() -> None:
    metric = TemporalMetrics3D()
    with pytest.raises(ValueError, match="one video and one frame index per frame"):
        metric.update(torch.zeros(3, 21, 3), torch.ones(3, 21, 3), ["v"] * 2, torch.arange(3))
    with pytest.raises(ValueError, match="N×21×3"):
        metric.update(torch.zeros(3, 21, 2), torch.ones(3, 21, 2), ["v"] * 3, torch.arange(3))
    assert video_key("stb/B1Counting") == video_key("stb/B1Counting") != video_key("stb/B1Random")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        pred, gt = random_video(12, seed=9)
        metric = TemporalMetrics3D(input_space="mm")
        for start in range(rank * 3, 12, 3 * world):  # clips of 3 frames dealt to the ranks in turn
            idx = torch.arange(start, start + 3)
            metric.update(pred[idx], gt[idx], ["v"] * 3, idx)
        torch.save(values(metric), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_sync_stitches_clips_from_every_process(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    pred, gt = random_video(12, seed=9)
    expected = numpy_accel(pred.numpy(), gt.numpy())
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for key in TEMPORAL_KEYS:
            assert got[key] == pytest.approx(expected[key], rel=1e-9), (rank, key)


def test_evaluation_metrics_report_accel_beside_epe() -> None:
    frames, clip = 6, 3
    pred_mm, gt = random_video(frames, seed=4)
    pose, _, _ = normalize_3d(pred_mm, gt)
    metrics = EvaluationMetrics()
    for start in (0, clip):  # one batch per clip, as a ClipDataset serves them
        sl = slice(start, start + clip)
        out = PMEOutput(heatmaps=torch.rand(1, clip, 1, 21, 4, 4), features=torch.zeros(1), mesh=torch.zeros(1),
                        pose=pose[None, sl].float(), flow=torch.zeros(1))
        batch = {"frames": torch.zeros(1, clip, 3, 16, 16), "kp2d": torch.zeros(1, clip, 21, 2),
                 "visible": torch.ones(1, clip, 21), "kp3d": gt[None, sl].float(), "video": ["vid"],
                 "frame_index": torch.arange(start, start + clip)[None]}
        metrics.update(out, batch)
    scalars = metrics.compute()["scalars"]
    expected = numpy_accel(pred_mm.numpy(), gt.numpy())
    for key in TEMPORAL_KEYS:
        assert float(scalars[key]) == pytest.approx(expected[key], rel=1e-4), key
    assert "epe_mm" in scalars
    metrics.reset()
    assert not metrics.temporal.has_data()
