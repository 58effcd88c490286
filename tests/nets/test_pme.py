"""PME: shapes, gradients, the reversed temporal measurement, freezing, the first-frame rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tassn.nets import PME, PMEOutput
from tiny_pme import TINY_PME

TINY = {key: value for key, value in TINY_PME.items() if key != "flow"}


class CountingZeroFlow(nn.Module):
    """Zero flow that counts the pairs it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs = 0

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.pairs += a.shape[0]
        return a.new_zeros(a.shape[0], 2, *a.shape[-2:])


class DifferenceFlow(nn.Module):
    """A parameter-free, non-zero, order-sensitive 'flow': 10 × (b − a) on the first two channels."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 10.0 * (b - a)[:, :2]


class ConvFlow(nn.Module):
    """A tiny learnable flow network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(6, 2, 3, padding=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([a, b], dim=1))


@pytest.fixture
def make_pme(sphere_template, tmp_path):
    """PME factory on the sphere template, graph cached in tmp_path, with a chosen flow module."""

    def make(flow: nn.Module | None = None, **overrides) -> PME:
        flow_module = CountingZeroFlow() if flow is None else flow
        torch.manual_seed(0)
        return PME(**{**TINY, "graph_cache_dir": str(tmp_path), "template": sphere_template,
                      "flow_module": flow_module, **overrides})

    return make


