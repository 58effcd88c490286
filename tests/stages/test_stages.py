"""The stage modules: what trains, what each step reads, stage hand-over through checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from stage_helpers import first_batch

from tassn.stages.checkpoints import STAGE_KEY, CheckpointMismatchError


def stage_checkpoint(module, path: Path) -> Path:
    """Write ``module`` as a Lightning-style checkpoint (its state dict and stage name)."""
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def poisoned(batch: dict) -> dict:
    """The batch plus NaN 3D labels: a step that reads them gives a NaN loss."""
    b, t = batch["frames"].shape[:2]
    out = dict(batch)
    out["kp3d"] = torch.full((b, t, 21, 3), math.nan)
    out["mesh3d"] = torch.full((b, t, 1000, 3), math.nan)
    out["true_silhouettes"] = torch.full_like(batch["silhouettes"], math.nan)
    return out


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def one_step(stage, batch: dict) -> torch.Tensor:
    """One optimiser step outside a Trainer (``self.log`` is a no-op without one)."""
    optimiser = stage.configure_optimizers()
    stage.train()
    loss = stage.training_step(batch, 0)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss.detach()


@pytest.mark.parametrize("stage_name", ["Stage1", "Stage2", "Stage3"])
def test_target_stages_never_read_3d_labels(stage_name, make_net, make_data) -> None:
    import tassn.stages as stages

    batch = first_batch(make_data("target"))
    assert "kp3d" not in batch  # the datamodule layer: target training batches carry no 3D
    results = []
    for b in (batch, poisoned(batch)):
        torch.manual_seed(0)
        stage = getattr(stages, stage_name)(make_net(), lr=1e-3)
        loss = one_step(stage, b)
        results.append((loss, params(stage.net)))
    (clean, clean_params), (poison, poison_params) = results
    assert torch.isfinite(poison) and clean > 0
    assert torch.equal(clean, poison)
    assert all(torch.equal(clean_params[k], poison_params[k]) for k in clean_params)


def test_stage1_trains_the_heatmaps_only(make_net, make_data) -> None:
    from tassn.stages import Stage1

    stage = Stage1(make_net(), lr=1e-2)
    assert stage.net.frozen == ("flow", "mesh", "pose")
    before = params(stage.net)
    one_step(stage, first_batch(make_data("target")))
    after = params(stage.net)
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"heatmap"}
    # frozen sub-networks keep their BatchNorm statistics in training mode
    assert not stage.net.mesh.training and stage.net.heatmap.training


def test_stage1_training_pass_skips_the_frozen_mesh_and_pose(make_net, make_data) -> None:
    """L_h reads the heatmaps alone: the training pass does not run the 3D estimators (half of a step's cost)
    and trains exactly as a pass that runs them."""
    from tassn.stages import Stage1

    batch = first_batch(make_data("target"))
    results = []
    for with_3d in (False, True):
        torch.manual_seed(0)
        stage = Stage1(make_net(), lr=1e-2)
        if with_3d:  # the pass as it was: every estimator run
            stage.trains_on_3d_outputs = True
        calls = []
        stage.net.mesh.register_forward_hook(lambda *_, c=calls: c.append("mesh"))
        loss = one_step(stage, batch)
        assert bool(calls) == with_3d
        results.append((loss, params(stage.net)))
    (skip_loss, skip_params), (full_loss, full_params) = results
    torch.testing.assert_close(skip_loss, full_loss)
    for k in skip_params:
        torch.testing.assert_close(skip_params[k], full_params[k], msg=k)


def test_pretrain_fits_3d_and_refuses_batches_without_it(make_net, make_data) -> None:
    from tassn.stages import Pretrain

    stage = Pretrain(make_net(), lr=1e-3)
    batch = first_batch(make_data("source"))
    assert {"kp3d", "mesh3d"} <= set(batch)
    losses = [float(one_step(stage, batch)) for _ in range(4)]
    assert losses[-1] < losses[0]
    with pytest.raises(KeyError, match="serve_3d_in_train"):
        stage.training_step({k: v for k, v in batch.items() if k != "kp3d"}, 0)


def test_pretrain_lifts_every_nth_step_and_trains_the_heatmaps_on_every_step(make_net, make_data) -> None:
    from tassn.stages import Pretrain

    stage = Pretrain(make_net(), lr=1e-3, lifting_every=2)
    batch = first_batch(make_data("source"))
    logged: dict[str, torch.Tensor] = {}
    stage.log_losses = lambda losses, batch_size: logged.update(losses)  # type: ignore[method-assign]
    for step, lifts in enumerate((True, False, True, False)):
        before = params(stage.net)
        logged.clear()
        one_step(stage, batch)
        after = params(stage.net)
        moved = {k for k in after if not torch.equal(after[k], before[k])}
        assert any(k.startswith("heatmap.") for k in moved), step  # L_h on every step
        assert any(k.startswith(("mesh.", "pose.")) for k in moved) == lifts, step
        assert ({"loss_pose3d", "loss_mesh3d"} <= set(logged)) == lifts, step
    with pytest.raises(ValueError, match="lifting_every"):
        Pretrain(make_net(), lifting_every=0)


def test_stage3_losses_and_variants(make_net, make_data) -> None:
    from tassn.stages import Stage3

    batch = first_batch(make_data("target"))
    full = Stage3(make_net(), lr=1e-3)
    logged: dict[str, torch.Tensor] = {}
    full.log_losses = lambda losses, batch_size: logged.update(losses)  # type: ignore[method-assign]
    loss = full.training_step(batch, 0)
    assert set(logged) == {"loss", "loss_h", "loss_m", "loss_c_pose", "loss_c_mesh"}
    expected = 0.1 * logged["loss_m"] + logged["loss_h"] + 10 * logged["loss_c_pose"] + 10 * logged["loss_c_mesh"]
    assert torch.allclose(loss, expected)
    # forward and reversed runs differ (frame 0 has no predecessor forward, frame T-1 backward): L_c > 0
    assert logged["loss_c_pose"] > 0 and logged["loss_c_mesh"] > 0
    assert full.variant() == "TASSN"
    assert Stage3(make_net(), lambda_c_pose=0, lambda_c_mesh=0).variant() == "TASSN w/o L_c"
    assert Stage3(make_net(), lambda_c_mesh=0).variant() == "TASSN w/o L_c^m"


def test_stage2_starts_from_stage1_heatmaps_and_pretrained_mesh(make_net, tmp_path) -> None:
    from tassn.stages import Pretrain, Stage1, Stage2

    torch.manual_seed(1)
    s1 = Stage1(make_net(), lr=1e-3)
    for p in s1.net.parameters():
        p.data.normal_()
    pre = Pretrain(make_net(), lr=1e-3)
    for p in pre.net.parameters():
        p.data.uniform_()
    s1_path = stage_checkpoint(s1, tmp_path / "s1.ckpt")
    pre_path = stage_checkpoint(pre, tmp_path / "pre.ckpt")
    assert torch.load(s1_path, weights_only=True)[STAGE_KEY] == "stage1"

    s2 = Stage2(make_net(), init_heatmap_from=str(s1_path), init_mesh_from=str(pre_path))
    s2.setup("fit")
    for name, source in (("heatmap", s1), ("mesh", pre), ("pose", pre)):
        mine, theirs = getattr(s2.net, name).state_dict(), getattr(source.net, name).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), name

    # the checkpoints swapped: each is refused with its stage named
    with pytest.raises(CheckpointMismatchError, match=r"stage 'pretrain'.*\['stage1'\]"):
        Stage2(make_net(), init_heatmap_from=str(pre_path)).setup("fit")
    with pytest.raises(CheckpointMismatchError, match=r"stage 'stage1'.*\['pretrain'\]"):
        Stage2(make_net(), init_mesh_from=str(s1_path)).setup("fit")


def test_init_from_lists_shape_mismatches_and_missing_files(make_net, tmp_path) -> None:
    from tassn.stages import Stage2, Stage3

    s2_path = stage_checkpoint(Stage2(make_net()), tmp_path / "s2.ckpt")
    wider = Stage3(make_net(hourglass_features=16), init_from=str(s2_path))
    with pytest.raises(CheckpointMismatchError) as err:
        wider.setup("fit")
    message = str(err.value)
    assert "shapes differ" in message and "heatmap." in message and "(8," in message and "(16," in message

    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        Stage3(make_net(), init_from=str(tmp_path / "nowhere.ckpt")).setup("fit")
    # a checkpoint from the right stage loads; a validate/test run does not initialise
    Stage3(make_net(), init_from=str(s2_path)).setup("fit")
    Stage3(make_net(), init_from=str(tmp_path / "nowhere.ckpt")).setup("validate")


def test_unknown_sub_network_names_are_refused(make_net) -> None:
    from tassn.stages import Stage3

    with pytest.raises(ValueError, match="unknown train_modules.*'hands'"):
        Stage3(make_net(), train_modules=["heatmap", "hands"])


@pytest.mark.parametrize(("stage_name", "fixed"), [("Stage2", ("mesh",)), ("Stage3", ("heatmap", "mesh"))])
def test_silhouette_stages_train_the_mesh_with_its_statistics_fixed(stage_name, fixed, make_net, make_data) -> None:
    import tassn.stages as stages

    stage = getattr(stages, stage_name)(make_net(), lr=1e-3)
    assert stage.fixed_norm_stats == fixed and stage.net.fixed_norm_stats == fixed
    norms = [m for m in stage.net.mesh.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    stats = [m.running_var.clone() for m in norms]
    weights = params(stage.net.mesh)
    one_step(stage, first_batch(make_data("target")))
    assert all(torch.equal(m.running_var, s) for m, s in zip(norms, stats, strict=True))
    assert any(not torch.equal(v, weights[k]) for k, v in stage.net.mesh.named_parameters())

    free = getattr(stages, stage_name)(make_net(), lr=1e-3, fixed_norm_stats=[])
    stats = [m.running_var.clone() for m in free.net.mesh.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    one_step(free, first_batch(make_data("target")))
    moved = [m.running_var for m in free.net.mesh.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert not all(torch.equal(m, s) for m, s in zip(moved, stats, strict=True))
    with pytest.raises(ValueError, match="unknown fixed_norm_stats.*'decoder'"):
        getattr(stages, stage_name)(make_net(), fixed_norm_stats=["decoder"])
