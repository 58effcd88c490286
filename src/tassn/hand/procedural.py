"""A procedural right-hand template mesh built by our own code, so no third-party mesh licence applies.

The hand is a smooth implicit union of simple solids laid on the canonical rest skeleton
(:data:`tassn.hand.kinematics.CANONICAL_REST`): a rounded, flattened palm slab with a wrist stub, a thenar
ellipsoid along the thumb metacarpal and tapered, slightly flattened capsules along every phalanx. Each solid
belongs to the joint whose transform moves it, which gives the skinning weights (a softmax over the per-joint
distances, smoothed on the surface). The zero level set is extracted with scikit-image's marching cubes and
decimated with fast-simplification to about a thousand vertices; the joint regressor uses sparse convex weights
of the vertices nearest each joint. The result is cached on disk under a key hashed from every build parameter.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from .kinematics import CANONICAL_REST, RestSkeleton
from .skeleton import FINGERS, NUM_JOINTS, PARENTS, finger_joints

#: bump when the construction changes so old cache entries are not reused.
BUILD_VERSION = 2


@dataclass(frozen=True)
class ProceduralHandParams:
    """Every number that shapes the procedural hand (mm unless stated); the cache key hashes all of them."""

    grid_mm: float = 1.4
    target_vertices: int = 1000
    palm_blend_mm: float = 6.0
    phalanx_blend_mm: float = 1.5
    palm_half_thickness: float = 13.5
    palm_rounding: float = 9.0
    finger_radius: tuple[float, float, float, float, float] = (10.5, 9.7, 10.0, 9.4, 8.4)
    finger_taper: float = 0.78  # tip radius / base radius
    finger_flatten: float = 0.86  # palm-normal thickness / width of a phalanx
    thenar_radius: tuple[float, float] = (15.0, 11.0)
    wrist_half_width: float = 27.0
    wrist_half_thickness: float = 17.0
    wrist_length: float = 30.0
    skin_temperature_mm: float = 2.5
    skin_smoothing_iterations: int = 3
    regressor_neighbours: int = 24

    def key(self, rest: RestSkeleton = CANONICAL_REST) -> str:
        """Stable hash of the parameters, the rest skeleton and :data:`BUILD_VERSION`."""
        payload = {
            "version": BUILD_VERSION,
            "params": asdict(self),
            "rest": np.round(rest.joints.double().numpy(), 4).tolist(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tassn`` (``~/.cache/tassn`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tassn"


# ------------------------------------------------------------------------------------------------ signed distances
def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (blends two distance fields over a band of width ``k``)."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _tapered_capsule(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, r_a: float, r_b: float, frame: np.ndarray, flatten: float
) -> np.ndarray:
    """Approximate distance to a capsule from ``a`` to ``b`` whose radius goes ``r_a → r_b`` and whose cross
    section is squashed by ``flatten`` along the frame's z axis (the palm normal for fingers)."""
    ab = b - a
    length2 = float(ab @ ab)
    t = np.clip(((p - a) @ ab) / length2, 0.0, 1.0)
    q = p - (a + t[..., None] * ab)
    local = q @ frame  # columns of frame = local axes
    local[..., 2] /= flatten
    return np.linalg.norm(local, axis=-1) - (r_a + t * (r_b - r_a))


def _ellipsoid(p: np.ndarray, centre: np.ndarray, radii: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Approximate signed distance to an ellipsoid (scaled-sphere bound, exact on the axes)."""
    local = (p - centre) @ frame / radii
    k0 = np.linalg.norm(local, axis=-1)
    return (k0 - 1.0) * radii.min()


def _convex_polygon_2d(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance in the plane from ``p …×2`` to a convex polygon ``N×2`` (either orientation)."""
    area2 = np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    poly = poly if area2 > 0 else poly[::-1]
    d = np.full(p.shape[:-1], np.inf)
    inside = np.ones(p.shape[:-1], dtype=bool)
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        e = b - a
        w = p - a
        t = np.clip((w @ e) / (e @ e), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(w - t[..., None] * e, axis=-1))
        inside &= (e[0] * w[..., 1] - e[1] * w[..., 0]) >= 0
    return np.where(inside, -d, d)


def _rounded_slab(
    p: np.ndarray, poly: np.ndarray, z_centre: float, half: float, rounding: float
) -> np.ndarray:
    """A polygon extruded to ``z_centre ± half`` with edges rounded by ``rounding``."""
    d2 = _convex_polygon_2d(p[..., :2], poly) + rounding
    dz = np.abs(p[..., 2] - z_centre) - half + rounding
    q = np.stack([d2, dz], -1)
    return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(-1), 0.0) - rounding