def _clip(b: int = 2, t: int = 3) -> torch.Tensor:
    return torch.rand(b, t, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_run_and_step_shapes(make_pme, sphere_template) -> None:
    net = make_pme()
    out = net.run(_clip())
    assert isinstance(out, PMEOutput)
    assert out.heatmaps.shape == (2, 3, 2, 21, 16, 16)
    assert out.features.shape == (2, 3, 16, 16, 16)
    assert out.mesh.shape == (2, 3, 162, 3)
    assert out.pose.shape == (2, 3, 21, 3)
    assert out.flow.shape == (2, 3, 2, 64, 64)
    one = net.step(_clip()[:, 0], _clip()[:, 1], out.heatmaps[:, 0, -1])
    assert one.mesh.shape == (2, 162, 3) and one.heatmaps.shape == (2, 2, 21, 16, 16)
    assert torch.equal(net.template_faces, torch.as_tensor(sphere_template.faces))
    assert net.template_faces.dtype == torch.long and net.num_vertices == 162
    keys = net.state_dict().keys()
    assert not any("template_faces" in k or "lap_" in k or "perm" in k for k in keys)  # derived, not stored


def test_gradients_reach_every_trainable_parameter(make_pme) -> None:
    net = make_pme()
    out = net.run(_clip(t=2))
    (out.pose.square().mean() + out.mesh.square().mean()).backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert missing == []
    assert sum(p.numel() for p in net.parameters()) > 10_000


def test_trainable_flow_gets_gradients_frozen_flow_does_not(make_pme) -> None:
    net = make_pme(ConvFlow(), flow_trainable=True)
    out = net.run(_clip(t=2))
    out.pose.sum().backward()
    assert net.flow.conv.weight.grad is not None and net.flow.conv.weight.grad.any()

    frozen = make_pme(ConvFlow(), flow_trainable=False)
    assert frozen.frozen == ("flow",) and not frozen.flow.conv.weight.requires_grad
    out = frozen.run(_clip(t=2))
    assert not out.flow.requires_grad  # run without autograd
    out.pose.sum().backward()
    assert frozen.flow.conv.weight.grad is None


def test_reverse_equals_flipped_forward(make_pme) -> None:
    net = make_pme(DifferenceFlow()).eval()
    clip = _clip()
    with torch.no_grad():
        rev = net.run(clip, reverse=True)
        fwd_of_flipped = net.run(clip.flip(1))
        fwd = net.run(clip)
    for a, b in zip(rev, fwd_of_flipped, strict=True):
        assert torch.equal(a, b.flip(1))
    assert not torch.allclose(rev.pose, fwd.pose)  # the order matters
    # reverse flow at frame t comes from frame t+1; the last frame starts the backward pass
    torch.testing.assert_close(rev.flow[:, 0], DifferenceFlow()(clip[:, 1], clip[:, 0]))
    assert not rev.flow[:, -1].any()


def test_a_pass_without_3d_skips_the_mesh_and_pose_and_keeps_the_heatmaps(make_pme) -> None:
    net = make_pme(DifferenceFlow()).eval()
    clip = _clip(b=2, t=3)
    calls = []
    net.mesh.register_forward_hook(lambda *_: calls.append("mesh"))
    net.pose.register_forward_hook(lambda *_: calls.append("pose"))
    with torch.no_grad():
        full = net.run(clip, reverse=True)
        assert calls
        calls.clear()
        heat_only = net.run(clip, reverse=True, with_3d=False)
    assert not calls and heat_only.mesh is None and heat_only.pose is None
    for name in ("heatmaps", "features", "flow"):
        assert torch.equal(getattr(full, name), getattr(heat_only, name)), name


def test_first_frame_rule_and_recurrence(make_pme) -> None:
    flow = CountingZeroFlow()
    net = make_pme(flow, feedback_min_peak=0.0).eval()  # every joint fed back, however faint
    clip = _clip(b=2, t=3)
    with torch.no_grad():
        out = net.run(clip)
        assert flow.pairs == 2 * 2  # T−1 pairs per sample in one call; never the first frame
        first = net.step(None, clip[:, 0])
        second = net.step(clip[:, 0], clip[:, 1], net.feedback(first.heatmaps[:, -1]))
    assert not out.flow[:, 0].any()
    torch.testing.assert_close(out.pose[:, 0], first.pose, rtol=0, atol=0)
    torch.testing.assert_close(out.mesh[:, 1], second.mesh, rtol=1e-6, atol=1e-6)
    zero_h = net.step(clip[:, 0], clip[:, 1], torch.zeros(2, 21, 16, 16))
    assert (zero_h.pose - second.pose).abs().max() > 1e-6  # H_t really feeds the next frame


def test_heatmap_feedback_gradient_only_when_predicted(make_pme) -> None:
    for mode, reaches in (("predicted", True), ("detached", False), ("redrawn", False)):
        net = make_pme(heatmap_feedback=mode)
        clip = _clip(b=2, t=2).requires_grad_(True)
        out = net.run(clip)
        out.pose[:, 1].sum().backward()  # zero flow: frame 0 reaches frame 1 only through H
        assert bool(clip.grad[:, 0].any()) is reaches, mode


def test_redrawn_feedback_is_unit_gaussians_at_the_peaks(make_pme) -> None:
    from tassn.heatmaps import gaussian_heatmaps

    net = make_pme(heatmap_feedback="redrawn", feedback_sigma=1.5, feedback_min_peak=0.3)
    kp = torch.tensor([[[3.25, 7.5], [10.0, 2.0]]])
    maps = 0.8 * gaussian_heatmaps(kp, 16, 1.5) + 0.01  # a scaled peak on a floor: the peak is what counts
    maps[0, 1] *= 0.1  # under min_peak: not found
    fed = net.feedback(maps)
    torch.testing.assert_close(fed[0, 0], gaussian_heatmaps(kp[0, :1], 16, 1.5)[0], atol=0.02, rtol=0)
    assert fed[0, 1].abs().max() == 0


def test_teacher_forcing_feeds_the_noised_labels_of_the_previous_frame(make_pme) -> None:
    net = make_pme(teacher_jitter=0.0, teacher_drop=0.0)
    clip = _clip(b=1, t=3)
    kp2d = torch.rand(1, 3, 21, 2) * 60
    visible = torch.ones(1, 3, 21, dtype=torch.bool)
    teacher = net.teacher(kp2d, visible)
    assert teacher.shape == (1, 3, 21, 16, 16)
    net.eval()
    with torch.no_grad():
        forward = net.run(clip, teacher=teacher)
        backward = net.run(clip, reverse=True, teacher=teacher)
        step1 = net.step(clip[:, 0], clip[:, 1], teacher[:, 0])  # frame 1 sees frame 0's labels going forward
        back1 = net.step(clip[:, 2], clip[:, 1], teacher[:, 2])  # and frame 2's going backward
    torch.testing.assert_close(forward.pose[:, 1], step1.pose, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(backward.pose[:, 1], back1.pose, rtol=1e-5, atol=1e-6)
    noisy = make_pme(teacher_jitter=1.0, teacher_drop=0.5).teacher(kp2d.expand(64, -1, -1, -1), visible.expand(64, -1, -1))
    empty = noisy.flatten(-2).amax(-1) == 0
    assert 0.4 < empty.float().mean() < 0.6  # about half the joints dropped


def test_freeze_by_name(make_pme) -> None:
    net = make_pme()
    net.freeze("heatmap", "mesh")
    assert net.frozen == ("flow", "heatmap", "mesh")
    assert not any(p.requires_grad for p in net.heatmap.parameters())
    assert all(p.requires_grad for p in net.pose.parameters())
    net.train()
    assert net.training and net.pose.training
    assert not net.heatmap.training and not net.mesh.training  # frozen BatchNorm keeps its statistics
    bn = net.heatmap.hourglass.stem[1]
    before = bn.running_mean.clone()
    net.run(_clip(t=2))
    assert torch.equal(bn.running_mean, before)
    net.unfreeze("heatmap")
    assert net.heatmap.training and all(p.requires_grad for p in net.heatmap.parameters())
    net.run(_clip(t=2))
    assert not torch.equal(bn.running_mean, before)
    with pytest.raises(ValueError, match="unknown sub-network"):
        net.freeze("hourglass")


def test_fixed_norm_stats_train_the_weights_but_keep_the_statistics(make_pme) -> None:
    net = make_pme()
    net.fix_norm_stats("mesh")
    assert net.fixed_norm_stats == ("mesh",)
    net.train()
    norms = [m for m in net.mesh.modules() if isinstance(m, nn.BatchNorm1d)]
    assert norms and not any(m.training for m in norms) and net.mesh.training
    assert all(p.requires_grad for p in net.mesh.parameters())
    stats = [m.running_mean.clone() for m in norms]
    hourglass_bn = net.heatmap.hourglass.stem[1]
    hourglass_before = hourglass_bn.running_mean.clone()
    out = net.run(_clip(t=2))
    out.mesh.square().mean().backward()
    assert all(torch.equal(m.running_mean, s) for m, s in zip(norms, stats, strict=True))
    assert all(m.weight.grad is not None for m in norms)  # the affine weights still train
    assert not torch.equal(hourglass_bn.running_mean, hourglass_before)  # only the named sub-network is fixed
    net.fix_norm_stats()
    net.train()
    assert all(m.training for m in norms)
    net.run(_clip(t=2))
    assert not all(torch.equal(m.running_mean, s) for m, s in zip(norms, stats, strict=True))
    with pytest.raises(ValueError, match="unknown sub-network"):
        net.fix_norm_stats("decoder")


def test_bad_inputs(make_pme) -> None:
    net = make_pme()
    with pytest.raises(ValueError, match="3×64×64"):
        net.run(torch.rand(1, 2, 3, 32, 32))
    with pytest.raises(ValueError, match="B×T×3×H×W"):
        net.run(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="multiple of 16"):
        make_pme(image_size=72)


def test_with_the_package_flow_backend(sphere_template, tmp_path) -> None:
    import tassn.nets.flow as flow

    net = PME(**{**TINY, "flow": "none", "graph_cache_dir": str(tmp_path), "template": sphere_template})
    assert isinstance(net.flow, flow.FlowEstimator)
    out = net.run(_clip(b=1, t=2))
    assert out.pose.shape == (1, 2, 21, 3) and not out.flow.any()


def test_a_template_and_a_flow_module_are_taken_as_given_or_built_by_name(sphere_template, tmp_path,
                                                                          monkeypatch) -> None:
    """The objects are used as they are; the names of a config file still load the template and build the flow."""
    import tassn.hand.template as hand_template
    import tassn.nets.flow as flow

    given = DifferenceFlow()
    net = PME(**{**TINY, "graph_cache_dir": str(tmp_path), "template": sphere_template, "flow_module": given})
    assert net.flow is given and net.num_vertices == len(sphere_template.vertices)
    loaded = []
    monkeypatch.setattr(hand_template, "load_template", lambda name: loaded.append(name) or sphere_template)
    by_name = PME(**{**TINY, "flow": "none", "graph_cache_dir": str(tmp_path), "template": "procedural"})
    assert loaded == ["procedural"] and isinstance(by_name.flow, flow.FlowEstimator)
    with pytest.raises(TypeError, match="flow_module"):
        PME(**{**TINY, "graph_cache_dir": str(tmp_path), "template": sphere_template, "flow_module": "dis"})
    with pytest.raises(TypeError, match="template"):
        PME(**{**TINY, "graph_cache_dir": str(tmp_path), "template": 3})


def test_channels_last_is_a_layout_not_another_network(make_pme) -> None:
    cl, plain = make_pme(channels_last=True), make_pme(channels_last=False)
    convs = [m.weight for m in cl.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs
                         if w.shape[-1] > 1 or w.shape[-2] > 1)
    # one state dict for both: each loads the other's weights, and they compute the same outputs up to rounding
    plain.load_state_dict(cl.state_dict())
    assert cl.state_dict().keys() == plain.state_dict().keys()
    assert all(cl.state_dict()[k].shape == v.shape for k, v in plain.state_dict().items())
    cl.eval(), plain.eval()
    with torch.no_grad():
        a, b = cl.run(_clip()), plain.run(_clip())
    for x, y in ((a.heatmaps, b.heatmaps), (a.mesh, b.mesh), (a.pose, b.pose)):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4)
    # the weights stay channels-last through a load and an optimiser step
    cl.train()
    cl.load_state_dict(plain.state_dict())
    opt = torch.optim.Adam(cl.parameters(), 1e-3)
    out = cl.run(_clip())
    (out.heatmaps.square().mean() + out.mesh.square().mean()).backward()
    opt.step()
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs if w.shape[-1] > 1)
