"""Forward kinematics of the canonical 21-joint right hand: joint angles + shape → 3D joints (mm) and frames.

Rest pose axes (camera-like, x right, y down, z forward): a right hand with the palm facing the camera (−z),
fingers pointing up (−y), thumb on the +x side, back of the hand towards +z, wrist at the origin. Hand length
(wrist → middle tip) is 187 mm at ``size = 1``.

Every joint ``j`` has a frame whose local −y axis runs along the bone that leaves it (tips keep their parent's
frame). A finger's local x axis is its flexion axis: positive flexion curls the finger towards the palm (−z in the
rest pose); positive abduction (about local z) swings it towards the thumb (+x); twist turns it about its own bone.
For the thumb the same three rotations act on its own frame, which is pronated so that positive flexion moves
the tip across the palm: CMC flexion + abduction + twist together give opposition.

Angles are ``B×15×3``: one row per articulated joint (:data:`ARTICULATED`, the thumb CMC/MCP/IP and each
finger's MCP/PIP/DIP), columns (flexion, abduction, twist) in radians, composed as
``R_x(flexion) · R_z(abduction) · R_y(twist)`` in the joint's rest frame. :data:`ANGLE_LIMITS` keeps them
anatomical (zero range for degrees of freedom a joint does not have).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from .skeleton import FINGERS, JOINT_NAMES, NUM_JOINTS, PARENTS, finger_joints

#: the joints whose rotation is a degree of freedom (rows of ``HandPose.angles``), in joint order.
ARTICULATED: tuple[int, ...] = tuple(j for f in FINGERS for j in finger_joints(f)[:3])
NUM_ARTICULATED = len(ARTICULATED)
DOF_NAMES: tuple[str, str, str] = ("flexion", "abduction", "twist")


def _depth(j: int) -> int:
    return 0 if PARENTS[j] < 0 else 1 + _depth(PARENTS[j])


#: depth of every joint in the tree (wrist 0, MCP 1, …, tip 4); FK runs one depth level at a time.
DEPTH: tuple[int, ...] = tuple(_depth(j) for j in range(NUM_JOINTS))

# ---------------------------------------------------------------------------------------------------------------
# Rest skeleton at size 1 (mm). Fingers lie in the palm plane z = 0, spread slightly; the thumb sits palmar
# (−z) and points up and out at about 40°.
# ---------------------------------------------------------------------------------------------------------------
_BASE = {  # MCP position (CMC for the thumb)
    "thumb": (23.0, -30.0, -9.0),
    "index": (24.0, -86.0, 0.0),
    "middle": (4.0, -89.0, 0.0),
    "ring": (-15.0, -84.0, 0.0),
    "little": (-32.0, -74.0, 0.0),
}
_LENGTHS = {  # bone lengths leaving MCP, PIP, DIP (the last one ends at the fingertip surface)
    "thumb": (44.0, 32.0, 28.0),
    "index": (43.0, 25.0, 23.0),
    "middle": (46.0, 28.0, 24.0),
    "ring": (43.0, 27.0, 23.0),
    "little": (34.0, 20.0, 21.0),
}
_SPREAD_DEG = {"index": 8.0, "middle": 1.0, "ring": -7.0, "little": -15.0}  # rest abduction, + towards thumb
_THUMB_DIRS = ((0.62, -0.72, -0.30), (0.50, -0.85, -0.16), (0.44, -0.89, -0.10))
#: direction a finger's bones move when it flexes, before orthogonalising against the bone.
FLEX_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "thumb": (-0.75, 0.0, -0.66),
    "index": (0.0, 0.0, -1.0),
    "middle": (0.0, 0.0, -1.0),
    "ring": (0.0, 0.0, -1.0),
    "little": (0.0, 0.0, -1.0),
}


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _canonical_rest_joints() -> torch.Tensor:
    joints = torch.zeros(NUM_JOINTS, 3, dtype=torch.float64)
    for f in FINGERS:
        ids = finger_joints(f)
        joints[ids[0]] = torch.tensor(_BASE[f], dtype=torch.float64)
        if f == "thumb":
            dirs = [_unit(torch.tensor(d, dtype=torch.float64)) for d in _THUMB_DIRS]
        else:
            a = math.radians(_SPREAD_DEG[f])
            dirs = [torch.tensor((math.sin(a), -math.cos(a), 0.0), dtype=torch.float64)] * 3
        for s in range(3):
            joints[ids[s + 1]] = joints[ids[s]] + _LENGTHS[f][s] * dirs[s]
    return joints


def rest_frames(rest_joints: torch.Tensor) -> torch.Tensor:
    """Rest rotation of every joint frame from rest joint positions ``21×3`` → ``21×3×3`` (columns = local axes).

    Local −y runs along the bone leaving the joint, local x is the flexion axis ``bone × flex direction``,
    local z completes a right-handed frame. The wrist keeps the identity; tips copy their parent.
    """
    frames = torch.eye(3, dtype=rest_joints.dtype).repeat(NUM_JOINTS, 1, 1)
    for f in FINGERS:
        ids = finger_joints(f)
        flex = torch.tensor(FLEX_DIRECTIONS[f], dtype=rest_joints.dtype)
        for s in range(3):
            d = _unit(rest_joints[ids[s + 1]] - rest_joints[ids[s]])
            f_perp = _unit(flex - (flex @ d) * d)
            x = _unit(torch.linalg.cross(d, f_perp))
            y = -d
            z = torch.linalg.cross(x, y)
            frames[ids[s]] = torch.stack([x, y, z], dim=-1)
        frames[ids[3]] = frames[ids[2]]
    return frames


@dataclass(frozen=True)
class RestSkeleton:
    """Rest joint positions ``21×3`` (mm, wrist at the origin) and rest frames ``21×3×3`` of one hand model."""

    joints: torch.Tensor
    frames: torch.Tensor

    @classmethod
    def from_joints(cls, joints: torch.Tensor) -> RestSkeleton:
        """Rest skeleton whose frames follow the bones of ``joints 21×3`` (see :func:`rest_frames`)."""
        joints = torch.as_tensor(joints, dtype=torch.float64)
        if joints.shape != (NUM_JOINTS, 3):
            raise ValueError(f"rest joints must be {NUM_JOINTS}×3, got {tuple(joints.shape)}")
        return cls(joints.float(), rest_frames(joints).float())


#: the canonical rest skeleton at size 1.
CANONICAL_REST = RestSkeleton.from_joints(_canonical_rest_joints())

# ---------------------------------------------------------------------------------------------------------------
# Angle limits (degrees in the table, radians in the tensor): (low, high) for flexion, abduction, twist.
# ---------------------------------------------------------------------------------------------------------------
_LIMITS_DEG = {
    "thumb": (((-20, 50), (-15, 45), (-10, 60)), ((-10, 60), (-10, 10), (0, 0)), ((-20, 85), (0, 0), (0, 0))),
    "finger": (((-25, 90), (-20, 20), (-5, 5)), ((-5, 110), (0, 0), (0, 0)), ((-10, 80), (0, 0), (0, 0))),
}
#: anatomical limits ``15×3×2`` (radians): ``[..., 0]`` low, ``[..., 1]`` high, rows as :data:`ARTICULATED`.
ANGLE_LIMITS: torch.Tensor = torch.deg2rad(
    torch.tensor([_LIMITS_DEG["thumb" if f == "thumb" else "finger"] for f in FINGERS], dtype=torch.float32)
).reshape(NUM_ARTICULATED, 3, 2)


def clamp_angles(angles: torch.Tensor) -> torch.Tensor:
    """Clamp ``angles …×15×3`` (radians) into :data:`ANGLE_LIMITS` (gradient passes where inside)."""
    limits = ANGLE_LIMITS.to(angles)
    return torch.clamp(angles, limits[..., 0], limits[..., 1])


@dataclass
class HandPose:
    """Articulation and placement of a batch of hands.

    ``angles B×15×3`` radians (rows :data:`ARTICULATED`, columns :data:`DOF_NAMES`), ``global_rot B×3``
    axis-angle of the whole hand about the wrist, ``trans B×3`` wrist position in mm.
    """

    angles: torch.Tensor
    global_rot: torch.Tensor
    trans: torch.Tensor

    @classmethod
    def zeros(
        cls, batch_size: int = 1, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> HandPose:
        """The rest pose at the origin."""
        kw = {"dtype": dtype, "device": device}
        return cls(
            torch.zeros(batch_size, NUM_ARTICULATED, 3, **kw),
            torch.zeros(batch_size, 3, **kw),
            torch.zeros(batch_size, 3, **kw),
        )

    @property
    def batch_size(self) -> int:
        return self.angles.shape[0]

    def to(self, *args, **kwargs) -> HandPose:
        return HandPose(
            self.angles.to(*args, **kwargs),
            self.global_rot.to(*args, **kwargs),
            self.trans.to(*args, **kwargs),
        )


@dataclass
class HandShape:
    """Per-hand shape: ``size B`` (uniform scale, 1 = 187 mm wrist → middle tip) and ``finger_lengths B×5``
    (length factor of each finger's phalanges, thumb metacarpal included; order :data:`FINGERS`)."""

    size: torch.Tensor
    finger_lengths: torch.Tensor = field(default_factory=lambda: torch.ones(1, len(FINGERS)))

    @classmethod
    def default(
        cls, batch_size: int = 1, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> HandShape:
        """The canonical shape (size 1, all finger factors 1)."""
        return cls(
            torch.ones(batch_size, dtype=dtype, device=device),
            torch.ones(batch_size, len(FINGERS), dtype=dtype, device=device),
        )

    @classmethod
    def from_hand_length(cls, length_mm: torch.Tensor) -> HandShape:
        """Shape with the given wrist → middle-tip length ``B`` (mm) and canonical proportions."""
        length_mm = torch.as_tensor(length_mm, dtype=torch.float32).reshape(-1)
        return cls(length_mm / CANONICAL_HAND_LENGTH, torch.ones(length_mm.shape[0], len(FINGERS)))

    def to(self, *args, **kwargs) -> HandShape:
        return HandShape(self.size.to(*args, **kwargs), self.finger_lengths.to(*args, **kwargs))


CANONICAL_HAND_LENGTH = float(
    (CANONICAL_REST.joints[JOINT_NAMES.index("middle_tip")] - CANONICAL_REST.joints[0]).norm()
)

#: finger index of the bone leaving each joint, or −1 for bones scaled by ``size`` only (wrist → MCP/CMC).
_BONE_FINGER: tuple[int, ...] = tuple(
    -1 if j == 0 or j in [finger_joints(f)[3] for f in FINGERS] else (j - 1) // 4 for j in range(NUM_JOINTS)
)


def bone_scales(shape: HandShape) -> torch.Tensor:
    """Axial scale of the bone leaving each joint relative to the template: ``size × finger factor``, ``B×21``."""
    size = shape.size.reshape(-1, 1)
    factors = torch.cat([torch.ones_like(shape.finger_lengths[:, :1]), shape.finger_lengths], dim=1)
    idx = torch.tensor([f + 1 for f in _BONE_FINGER], device=size.device)
    return size * factors[:, idx]


def shaped_rest_joints(shape: HandShape, rest: RestSkeleton = CANONICAL_REST) -> torch.Tensor:
    """Rest joints of ``shape`` ``B×21×3`` (mm): palm scaled by ``size``, phalanges by ``size × finger factor``."""
    scales = bone_scales(shape)
    joints = rest.joints.to(scales)
    parents = torch.tensor(PARENTS[1:])
    offsets = (joints[1:] - joints[parents])[None] * scales[:, parents, None]
    out = [torch.zeros_like(offsets[:, 0])]
    for j in range(1, NUM_JOINTS):
        out.append(out[PARENTS[j]] + offsets[:, j - 1])
    return torch.stack(out, dim=1)


def local_rotations(angles: torch.Tensor) -> torch.Tensor:
    """``R_x(flexion) · R_z(abduction) · R_y(twist)`` for ``angles …×3`` → ``…×3×3``."""
    c, s = angles.cos(), angles.sin()
    one, zero = torch.ones_like(c[..., 0]), torch.zeros_like(c[..., 0])
    cf, sf, ca, sa, ct, st = c[..., 0], s[..., 0], c[..., 1], s[..., 1], c[..., 2], s[..., 2]
    rx = torch.stack([one, zero, zero, zero, cf, -sf, zero, sf, cf], -1)
    rz = torch.stack([ca, -sa, zero, sa, ca, zero, zero, zero, one], -1)
    ry = torch.stack([ct, zero, st, zero, one, zero, -st, zero, ct], -1)
    shp = angles.shape[:-1] + (3, 3)
    return rx.reshape(shp) @ rz.reshape(shp) @ ry.reshape(shp)


def forward_kinematics(
    pose: HandPose, shape: HandShape | None = None, rest: RestSkeleton = CANONICAL_REST
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed joints ``B×21×3`` (mm) and global joint frames ``B×21×4×4`` (rotation | position).

    ``rest`` is the hand model's rest skeleton (the canonical one by default; a MANO template brings its own).
    Batched and differentiable in the angles, the global rotation, the translation and the shape.
    """
    angles = pose.angles
    if angles.ndim != 3 or angles.shape[1:] != (NUM_ARTICULATED, 3):
        raise ValueError(f"HandPose.angles must be B×{NUM_ARTICULATED}×3, got {tuple(angles.shape)}")
    batch, dtype, device = angles.shape[0], angles.dtype, angles.device
    shape = shape if shape is not None else HandShape.default(batch, dtype, device)
    rest_joints = shaped_rest_joints(shape.to(dtype=dtype, device=device), rest)  # B×21×3
    if rest_joints.shape[0] == 1 and batch > 1:
        rest_joints = rest_joints.expand(batch, -1, -1)
    frames = rest.frames.to(dtype=dtype, device=device)  # 21×3×3

    local = torch.eye(3, dtype=dtype, device=device).repeat(batch, NUM_JOINTS, 1, 1)
    local[:, list(ARTICULATED)] = local_rotations(angles)
    rot_global = axis_angle_to_rotation_matrix(pose.global_rot.reshape(-1, 3)).reshape(batch, 3, 3)

    rots: list[torch.Tensor | None] = [None] * NUM_JOINTS
    pos: list[torch.Tensor | None] = [None] * NUM_JOINTS
    rots[0] = rot_global @ frames[0] @ local[:, 0]
    pos[0] = pose.trans.reshape(batch, 3).to(dtype) + (rot_global @ rest_joints[:, 0, :, None])[..., 0]
    for depth in range(1, max(DEPTH) + 1):
        ids = [j for j in range(NUM_JOINTS) if DEPTH[j] == depth]
        par = [PARENTS[j] for j in ids]
        r_par = torch.stack([rots[p] for p in par], 1)  # B×n×3×3
        p_par = torch.stack([pos[p] for p in par], 1)
        # bone vector in the parent's rest frame, then carried by the parent's posed frame
        bone = frames[par].transpose(-1, -2) @ (rest_joints[:, ids] - rest_joints[:, par])[..., None]
        p_new = p_par + (r_par @ bone)[..., 0]
        r_new = r_par @ frames[par].transpose(-1, -2) @ frames[ids] @ local[:, ids]
        for k, j in enumerate(ids):
            rots[j], pos[j] = r_new[:, k], p_new[:, k]
    r_all, p_all = torch.stack(rots, 1), torch.stack(pos, 1)
    transforms = torch.zeros(batch, NUM_JOINTS, 4, 4, dtype=dtype, device=device)
    transforms[..., :3, :3] = r_all
    transforms[..., :3, 3] = p_all
    transforms[..., 3, 3] = 1.0
    return p_all, transforms


def skinning_transforms(
    pose: HandPose, shape: HandShape | None = None, rest: RestSkeleton = CANONICAL_REST
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-joint affine maps ``B×21×4×4`` from template rest space to posed space, and the posed joints.

    ``A_j = G_j(pose, shape) · S_j · G_j(rest)⁻¹`` where ``S_j`` stretches the bone leaving ``j`` along its axis
    by ``size × finger factor`` and scales across it by ``size``, so a vertex skinned to ``j`` follows its bone.
    """
    joints, frames = forward_kinematics(pose, shape, rest)
    batch, dtype = joints.shape[0], joints.dtype
    shape = shape if shape is not None else HandShape.default(batch, dtype, joints.device)
    axial = bone_scales(shape.to(dtype=dtype, device=joints.device)).expand(batch, -1)  # B×21
    size = shape.size.to(dtype=dtype, device=joints.device).reshape(-1, 1).expand(batch, NUM_JOINTS)
    scale = torch.stack([size, axial, size], -1)  # local (x, y = bone axis, z)
    r_rest = rest.frames.to(dtype=dtype, device=joints.device)
    # linear part: R_pose · diag(scale) · R_restᵀ
    lin = frames[..., :3, :3] @ (scale[..., :, None] * r_rest.transpose(-1, -2))
    trans = frames[..., :3, 3] - (lin @ rest.joints.to(dtype=dtype, device=joints.device)[..., None])[..., 0]
    out = torch.zeros_like(frames)
    out[..., :3, :3] = lin
    out[..., :3, 3] = trans
    out[..., 3, 3] = 1.0
    return out, joints


@dataclass
class PoseRanges:
    """How widely :func:`random_pose` samples.

    ``angle_scale`` shrinks every joint's limit interval towards 0 (1 = full anatomical range);
    ``max_global_rot`` bounds the global rotation angle (radians); the wrist lands uniformly in the box
    ``trans_low``–``trans_high`` (mm, camera frame).
    """

    angle_scale: float = 1.0
    max_global_rot: float = math.pi
    trans_low: tuple[float, float, float] = (0.0, 0.0, 500.0)
    trans_high: tuple[float, float, float] = (0.0, 0.0, 500.0)
    couple_dip: bool = True


def random_pose(
    batch_size: int, generator: torch.Generator | None = None, ranges: PoseRanges | None = None
) -> HandPose:
    """Sample anatomically valid poses: angles uniform in the (scaled) limits, DIP flexion coupled to PIP
    (≈ 2/3, as in real hands) when ``ranges.couple_dip``, a uniformly random rotation axis with an angle up to
    ``ranges.max_global_rot``, and a uniform wrist position. A pure function of ``generator``'s state."""
    r = ranges or PoseRanges()
    u = torch.rand(batch_size, NUM_ARTICULATED, 3, generator=generator)
    lo, hi = ANGLE_LIMITS[..., 0] * r.angle_scale, ANGLE_LIMITS[..., 1] * r.angle_scale
    angles = lo + u * (hi - lo)
    if r.couple_dip:
        for f in FINGERS[1:]:
            pip, dip = ARTICULATED.index(finger_joints(f)[1]), ARTICULATED.index(finger_joints(f)[2])
            angles[:, dip, 0] = 0.5 * angles[:, dip, 0] + 0.5 * (2.0 / 3.0) * angles[:, pip, 0]
        angles = clamp_angles(angles)
    axis = torch.randn(batch_size, 3, generator=generator)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    # uniform on SO(3) restricted to angle ≤ max: density ∝ (1 − cos θ); sample by rejection-free inverse grid
    theta = _sample_rotation_angle(batch_size, r.max_global_rot, generator)
    low, high = torch.tensor(r.trans_low), torch.tensor(r.trans_high)
    trans = low + torch.rand(batch_size, 3, generator=generator) * (high - low)
    return HandPose(angles, axis * theta[:, None], trans)


def _sample_rotation_angle(n: int, max_angle: float, generator: torch.Generator | None) -> torch.Tensor:
    """Angles with the density of uniformly random rotations, ``∝ 1 − cos θ`` on ``[0, max_angle]``."""
    grid = torch.linspace(0.0, max_angle, 2049, dtype=torch.float64)
    cdf = grid - torch.sin(grid)
    cdf = cdf / cdf[-1].clamp_min(1e-12)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    idx = torch.searchsorted(cdf, u).clamp(1, grid.numel() - 1)
    t = ((u - cdf[idx - 1]) / (cdf[idx] - cdf[idx - 1]).clamp_min(1e-12)).clamp(0, 1)
    return (grid[idx - 1] + t * (grid[idx] - grid[idx - 1])).float()
