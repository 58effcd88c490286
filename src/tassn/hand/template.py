"""Hand template meshes with linear-blend skinning and a joint regressor, posed by :mod:`tassn.hand.kinematics`."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .kinematics import CANONICAL_REST, HandPose, HandShape, RestSkeleton, skinning_transforms
from .mano import load_mano_mesh
from .skeleton import NUM_JOINTS

if TYPE_CHECKING:
    import trimesh


@dataclass(frozen=True, eq=False)
class HandTemplate:
    """A right-hand mesh in the canonical rest pose (mm, camera-like axes, wrist at the origin).

    ``vertices V×3`` float32, ``faces F×3`` int64, ``skin_weights V×21`` (rows sum to 1; column ``j`` is the
    joint whose transform moves the vertex, tips get none), ``joint_regressor 21×V`` (rows sum to 1; mesh → the
    21 canonical joints), ``rest`` the rest skeleton the skinning is bound to, ``name`` for logs.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    skin_weights: torch.Tensor
    joint_regressor: torch.Tensor
    name: str
    rest: RestSkeleton = CANONICAL_REST

    def __post_init__(self) -> None:
        v = self.vertices.shape[0]
        expected = {
            "vertices": (v, 3),
            "faces": (self.faces.shape[0], 3),
            "skin_weights": (v, NUM_JOINTS),
            "joint_regressor": (NUM_JOINTS, v),
        }
        for key, shape in expected.items():
            if tuple(getattr(self, key).shape) != shape:
                raise ValueError(
                    f"HandTemplate {self.name!r}: {key} must be {shape}, got {tuple(getattr(self, key).shape)}"
                )
        if self.faces.dtype != torch.int64:
            raise ValueError(f"HandTemplate {self.name!r}: faces must be int64, got {self.faces.dtype}")

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    def hash(self) -> str:
        """Stable content hash (hex) of the mesh, weights and regressor, for caches keyed by the template."""
        h = hashlib.sha256()
        for t in (self.vertices, self.faces, self.skin_weights, self.joint_regressor, self.rest.joints):
            arr = t.detach().cpu().contiguous().numpy()
            if arr.dtype.kind == "f":
                arr = np.round(arr.astype(np.float64), 4)  # immune to float noise in the last bits
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
        return h.hexdigest()[:16]

    def regress_joints(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 21 canonical joints of meshes ``…×V×3`` → ``…×21×3``."""
        return torch.einsum("jv,...vc->...jc", self.joint_regressor.to(vertices), vertices)

    def pose(self, pose: HandPose, shape: HandShape | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear-blend skinning: posed vertices ``B×V×3`` and FK joints ``B×21×3`` (mm, camera frame)."""
        transforms, joints = skinning_transforms(pose, shape, self.rest)  # B×21×4×4
        dtype, device = transforms.dtype, transforms.device
        weights = self.skin_weights.to(dtype=dtype, device=device)
        blended = torch.einsum("vj,bjrc->bvrc", weights, transforms[..., :3, :])  # B×V×3×4
        verts = self.vertices.to(dtype=dtype, device=device)
        posed = (blended[..., :3] @ verts[None, :, :, None])[..., 0] + blended[..., 3]
        return posed, joints

    def to_trimesh(self) -> trimesh.Trimesh:
        """The rest mesh as a ``trimesh.Trimesh`` (for export and inspection)."""
        import trimesh

        return trimesh.Trimesh(self.vertices.numpy(), self.faces.numpy(), process=False)


def procedural_template(cache_dir: str | os.PathLike | None = None) -> HandTemplate:
    """Our own procedural right hand (about a thousand vertices), built once and cached on disk."""
    from .procedural import load_procedural_mesh

    mesh = load_procedural_mesh(cache_dir=cache_dir)
    return HandTemplate(
        vertices=torch.from_numpy(np.asarray(mesh.vertices, dtype=np.float32)),
        faces=torch.from_numpy(np.asarray(mesh.faces, dtype=np.int64)),
        skin_weights=torch.from_numpy(np.asarray(mesh.skin_weights, dtype=np.float32)),
        joint_regressor=torch.from_numpy(np.asarray(mesh.joint_regressor, dtype=np.float32)),
        name="procedural",
        rest=CANONICAL_REST,
    )


def mano_template(path: str | os.PathLike) -> HandTemplate:
    """MANO's right hand (``MANO_RIGHT.pkl``, see :func:`tassn.hand.mano.load_mano_mesh`) as a template."""
    mesh = load_mano_mesh(path)
    return HandTemplate(
        vertices=torch.from_numpy(mesh.vertices),
        faces=torch.from_numpy(mesh.faces),
        skin_weights=torch.from_numpy(mesh.skin_weights),
        joint_regressor=torch.from_numpy(mesh.joint_regressor),
        name="mano",
        rest=RestSkeleton.from_joints(torch.from_numpy(mesh.rest_joints)),
    )


def load_template(
    name: str | os.PathLike = "procedural", cache_dir: str | os.PathLike | None = None
) -> HandTemplate:
    """``"procedural"`` for our own hand, or a path to ``MANO_RIGHT.pkl`` (see :func:`mano_template`).

    ``cache_dir`` is where the procedural mesh is cached (default ``~/.cache/tassn``).
    """
    if str(name) == "procedural":
        return procedural_template(cache_dir)
    path = Path(name)
    if path.suffix == ".pkl" or path.exists():
        return mano_template(path)
    raise ValueError(
        f"unknown hand template {str(name)!r}: expected 'procedural' or a path to MANO_RIGHT.pkl"
    )
