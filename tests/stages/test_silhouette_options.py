"""The silhouette stages' cost options: L_m at a reduced ``silhouette_size``, one renderer call for both directions and
stage 3's ``batch_directions`` (one PME call over the clip and its reversed copy)."""

from __future__ import annotations

import pytest
import torch
from stage_helpers import first_batch


def test_reduced_silhouette_size_shapes_targets_and_gradient(make_net, make_data) -> None:
    from tassn.stages import Stage2

    batch = first_batch(make_data("target"))
    b, t, _, s, _ = batch["silhouettes"].shape
    # an untrained mesh estimator has no statistics worth keeping: let its BatchNorm normalise by the batch
    full, half = Stage2(make_net()), Stage2(make_net(), silhouette_size=s // 2, fixed_norm_stats=[])
    assert half.renderer.image_size == s // 2 and full.renderer.image_size == s
    target = half.grabcut_silhouettes(batch)
    assert target.shape == (b, t, 1, s // 2, s // 2)
    # area downsampling: each target pixel is the mean of its 2×2 block, so the silhouette's area is kept
    torch.testing.assert_close(target.sum() * 4, batch["silhouettes"].float().sum())
    torch.testing.assert_close(target[0, 0, 0, 0, 0], batch["silhouettes"][0, 0, 0, :2, :2].float().mean())

    out = half.run_training(batch)
    mesh = out.mesh.detach().requires_grad_(True)
    rendered = half.render_silhouettes(out._replace(mesh=mesh), batch=batch)
    assert rendered.shape == (b, t, 1, s // 2, s // 2)
    ((rendered - target) ** 2).mean().backward()
    assert mesh.grad is not None and mesh.grad.abs().sum() > 0


def test_reduced_silhouette_shows_the_same_region_as_the_area_downsampled_crop() -> None:
    """A hard-edged rectangle over crop pixels 11…50 × 21…40 (64² crop) drawn at 32²: the silhouette pixels it
    half-covers sit exactly on its edges (alpha ½, as the area-downsampled crop silhouette), the rest are 0 or 1."""
    from tassn.render.soft_rasterizer import soft_silhouette
    from tassn.stages.silhouette import to_silhouette_pixels

    v = torch.tensor([[10.5, 20.5, 1.0], [50.5, 20.5, 1.0], [50.5, 40.5, 1.0], [10.5, 40.5, 1.0]])[None]
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    full = soft_silhouette(v, f, 64, sigma=1e-9)
    small = soft_silhouette(to_silhouette_pixels(v, 2), f, 32, sigma=1e-9)
    pooled = torch.nn.functional.avg_pool2d(full, 2)
    assert full.sum().item() == pytest.approx(800.0, abs=1e-3)
    assert small.sum().item() == pytest.approx(200.0, abs=1.0)
    # only the corners and the shared diagonal's pixel centres blend differently (1 − (1 − ½)² = ¾ on the diagonal);
    # without the half-pixel shift every edge pixel (~60) would be 0 or 1 instead of ½
    differ = (pooled - small).abs() > 1e-4
    assert int(differ.sum()) <= 16
    assert int(((pooled - soft_silhouette(v * torch.tensor([0.5, 0.5, 1.0]), f, 32, sigma=1e-9)).abs() > 1e-4).sum()) > 40
    assert torch.equal(to_silhouette_pixels(v, 1), v)


def test_silhouette_size_must_divide_the_crop_and_match_the_renderer(make_net) -> None:
    from tassn.render import SilhouetteRenderer
    from tassn.stages import Stage3

    with pytest.raises(ValueError, match="divisor of the crop size 32"):
        Stage3(make_net(), silhouette_size=12)
    with pytest.raises(ValueError, match="image_size 16"):
        Stage3(make_net(), silhouette_size=16, renderer=SilhouetteRenderer(32, backend="soft"))
    assert Stage3(make_net(), silhouette_size=16, renderer=SilhouetteRenderer(16, backend="soft")).silhouette_size == 16


def test_one_render_call_equals_one_per_direction(make_net, make_data) -> None:
    from tassn.stages import Stage3

    batch = first_batch(make_data("target"))
    stage = Stage3(make_net()).eval()
    with torch.no_grad():
        forward, reversed_ = stage.run_both_directions(batch)
        together = stage.render_silhouettes(forward, reversed_, batch=batch)
        apart = torch.cat([stage.render_silhouettes(forward, batch=batch),
                           stage.render_silhouettes(reversed_, batch=batch)])
    assert together.sum() > 1.0
    torch.testing.assert_close(together, apart, atol=1e-6, rtol=0)


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_batched_directions_equal_two_passes_in_eval_mode(make_net, make_data, teacher_forcing: bool) -> None:
    from tassn.stages import Stage3

    batch = first_batch(make_data("target"))
    net = make_net(teacher_forcing=teacher_forcing, teacher_jitter=0.0, teacher_drop=0.0)
    two, one = Stage3(net).eval(), Stage3(net, batch_directions=True).eval()
    with torch.no_grad():
        a_fwd, a_rev = two.run_both_directions(batch)
        b_fwd, b_rev = one.run_both_directions(batch)
        loss_two, loss_one = two.loss_terms(batch), one.loss_terms(batch)
        values_two, values_one = (
            {name: value() if callable(value) else value for name, (_, value) in terms.items()}
            for terms in (loss_two, loss_one)
        )
    for a, b in ((a_fwd, b_fwd), (a_rev, b_rev)):
        for name in ("heatmaps", "mesh", "pose", "flow"):
            torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=1e-6, rtol=1e-4)
    assert (a_rev.heatmaps[:, 0] - a_rev.heatmaps[:, -1]).abs().max() > 1e-5  # frames differ: a wrong order fails
    assert set(values_one) == set(values_two) and "loss_m" in values_one
    for name, value in values_two.items():
        torch.testing.assert_close(values_one[name], value, atol=1e-5, rtol=1e-4)


def test_stage3_consistency_keeps_scale_changes_the_gradient_not_the_value(make_net, make_data) -> None:
    from tassn.stages import Stage3

    batch = first_batch(make_data("target"))
    net = make_net(teacher_jitter=0.0, teacher_drop=0.0)
    values, grads = [], []
    for keep in (False, True):
        stage = Stage3(net, lambda_s=0.0, lambda_h=0.0, consistency_keeps_scale=keep).eval()
        terms = stage.loss_terms(batch)
        value = terms["loss_c_mesh"][1]
        value = value() if callable(value) else value
        values.append(value)
        grads.append(torch.autograd.grad(value, list(net.mesh.parameters()), allow_unused=True))
    torch.testing.assert_close(values[1], values[0])
    assert values[0] > 0
    differ = [(a - b).abs().max() for a, b in zip(*grads, strict=True) if a is not None and b is not None]
    assert differ and max(differ) > 1e-6 * max(float(g.abs().max()) for g in grads[0] if g is not None)