@dataclass(frozen=True)
class _Part:
    """Solids moved by one joint's transform; ``sdf(points N×3) -> N`` signed distances."""

    joint: int
    solids: tuple


def _parts(params: ProceduralHandParams, rest: RestSkeleton) -> list[_Part]:
    joints = rest.joints.double().numpy()
    frames = rest.frames.double().numpy()
    mcp = {f: joints[finger_joints(f)[0]] for f in FINGERS}

    # palm: a convex outline through the knuckles and the wrist (x, y), extruded along z
    palm_poly = np.array(
        [
            (-26.0, 6.0),
            (-42.0, -46.0),
            mcp["little"][:2] + (-9.0, -1.0),
            mcp["ring"][:2] + (-2.0, -6.0),
            mcp["middle"][:2] + (2.0, -7.0),
            mcp["index"][:2] + (9.0, -3.0),
            (36.0, -62.0),
            (29.0, -22.0),
            (22.0, 6.0),
        ]
    )
    wrist_frame = np.eye(3)
    palm_solids = [
        ("slab", palm_poly, -1.5, params.palm_half_thickness, params.palm_rounding),
        (  # the start of the forearm, cut square with rounded edges
            "slab",
            np.array(
                [
                    (-2.0 - params.wrist_half_width, -10.0),
                    (-2.0 + params.wrist_half_width, -10.0),
                    (-2.0 + params.wrist_half_width, params.wrist_length),
                    (-2.0 - params.wrist_half_width, params.wrist_length),
                ]
            ),
            -1.0,
            params.wrist_half_thickness,
            0.95 * params.wrist_half_thickness,
        ),
        # hypothenar pad on the little-finger side of the palm
        ("ellipsoid", np.array([-25.0, -35.0, -6.0]), np.array([14.0, 30.0, 11.0]), wrist_frame),
    ]
    parts = [_Part(0, tuple(palm_solids))]

    for fi, f in enumerate(FINGERS):
        ids = finger_joints(f)
        r0 = params.finger_radius[fi]
        r_tip = r0 * params.finger_taper
        lengths = [np.linalg.norm(joints[ids[s + 1]] - joints[ids[s]]) for s in range(3)]
        total = sum(lengths)
        radius_at = [r0 + (r_tip - r0) * sum(lengths[:s]) / total for s in range(4)]
        for s in range(3):
            a, b = joints[ids[s]].copy(), joints[ids[s + 1]].copy()
            d = (b - a) / np.linalg.norm(b - a)
            if s == 2:  # end the last capsule one radius before the tip so the tip joint is on the surface
                b = b - d * radius_at[3]
            if s == 0 and f != "thumb":  # knuckle: start a little behind the MCP
                a = a - d * 0.5 * r0
            solids = []
            if f == "thumb" and s == 0:
                c = 0.5 * (a + b) + np.array([-2.0, 3.0, -3.0])
                radii = np.array([params.thenar_radius[0], 0.5 * lengths[0] + 8.0, params.thenar_radius[1]])
                solids.append(("ellipsoid", c, radii, frames[ids[0]]))
            solids.append(
                ("capsule", a, b, radius_at[s], radius_at[s + 1], frames[ids[s]], params.finger_flatten)
            )
            parts.append(_Part(ids[s], tuple(solids)))
    return parts


#: distances are computed only within this margin around a solid's bounding box; farther points read
#: :data:`_FAR`. The margin exceeds every blend radius, so the zero level set is exact.
_CULL_MM = 12.0
_FAR = 1e3


def _solid_bounds(solid: tuple) -> tuple[np.ndarray, np.ndarray]:
    kind = solid[0]
    if kind == "slab":
        poly, z_centre, half = solid[1], solid[2], solid[3]
        return np.r_[poly.min(0), z_centre - half], np.r_[poly.max(0), z_centre + half]
    if kind == "ellipsoid":
        r = float(np.max(solid[2]))
        return solid[1] - r, solid[1] + r
    a, b, r = solid[1], solid[2], max(solid[3], solid[4])
    return np.minimum(a, b) - r, np.maximum(a, b) + r


