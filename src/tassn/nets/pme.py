"""The pose and mesh estimation (PME) module of TASSN (§3.2): flow → heatmaps → mesh → pose, frame by frame.

``PME.step`` runs one frame from its predecessor; ``PME.run`` runs a clip forward or, for the reversed temporal
measurement, backward, and always returns the outputs in the clip's own frame order. Frame ``t`` sees its
predecessor in the processing direction through the flow ``o`` and the previous heatmaps ``H``; the first frame of
each direction has none, so it is paired with itself: ``flow = 0`` (the flow network is not called) and ``H = 0``.
How ``H`` is formed from the previous output, and from noised labels in training, is :mod:`tassn.nets.feedback`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from tassn.hand import template as hand_template
from tassn.hand.graph import GraphHierarchy, hierarchy_for
from tassn.hand.skeleton import NUM_JOINTS
from tassn.hand.template import HandTemplate
from tassn.heatmaps import to_heatmap_coords

from .feedback import FEEDBACK_MODES, FeedbackMode, feed_back, teacher_heatmaps
from .heatmap_estimator import HeatmapEstimator
from .mesh_estimator import MeshEstimator
from .pose_estimator import PoseEstimator

#: the sub-networks, by attribute name; stages freeze and unfreeze them by these names.
SUBNETS: tuple[str, ...] = ("flow", "heatmap", "mesh", "pose")


class PMEOutput(NamedTuple):
    """Outputs of one frame (``step``) or of a clip (``run``, with a ``T`` axis after ``B``).

    ``heatmaps B×[T×]S×21×h×w`` (every hourglass stack, ``h = H/4``); ``features B×[T×]C×h×w`` (the last stack's
    encoding); ``mesh B×[T×]V×3`` and ``pose B×[T×]21×3`` (root-relative, scale-normalised, template vertex order);
    ``flow B×[T×]2×H×W`` (pixels) from the frame's predecessor in the processing direction to the frame. ``mesh`` and
    ``pose`` are None from a pass run with ``with_3d=False`` (a loss on the heatmaps alone).
    """

    heatmaps: torch.Tensor
    features: torch.Tensor
    mesh: torch.Tensor | None
    pose: torch.Tensor | None
    flow: torch.Tensor


def scale_grad(x: torch.Tensor | None, scale: float) -> torch.Tensor | None:
    """``x`` unchanged in the forward pass, its gradient multiplied by ``scale`` in the backward pass."""
    if x is None or scale == 1.0:
        return x
    if scale == 0.0:
        return x.detach()
    return x * scale + x.detach() * (1.0 - scale)


def build_hand(template: str | HandTemplate) -> HandTemplate:
    """The hand template: the one :func:`tassn.hand.template.load_template` loads by name, or ``template`` itself
    (anything with the ``vertices``, ``faces`` and ``hash()`` the mesh graph is built from)."""
    if isinstance(template, str):
        return hand_template.load_template(template)
    if not all(hasattr(template, attr) for attr in ("vertices", "faces", "hash")):
        raise TypeError(f"PME: template must be a name or a HandTemplate, got {type(template).__name__}")
    return template


def build_flow(name: str, checkpoint: str | None, trainable: bool, module: nn.Module | None = None) -> nn.Module:
    """The flow estimator: ``module`` itself, or ``tassn.nets.flow.build_flow_estimator(name, …)``.

    The flow backends are imported only when one is built by name (FlowNet2 brings its own dependencies)."""
    if module is not None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"PME: flow_module must be a torch.nn.Module, got {type(module).__name__}")
        return module
    from .flow import build_flow_estimator

    return build_flow_estimator(name, checkpoint=checkpoint, trainable=trainable)


class PME(nn.Module):
    """Flow estimator, 2-stack hourglass, Chebyshev mesh GCN and GCN pose estimator in one module.

    Sub-modules are ``flow``, ``heatmap``, ``mesh`` and ``pose``; ``freeze``/``unfreeze`` act on them by name and
    frozen ones stay in eval mode (their BatchNorm statistics do not move). The size defaults are the paper's model
    (256² input, 256 features, 2 stacks, depth 4, 4 coarsening levels, K = 3). The heatmap feedback and
    teacher-forcing defaults (``heatmap_feedback``, ``teacher_forcing``, ``confidence_feedback``, ``teacher_*``,
    ``mesh_grad_to_heatmap``) are this project's training recipe, not the paper's model (which feeds its predicted
    ``H_t`` back); docs/results.md has the measurements behind them.

    Args:
        flow: flow backend for ``build_flow_estimator`` (``"dis"``, ``"none"``, ``"flownet2"``, …).
        flow_checkpoint: weights of a learnt flow backend.
        flow_trainable: train the flow network; when False it is frozen and run without autograd.
        image_size: side of the square input crops; a multiple of ``4·2^hourglass_depth``.
        hourglass_features, hourglass_stacks, hourglass_depth, hourglass_modules, hourglass_stem_features: widths
            and depth of the heatmap estimator (modules = residuals per slot).
        flow_normaliser: flow enters the hourglass divided by ``flow_normaliser × image side``.
        template: hand template name for ``load_template`` (``"procedural"`` or a MANO ``.pkl`` path), or a
            :class:`~tassn.hand.template.HandTemplate` itself.
        coarsening_levels: graph coarsening levels; both GCNs span all of them.
        cheb_k: Chebyshev order of every graph convolution.
        encoder_output_size: side of the feature encoder's last map (Ge: 4, i.e. 64² → 4²).
        mesh_fc_hidden, mesh_channels: feature encoder FC width; coarse width then block widths of the mesh GCN.
        mesh_keypoint_input: the mesh decoder also reads each joint's heatmap peak (position and height), not only
            the encoder's pooled features — this project's addition; off is Ge et al.'s estimator (docs/results.md).
        mesh_vertex_features: width of a learned per-vertex vector appended to each decoder block's up-sampled
            input (0: Ge et al.'s decoder; see :class:`~tassn.nets.mesh_estimator.MeshDecoder`).
        pose_regressor_skip: the pose estimator adds the template's linear joint regressor applied to the mesh, its
            GCN starting as a zero residual (off: Ge et al.'s regressor, which must learn the mesh → joint map).
        mesh_articulated: the GCN's output is a residual on the template posed by predicted joint angles and
            rotation (:mod:`tassn.nets.articulated`; off: Ge et al.'s decoder).
        pose_channels, pose_fc_hidden, pose_activation: GCN widths per block, FC width, ReLUs of the regressor.
        heatmap_feedback: how a frame's heatmaps become the next frame's ``H_t`` without a teacher: ``redrawn``
            (unit Gaussians at the peaks, the form of the training inputs), ``detached`` or ``predicted`` (raw maps,
            without / with their gradient). See :mod:`tassn.nets.feedback`.
        feedback_sigma: width (heatmap cells) of the re-drawn and teacher Gaussians: the targets' ``heatmap_sigma``
            (linked to the data's by the CLI).
        feedback_min_peak: a re-drawn joint whose peak is under this is left empty (not found).
        teacher_forcing: the stages train with teacher-forced ``H_t`` (noised labels, :meth:`teacher`) rather than
            the fed-back predictions (the measured difference is in docs/results.md).
        confidence_feedback: fed-back maps carry the previous peak's height (its confidence) instead of height 1,
            and teacher maps random heights with larger offsets for fainter maps (:func:`teacher_heatmaps`).
        teacher_jitter, teacher_drop: noise of the teacher-forced ``H_t`` in training (:meth:`teacher`): uniform
            jitter in heatmap cells and per-joint drop probability.
        mesh_grad_to_heatmap: scale of the gradient that the mesh decoder (and so every 3D, silhouette and
            consistency term) sends back into the heatmap estimator; the forward pass is unchanged. 1 trains end to
            end; 0 leaves the hourglass to L_h. Measured in pre-training: the weighted 3D terms' gradient into the
            hourglass is 10–30× L_h's and holds 2D PCK down (docs/results.md).
        graph_cache_dir: where the coarsened graph is cached (default ``~/.cache/tassn/graphs``).
        flow_module: a flow network to use instead of building ``flow`` by name (``flow_checkpoint`` is then
            unused); it maps two ``B×3×H×W`` images to ``B×2×H×W`` flow and is frozen unless ``flow_trainable``.
        channels_last: keep the heatmap and mesh estimators' convolution weights, and so their activations, in
            channels-last memory layout: the same network and state dict, with the CPU's oneDNN convolutions spared
            a layout conversion around every call (stage-1 steps about a fifth faster; docs/results.md, "Speed and
            memory"). Only the float rounding differs from the default layout.
    """

    def __init__(
        self,
        flow: str = "dis",
        flow_checkpoint: str | None = None,
        flow_trainable: bool = False,
        image_size: int = 256,
        hourglass_features: int = 256,
        hourglass_stacks: int = 2,
        hourglass_depth: int = 4,
        hourglass_modules: int = 2,
        hourglass_stem_features: int = 128,
        flow_normaliser: float = 0.1,
        template: str | HandTemplate = "procedural",
        coarsening_levels: int = 4,
        cheb_k: int = 3,
        encoder_output_size: int = 4,
        mesh_fc_hidden: int = 512,
        mesh_channels: tuple[int, ...] = (64, 32, 3),
        mesh_keypoint_input: bool = False,
        mesh_vertex_features: int = 0,
        mesh_articulated: bool = False,
        pose_channels: tuple[int, ...] = (32, 64),
        pose_fc_hidden: int = 512,
        pose_activation: bool = True,
        pose_regressor_skip: bool = False,
        heatmap_feedback: FeedbackMode = "redrawn",
        feedback_sigma: float = 2.0,
        feedback_min_peak: float = 0.1,
        confidence_feedback: bool = False,
        teacher_forcing: bool = True,
        teacher_jitter: float = 2.0,
        teacher_drop: float = 0.8,
        mesh_grad_to_heatmap: float = 1.0,
        graph_cache_dir: str | None = None,
        flow_module: nn.Module | None = None,
        channels_last: bool = True,
    ):
        super().__init__()
        multiple = 4 * 2**hourglass_depth
        if image_size <= 0 or image_size % multiple:
            raise ValueError(f"PME: image_size must be a positive multiple of {multiple} (4·2^depth), got {image_size}")
        self.image_size = image_size
        self.heatmap_size = image_size // 4
        if heatmap_feedback not in FEEDBACK_MODES:
            raise ValueError(f"PME: heatmap_feedback must be one of {FEEDBACK_MODES}, got {heatmap_feedback!r}")
        if feedback_sigma <= 0:
            raise ValueError(f"PME: feedback_sigma must be > 0, got {feedback_sigma}")
        if not 0.0 <= teacher_drop < 1.0 or teacher_jitter < 0:
            raise ValueError(f"PME: need 0 ≤ teacher_drop < 1 and teacher_jitter ≥ 0, got {teacher_drop}, {teacher_jitter}")
        if mesh_grad_to_heatmap < 0:
            raise ValueError(f"PME: mesh_grad_to_heatmap must be ≥ 0, got {mesh_grad_to_heatmap}")
        self.mesh_grad_to_heatmap = mesh_grad_to_heatmap
        self.heatmap_feedback = heatmap_feedback
        self.feedback_sigma = feedback_sigma
        self.feedback_min_peak = feedback_min_peak
        self.teacher_forcing = teacher_forcing
        self.confidence_feedback = confidence_feedback
        self.teacher_jitter = teacher_jitter
        self.teacher_drop = teacher_drop
        self._frozen: set[str] = set()
        self._fixed_norm_stats: set[str] = set()

        hand = build_hand(template)
        self.hierarchy: GraphHierarchy = hierarchy_for(hand, levels=coarsening_levels, cache_dir=graph_cache_dir)
        self.register_buffer("template_faces", torch.as_tensor(hand.faces, dtype=torch.long), persistent=False)

        self.flow = build_flow(flow, flow_checkpoint, flow_trainable, flow_module)
        self.heatmap = HeatmapEstimator(
            NUM_JOINTS,
            hourglass_features,
            hourglass_stacks,
            hourglass_depth,
            hourglass_modules,
            hourglass_stem_features,
            flow_normaliser,
        )
        self.mesh = MeshEstimator(
            self.hierarchy,
            NUM_JOINTS,
            feature_channels=hourglass_features,
            feature_size=self.heatmap_size,
            encoder_output_size=encoder_output_size,
            encoder_modules=hourglass_modules,
            channels=mesh_channels,
            fc_hidden=mesh_fc_hidden,
            K=cheb_k,
            keypoint_input=mesh_keypoint_input,
            vertex_features=mesh_vertex_features,
            articulated_template=hand if mesh_articulated else None,
        )
        self.pose = PoseEstimator(
            self.hierarchy, NUM_JOINTS, pose_channels, pose_fc_hidden, K=cheb_k, activation=pose_activation,
            joint_regressor=torch.as_tensor(hand.joint_regressor) if pose_regressor_skip else None,
        )
        if not flow_trainable:
            self.freeze("flow")
        if channels_last:
            self.heatmap.to(memory_format=torch.channels_last)
            self.mesh.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------------------------------------------------
    # freezing

    def _check_names(self, names: tuple[str, ...]) -> None:
        unknown = [n for n in names if n not in SUBNETS]
        if unknown:
            raise ValueError(f"PME: unknown sub-network(s) {unknown}; expected names among {SUBNETS}")

    def freeze(self, *names: str) -> PME:
        """Stop training the named sub-networks: no gradients, BatchNorm in eval mode whatever ``train()`` says."""
        self._check_names(names)
        for name in names:
            getattr(self, name).requires_grad_(False).eval()
            self._frozen.add(name)
        return self

    def unfreeze(self, *names: str) -> PME:
        """Train the named sub-networks again (they follow the module's train/eval mode)."""
        self._check_names(names)
        for name in names:
            module = getattr(self, name)
            module.requires_grad_(True).train(self.training)
            self._frozen.discard(name)
        return self

    def fix_norm_stats(self, *names: str) -> PME:
        """Keep the named sub-networks' BatchNorm statistics as loaded while their weights train: their BatchNorm
        layers stay in eval mode (normalising by the stored statistics, never updating them).

        Why: a stage without 3D labels fine-tunes the mesh estimator on another domain in small batches of
        consecutive frames; re-estimating its statistics there moves the 3D it learned with labels before any
        weight does (docs/results.md, ninth round).
        """
        self._check_names(names)
        self._fixed_norm_stats = set(names)
        return self.train(self.training)

    @property
    def fixed_norm_stats(self) -> tuple[str, ...]:
        """Names of the sub-networks whose BatchNorm statistics do not move in training, in ``SUBNETS`` order."""
        return tuple(n for n in SUBNETS if n in self._fixed_norm_stats)

    @property
    def frozen(self) -> tuple[str, ...]:
        """Names of the frozen sub-networks, in ``SUBNETS`` order."""
        return tuple(n for n in SUBNETS if n in self._frozen)

    def train(self, mode: bool = True) -> PME:
        super().train(mode)
        for name in self._frozen:
            getattr(self, name).eval()
        for name in self._fixed_norm_stats - self._frozen:
            for module in getattr(self, name).modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # ------------------------------------------------------------------------------------------------------------
    # inference

    @property
    def num_vertices(self) -> int:
        """Vertices of the template mesh (``V`` of ``mesh B×V×3``)."""
        return self.hierarchy.num_template_vertices

    def _check_images(self, x: torch.Tensor, what: str) -> None:
        s = self.image_size
        if x.shape[-3:] != (3, s, s):
            raise ValueError(f"PME.{what}: expected …×3×{s}×{s} images in [0, 1], got shape {tuple(x.shape)}")

    def compute_flow(self, img_a: torch.Tensor, img_b: torch.Tensor) -> torch.Tensor:
        """Flow ``B×2×H×W`` (pixels) from ``img_a`` to ``img_b``; without autograd unless the flow net trains."""
        trainable = any(p.requires_grad for p in self.flow.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
            flow = self.flow(img_a, img_b)
        if flow.shape != (img_a.shape[0], 2, *img_a.shape[-2:]):
            raise RuntimeError(f"PME: the flow estimator returned shape {tuple(flow.shape)}, expected B×2×H×W")
        return flow

    def _estimate(self, image: torch.Tensor, flow: torch.Tensor, prev_heatmap: torch.Tensor,
                  with_3d: bool = True) -> PMEOutput:
        hg = self.heatmap(image, flow, prev_heatmap)
        if not with_3d:
            return PMEOutput(hg.heatmaps, hg.features, None, None, flow)
        inputs = (hg.heatmaps[:, -1], hg.features, hg.previous_features)
        mesh = self.mesh(*(scale_grad(x, self.mesh_grad_to_heatmap) for x in inputs))
        return PMEOutput(hg.heatmaps, hg.features, mesh, self.pose(mesh), flow)

    def step(
        self, img_t: torch.Tensor | None, img_t1: torch.Tensor, heat_t: torch.Tensor | None = None
    ) -> PMEOutput:
        """One frame: ``I_t``, ``I_{t+1}`` (``B×3×H×W`` in [0, 1]) and ``H_t`` (``B×21×h×w``) → outputs at ``t+1``.

        ``img_t=None`` marks a first frame (flow 0, no flow call); ``heat_t=None`` means ``H_t = 0``.
        """
        self._check_images(img_t1, "step")
        b = img_t1.shape[0]
        if img_t is None:
            flow = img_t1.new_zeros(b, 2, *img_t1.shape[-2:])
        else:
            self._check_images(img_t, "step")
            flow = self.compute_flow(img_t, img_t1)
        if heat_t is None:
            heat_t = img_t1.new_zeros(b, NUM_JOINTS, self.heatmap_size, self.heatmap_size)
        return self._estimate(img_t1, flow, heat_t)

    def feedback(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """The next frame's ``H_t`` from a frame's last-stack heatmaps ``B×21×h×w`` (``heatmap_feedback``)."""
        return feed_back(heatmaps, self.heatmap_feedback, self.feedback_sigma, self.feedback_min_peak,
                         self.confidence_feedback)

    def teacher(self, kp2d: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Noised label heatmaps ``B×T×21×h×w`` for teacher-forced training from the clip's 2D labels ``kp2d
        B×T×21×2`` (crop pixels) and ``visible B×T×21``: pass them to :meth:`run` as ``teacher``."""
        stride = self.image_size / self.heatmap_size
        return teacher_heatmaps(to_heatmap_coords(kp2d, stride), visible, self.heatmap_size, self.feedback_sigma,
                                self.teacher_jitter, self.teacher_drop, self.confidence_feedback)

    def run(self, clip: torch.Tensor, reverse: bool = False, teacher: torch.Tensor | None = None,
            with_3d: bool = True) -> PMEOutput:
        """A clip ``B×T×3×H×W`` in [0, 1], processed forward (``reverse=False``) or backward; outputs carry a ``T``
        axis in the clip's frame order. With ``reverse=True``, ``flow[:, t]`` maps ``I_{t+1} → I_t``.

        The flows of all ``T−1`` pairs come from one batched call before the recurrence (they do not depend on
        ``H``). ``H`` of each frame is its predecessor's (in the processing direction) ``teacher`` maps when given
        (``B×T×21×h×w`` in clip order, e.g. :meth:`teacher`), else that predecessor's last-stack heatmaps fed back
        as ``heatmap_feedback`` says.

        ``with_3d=False`` skips the mesh and pose estimators (``mesh``/``pose`` None): the heatmaps, the features and
        the recurrence are unchanged, and a step whose loss reads the heatmaps alone (stage 1) costs half as much.
        """
        if clip.dim() != 5:
            raise ValueError(f"PME.run: expected a clip B×T×3×H×W, got shape {tuple(clip.shape)}")
        self._check_images(clip, "run")
        seq = clip.flip(1) if reverse else clip
        b, t = seq.shape[:2]
        if teacher is not None:
            expected = (b, t, NUM_JOINTS, self.heatmap_size, self.heatmap_size)
            if teacher.shape != expected:
                raise ValueError(f"PME.run: teacher heatmaps must be {expected}, got {tuple(teacher.shape)}")
            teacher = teacher.flip(1) if reverse else teacher
        flows = seq.new_zeros(b, t, 2, *seq.shape[-2:])
        if t > 1:
            pair = self.compute_flow(seq[:, :-1].flatten(0, 1), seq[:, 1:].flatten(0, 1))
            flows = torch.cat([flows[:, :1], pair.unflatten(0, (b, t - 1))], dim=1)
        heat = seq.new_zeros(b, NUM_JOINTS, self.heatmap_size, self.heatmap_size)
        outputs = []
        for i in range(t):
            out = self._estimate(seq[:, i], flows[:, i], heat, with_3d)
            outputs.append(out)
            if teacher is not None:
                heat = teacher[:, i]
            else:
                heat = self.feedback(out.heatmaps[:, -1])
        stacked = [None if parts[0] is None else torch.stack(parts, dim=1) for parts in zip(*outputs, strict=True)]
        if reverse:
            stacked = [None if x is None else x.flip(1) for x in stacked]
        return PMEOutput(*stacked)

    def forward(self, clip: torch.Tensor, reverse: bool = False) -> PMEOutput:
        """Same as :meth:`run`."""
        return self.run(clip, reverse)
