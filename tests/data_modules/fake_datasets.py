"""Tiny copies of STB and MHP in their original file formats, built from a known 3D hand.

Everything here is written from the published format descriptions on purpose without the package's own
conversion code, so that tests compare two independent implementations: rotations come from scipy's
``Rotation``, projections and lens distortion are written out by hand, joint orders are spelled by name.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import scipy.io
from scipy.spatial.transform import Rotation

FINGERS = ("thumb", "index", "middle", "ring", "little")
SLOTS = ("mcp", "pip", "dip", "tip")
CANONICAL = ("wrist",) + tuple(f"{f}_{s}" for f in FINGERS for s in SLOTS)

# ---------------------------------------------------------------- the known hand


def right_hand_mm(center: tuple[float, float, float] = (0.0, 0.0, 450.0)) -> np.ndarray:
    """A fixed right hand, 21×3 mm in canonical order (wrist first), fingers pointing up the image (−y)."""
    mcp = {
        "thumb": (-38.0, 22.0, 8.0),
        "index": (-24.0, -28.0, 2.0),
        "middle": (-4.0, -33.0, 0.0),
        "ring": (15.0, -30.0, 3.0),
        "little": (31.0, -22.0, 6.0),
    }
    direction = {
        "thumb": (-0.55, -0.80, -0.24),
        "index": (-0.10, -0.98, -0.17),
        "middle": (0.0, -0.99, -0.14),
        "ring": (0.10, -0.98, -0.17),
        "little": (0.22, -0.95, -0.22),
    }
    lengths = {"thumb": 30.0, "index": 36.0, "middle": 40.0, "ring": 37.0, "little": 28.0}
    joints = [np.array([0.0, 62.0, 4.0])]
    for finger in FINGERS:
        d = np.array(direction[finger]) / np.linalg.norm(direction[finger])
        base = np.array(mcp[finger])
        bone = lengths[finger]
        for k, scale in enumerate((0.0, 1.0, 1.65, 2.15)):
            joints.append(base + d * bone * scale + np.array([0.0, 0.0, 1.5 * k]))
    return np.stack(joints) + np.asarray(center)


def rule_anchor_factor(rule: str) -> tuple[int, float]:
    """(canonical index of the metacarpal the wrist is extrapolated from, factor) as published."""
    return {
        "ring": (CANONICAL.index("ring_mcp"), 2.0),
        "middle": (CANONICAL.index("middle_mcp"), 2.2),
        "idein": (CANONICAL.index("middle_mcp"), 2.0),
    }[rule]


def palm_for_wrist(joints: np.ndarray, rule: str = "ring") -> np.ndarray:
    """The palm centre (…×3) that ``rule`` turns into the wrist in slot 0 of ``joints`` (…×21×3)."""
    anchor, factor = rule_anchor_factor(rule)
    return joints[..., anchor, :] + (joints[..., 0, :] - joints[..., anchor, :]) / factor


def pinhole(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    x = points[..., 0] / points[..., 2]
    y = points[..., 1] / points[..., 2]
    return np.stack([K[0, 0] * x + K[0, 2], K[1, 1] * y + K[1, 2]], axis=-1)


def distorted_pinhole(points: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Brown–Conrady (k1, k2, p1, p2, k3) written out, as OpenCV documents it."""
    k1, k2, p1, p2, k3 = dist
    x = points[..., 0] / points[..., 2]
    y = points[..., 1] / points[..., 2]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([K[0, 0] * xd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=-1)


def blob_image(path: Path, size: tuple[int, int], points: np.ndarray, seed: int = 0) -> None:
    """A textured background with a skin-coloured blob over the hand's keypoints, written with OpenCV."""
    w, h = size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
    hull = cv2.convexHull(np.round(points).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(image, hull, (120, 160, 220))
    for p in np.round(points).astype(int):
        cv2.circle(image, (int(p[0]), int(p[1])), 4, (140, 180, 235), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def hand_motion(n: int, base: np.ndarray, step: tuple[float, float, float] = (3.0, -2.0, 1.0)) -> np.ndarray:
    """``n`` frames of ``base`` translated a little more each frame (so frame order is observable)."""
    return np.stack([base + i * np.asarray(step) for i in range(n)])


# ---------------------------------------------------------------- STB

STB_K_COLOR = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
STB_RVEC = np.array([0.00531, -0.01196, 0.00301])
STB_T = np.array([-24.0381, -0.4563, -1.2326])
STB_FILE_ORDER = ("palm",) + tuple(
    f"{f}_{s}" for f in ("little", "ring", "middle", "index", "thumb") for s in SLOTS
)


def stb_hand_para(joints_color: np.ndarray, rule: str = "ring") -> np.ndarray:
    """``handPara`` 3×21×N for canonical colour-camera joints N×21×3: palm, file order, depth camera."""
    palm = palm_for_wrist(joints_color, rule)
    named = {name: joints_color[:, i] for i, name in enumerate(CANONICAL)}
    named["palm"] = palm
    file_order = np.stack([named[n] for n in STB_FILE_ORDER], axis=1)  # N×21×3, colour camera
    # X_color = Rᵀ(X_depth − t)  ⇔  X_depth = R·X_color + t
    rotation = Rotation.from_rotvec(STB_RVEC).as_matrix()
    depth = np.einsum("ij,nkj->nki", rotation, file_order) + STB_T
    return depth.transpose(2, 1, 0)


def write_stb(
    root: Path,
    sequences: dict[str, np.ndarray],
    rule: str = "ring",
    nested: bool = False,
    image_size: tuple[int, int] = (640, 480),
) -> Path:
    """Write ``<root>/<seq>/SK_color_<i>.png`` (or under ``images/``) and ``labels/<seq>_SK.mat``.

    ``sequences`` maps a name to canonical colour-camera joints N×21×3 (the hand the loader must return).
    """
    root = Path(root)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for s, (name, joints) in enumerate(sequences.items()):
        scipy.io.savemat(root / "labels" / f"{name}_SK.mat", {"handPara": stb_hand_para(joints, rule)})
        folder = root / "images" / name if nested else root / name
        for i, frame in enumerate(joints):
            blob_image(folder / f"SK_color_{i}.png", image_size, pinhole(frame, STB_K_COLOR), seed=100 * s + i)
    return root


# ---------------------------------------------------------------- MHP

MHP_K = np.array([[614.878, 0.0, 313.219], [0.0, 615.479, 231.288], [0.0, 0.0, 1.0]])
MHP_DIST = np.array([0.092701, -0.175877, -0.0035687, -0.00302299, 0.0])
MHP_CODES = {"index": "F4", "middle": "F3", "ring": "F2", "little": "F1", "thumb": "TH"}
MHP_KNUCKLES = {"mcp": "KNU1_B", "pip": "KNU1_A", "dip": "KNU2_A", "tip": "KNU3_A"}
MHP_LINE_ORDER = tuple(
    f"{code}_{knu}" for code in ("F4", "F3", "F1", "F2", "TH") for knu in ("KNU1_A", "KNU1_B", "KNU2_A", "KNU3_A")
) + ("PALM_POSITION",)

#: Four webcams around a hand near the world origin, ~500 mm away.
MHP_CAMERAS: dict[int, tuple[np.ndarray, np.ndarray]] = {
    1: (np.array([0.05, -0.10, 0.02]), np.array([10.0, -5.0, 500.0])),
    2: (np.array([-0.08, 0.30, -0.04]), np.array([-30.0, 8.0, 520.0])),
    3: (np.array([0.20, -0.25, 0.10]), np.array([25.0, 15.0, 480.0])),
    4: (np.array([-0.15, 0.05, 0.30]), np.array([0.0, -20.0, 540.0])),
}


def mhp_camera(points_world: np.ndarray, webcam: int) -> np.ndarray:
    rvec, tvec = MHP_CAMERAS[webcam]
    return points_world @ Rotation.from_rotvec(rvec).as_matrix().T + tvec


def mhp_joints_text(joints_world: np.ndarray, rule: str = "ring", drop_last: int = 0) -> str:
    """The 22 lines of a ``<f>_joints.txt`` for canonical world joints 21×3 (palm derived with ``rule``)."""
    named = {}
    for finger, code in MHP_CODES.items():
        for slot, knu in MHP_KNUCKLES.items():
            named[f"{code}_{knu}"] = joints_world[CANONICAL.index(f"{finger}_{slot}")]
    named["PALM_POSITION"] = palm_for_wrist(joints_world, rule)
    lines = [f"{n} {v[0]:.6f} {v[1]:.6f} {v[2]:.6f}" for n, v in ((n, named[n]) for n in MHP_LINE_ORDER)]
    lines.append("PALM_NORMAL 0.010000 -0.990000 0.120000")
    return "\n".join(lines[: len(lines) - drop_last]) + "\n"


def mhp_bbox(joints_world: np.ndarray, webcam: int, margin: int = 12) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) around the distorted projection, as the bbox files store it."""
    px = distorted_pinhole(mhp_camera(joints_world, webcam), MHP_K, MHP_DIST)
    x0, y0 = np.floor(px.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(px.max(axis=0)).astype(int) + margin
    return int(y0), int(x0), int(y1), int(x1)


def write_mhp(
    root: Path,
    sequences: dict[str, dict[int, np.ndarray]],
    webcams: tuple[int, ...] = (1, 2, 3, 4),
    rule: str = "ring",
    image_size: tuple[int, int] = (640, 480),
) -> Path:
    """Write ``annotated_frames``, ``bounding_boxes`` and ``calibrations`` for ``{seq: {frame id: world 21×3}}``."""
    root = Path(root)
    for s, (name, frames) in enumerate(sequences.items()):
        ann = root / "annotated_frames" / name
        boxes = root / "bounding_boxes" / name
        ann.mkdir(parents=True, exist_ok=True)
        boxes.mkdir(parents=True, exist_ok=True)
        for c in webcams:
            calib = root / "calibrations" / name / f"webcam_{c}"
            calib.mkdir(parents=True, exist_ok=True)
            rvec, tvec = MHP_CAMERAS[c]
            for file, value in (("rvec.pkl", rvec.reshape(3, 1)), ("tvec.pkl", tvec.reshape(3, 1))):
                with (calib / file).open("wb") as f:
                    pickle.dump(value, f, protocol=2)
        for f, joints in frames.items():
            (ann / f"{f}_joints.txt").write_text(mhp_joints_text(joints, rule))
            for c in webcams:
                px = distorted_pinhole(mhp_camera(joints, c), MHP_K, MHP_DIST)
                blob_image(ann / f"{f}_webcam_{c}.jpg", image_size, px, seed=1000 * s + 10 * f + c)
                top, left, bottom, right = mhp_bbox(joints, c)
                (boxes / f"{f}_bbox_{c}.txt").write_text(
                    f"TOP {top}\nLEFT {left}\nBOTTOM {bottom}\nRIGHT {right}\n"
                )
    return root