def _solid_sdf(p: np.ndarray, solid: tuple) -> np.ndarray:
    lo, hi = _solid_bounds(solid)
    inside = np.ones(p.shape[:-1], dtype=bool)
    for axis in range(3):
        c = p[..., axis]
        inside &= (c >= lo[axis] - _CULL_MM) & (c <= hi[axis] + _CULL_MM)
    out = np.full(p.shape[:-1], _FAR, dtype=p.dtype)
    q = p[inside]
    kind = solid[0]
    if kind == "slab":
        out[inside] = _rounded_slab(q, *solid[1:])
    elif kind == "ellipsoid":
        out[inside] = _ellipsoid(q, *solid[1:])
    else:
        out[inside] = _tapered_capsule(q, *solid[1:])
    return out


def _part_sdf(p: np.ndarray, part: _Part, blend: float) -> np.ndarray:
    d = _solid_sdf(p, part.solids[0])
    for solid in part.solids[1:]:
        d = _smin(d, _solid_sdf(p, solid), blend)
    return d


def _hand_sdf(p: np.ndarray, parts: list[_Part], params: ProceduralHandParams) -> np.ndarray:
    """Palm (+ thenar) smoothly united with each finger; fingers united with each other by a hard minimum so
    neighbouring fingers do not web together."""
    palm = _part_sdf(p, parts[0], params.palm_blend_mm)
    thumb_base = _part_sdf(p, parts[1], params.palm_blend_mm)
    palm = _smin(palm, thumb_base, params.palm_blend_mm)
    fingers = None
    for f in FINGERS:
        ids = finger_joints(f)[(1 if f == "thumb" else 0) : 3]
        chain_parts = [part for part in parts if part.joint in ids]
        chain = _part_sdf(p, chain_parts[0], params.phalanx_blend_mm)
        for part in chain_parts[1:]:
            chain = _smin(chain, _part_sdf(p, part, params.phalanx_blend_mm), params.phalanx_blend_mm)
        if f == "thumb":
            chain = _smin(chain, thumb_base, params.phalanx_blend_mm * 2)
        fingers = chain if fingers is None else np.minimum(fingers, chain)
    return _smin(palm, fingers, params.palm_blend_mm)


# ------------------------------------------------------------------------------------------------ mesh extraction
def _surface(
    parts: list[_Part], params: ProceduralHandParams, rest: RestSkeleton
) -> tuple[np.ndarray, np.ndarray]:
    from skimage.measure import marching_cubes

    joints = rest.joints.double().numpy()
    pad = 25.0
    lo = joints.min(0) - pad - np.array([0.0, 0.0, 0.0])
    hi = joints.max(0) + pad + np.array([0.0, params.wrist_length, 0.0])
    h = params.grid_mm
    axes = [np.arange(lo[i], hi[i] + h, h) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    field = _hand_sdf(grid.reshape(-1, 3), parts, params).reshape(grid.shape[:3])
    verts, faces, _, _ = marching_cubes(field, level=0.0, spacing=(h, h, h))
    verts = verts + lo
    return verts, faces.astype(np.int64)


def _largest_component(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    mesh = trimesh.Trimesh(verts, faces, process=True)
    parts = mesh.split(only_watertight=False)
    mesh = max(parts, key=lambda m: len(m.faces)) if len(parts) > 1 else mesh
    return np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)


def _simplify(verts: np.ndarray, faces: np.ndarray, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    import fast_simplification

    # a closed genus-0 surface has F = 2V − 4 faces
    target_faces = 2 * target_vertices - 4
    v, f = fast_simplification.simplify(verts, faces, target_count=target_faces)
    return _largest_component(np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64))


def _vertex_adjacency(faces: np.ndarray, n: int) -> sp.csr_matrix:
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    return adj


def skinning_weights(
    verts: np.ndarray, faces: np.ndarray, parts: list[_Part], params: ProceduralHandParams
) -> np.ndarray:
    """``V×21`` weights: softmax over each part's distance (temperature ``skin_temperature_mm``), then a few
    rounds of neighbour averaging on the surface so that joints bend smoothly. Tips get no weight."""
    d = np.stack([_part_sdf(verts, part, params.phalanx_blend_mm) for part in parts], 1)
    logits = -d / params.skin_temperature_mm
    logits -= logits.max(1, keepdims=True)
    w_parts = np.exp(logits)
    w_parts /= w_parts.sum(1, keepdims=True)
    weights = np.zeros((len(verts), NUM_JOINTS))
    for k, part in enumerate(parts):
        weights[:, part.joint] += w_parts[:, k]
    adj = _vertex_adjacency(faces, len(verts))
    adj = adj + sp.eye(len(verts))
    norm = sp.diags(1.0 / np.asarray(adj.sum(1)).ravel()) @ adj
    for _ in range(params.skin_smoothing_iterations):
        weights = norm @ weights
    weights[weights < 1e-4] = 0.0
    return weights / weights.sum(1, keepdims=True)


def _joint_axes(joints: np.ndarray) -> np.ndarray:
    """Unit axis per joint: the bone leaving it (the bone arriving for tips, the forearm axis for the wrist)."""
    axes = np.zeros_like(joints)
    axes[0] = (0.0, -1.0, 0.0)
    for j in range(1, NUM_JOINTS):
        child = j + 1 if j % 4 != 0 else None
        d = joints[child] - joints[j] if child is not None else joints[j] - joints[PARENTS[j]]
        axes[j] = d / np.linalg.norm(d)
    return axes


def joint_regressor(
    verts: np.ndarray,
    joints: np.ndarray,
    skin_weights: np.ndarray,
    neighbours: int,
    ridge: float = 1.0,
    slab_mm: float = 4.0,
) -> np.ndarray:
    """``21×V`` sparse convex weights reproducing each joint from a ring of vertices around it.

    The ring is the ``neighbours`` vertices nearest the joint within a slab across its bone (so that the ring
    encloses the joint even where the decimated mesh is denser on one side), taken only from vertices mostly
    skinned to the joint, its parent or its children (never a neighbouring finger); tips use their nearest
    such vertices.
    Weights are non-negative, sum to one and fit the joint by least squares with a small pull towards uniform
    weights so the ring shares the load, which keeps the regressed joint centred when the mesh is posed.
    """
    reg = np.zeros((len(joints), len(verts)))
    axes = _joint_axes(joints)
    tips = {finger_joints(f)[3] for f in FINGERS}
    for j, target in enumerate(joints):
        family = (
            [j]
            + ([PARENTS[j]] if PARENTS[j] >= 0 else [])
            + [c for c in range(NUM_JOINTS) if PARENTS[c] == j]
        )
        own = skin_weights[:, family].sum(1) > 0.5
        dist = np.where(own, np.linalg.norm(verts - target, axis=1), np.inf)
        if j in tips:
            idx = np.argsort(dist)[:neighbours]
        else:
            height = np.abs((verts - target) @ axes[j])
            slab = slab_mm
            while (own & (height < slab)).sum() < neighbours:
                slab *= 1.5
            cand = np.flatnonzero(own & (height < slab))
            idx = cand[np.argsort(dist[cand])[:neighbours]]
        pts = verts[idx]
        k = len(idx)
        big = 1e3
        a = np.vstack([pts.T, np.sqrt(ridge) * np.eye(k), big * np.ones((1, k))])
        b = np.concatenate([target, np.sqrt(ridge) * np.full(k, 1.0 / k), [big]])
        w, _ = nnls(a, b, maxiter=50 * k)
        reg[j, idx] = w / w.sum()
    return reg


@dataclass(frozen=True)
class ProceduralMesh:
    """Arrays of a built procedural hand (numpy, rest pose, mm)."""

    vertices: np.ndarray
    faces: np.ndarray
    skin_weights: np.ndarray
    joint_regressor: np.ndarray


def build_procedural_mesh(
    params: ProceduralHandParams | None = None, rest: RestSkeleton = CANONICAL_REST
) -> ProceduralMesh:
    """Build the procedural hand from scratch (a few seconds); see :func:`load_procedural_mesh` for the cache."""
    params = params or ProceduralHandParams()
    parts = _parts(params, rest)
    verts, faces = _surface(parts, params, rest)
    verts, faces = _largest_component(verts, faces)
    verts, faces = _simplify(verts, faces, params.target_vertices)
    weights = skinning_weights(verts, faces, parts, params)
    regressor = joint_regressor(verts, rest.joints.double().numpy(), weights, params.regressor_neighbours)
    return ProceduralMesh(
        verts.astype(np.float32),
        faces.astype(np.int64),
        weights.astype(np.float32),
        regressor.astype(np.float32),
    )


def load_procedural_mesh(
    params: ProceduralHandParams | None = None,
    cache_dir: str | os.PathLike | None = None,
    rest: RestSkeleton = CANONICAL_REST,
) -> ProceduralMesh:
    """The procedural hand, read from ``cache_dir`` (default :func:`default_cache_dir`) when built before,
    otherwise built and written there atomically (safe when several processes build at once)."""
    params = params or ProceduralHandParams()
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"procedural-hand-{params.key(rest)}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return ProceduralMesh(
                    *(data[k] for k in ("vertices", "faces", "skin_weights", "joint_regressor"))
                )
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache entry is rebuilt below
    mesh = build_procedural_mesh(params, rest)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **asdict(mesh))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return mesh
