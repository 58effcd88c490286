"""The look of the synthetic videos: textured backgrounds, skin albedo and Lambert shading.

Pure numpy/OpenCV functions of a ``numpy.random.Generator``, so a video's appearance is a function of its seed.
Backgrounds are textured on purpose (gradients, multi-scale noise, shapes): GrabCut and optical flow need
something to separate the hand from and something to track.
"""

from __future__ import annotations

import cv2
import numpy as np

from .zbuffer import Fragments, interpolate


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: int, channels: int = 3) -> np.ndarray:
    """Value noise in [0, 1]: a ``cells × cells`` random grid upsampled bicubically to ``size`` (H, W)."""
    grid = rng.random((cells + 1, cells + 1, channels)).astype(np.float32)
    out = cv2.resize(grid, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(size[0], size[1], channels), 0.0, 1.0)


def _random_colour(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def smooth_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Soft studio-like backdrop (source domain): a two-colour gradient, low-frequency noise, a few soft blobs."""
    c0 = _random_colour(rng, (0.05, 0.45), (0.25, 0.85))
    c1 = _random_colour(rng, (0.05, 0.45), (0.25, 0.85))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    img = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    img += 0.18 * (_smooth_noise(rng, (height, width), int(rng.integers(3, 7))) - 0.5)
    blobs = np.zeros((height, width, 3), np.float32)
    weight = np.zeros((height, width, 1), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        m = np.zeros((height, width), np.float32)
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(0.08, 0.3) * width), int(rng.uniform(0.08, 0.3) * height))
        cv2.ellipse(m, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        m = cv2.GaussianBlur(m, (0, 0), 0.04 * width + 1)[..., None]
        blobs += m * _random_colour(rng, (0.1, 0.5), (0.3, 0.9))
        weight += m
    a = np.clip(weight, 0, 0.6)
    img = img * (1 - a) + blobs / np.maximum(weight, 1e-6) * a
    return np.clip(img, 0, 1)


def busy_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Cluttered backdrop (target domain): multi-scale coloured noise, stripes and many hard-edged shapes."""
    base = _random_colour(rng, (0.2, 0.8), (0.2, 0.9))
    img = np.broadcast_to(base, (height, width, 3)).copy()
    for cells, amp in ((4, 0.35), (12, 0.2), (32, 0.12)):
        img += amp * (_smooth_noise(rng, (height, width), cells) - 0.5)
    if rng.random() < 0.6:  # stripes over part of the frame
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        a = rng.uniform(0, np.pi)
        period = rng.uniform(0.04, 0.15) * width
        stripes = (np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) / period) > 0).astype(np.float32)
        region = _smooth_noise(rng, (height, width), 2, 1) > 0.5
        img = np.where(region, img * 0.6 + 0.4 * stripes[..., None] * _random_colour(rng, (0.3, 1), (0.5, 1)), img)
    for _ in range(int(rng.integers(8, 20))):
        colour = tuple(float(c) for c in _random_colour(rng, (0.2, 1.0), (0.15, 1.0)))
        kind = rng.integers(0, 4)
        p = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        r = int(rng.uniform(0.03, 0.18) * width)
        if kind == 0:
            cv2.rectangle(img, p, (p[0] + r, p[1] + int(r * rng.uniform(0.3, 2))), colour, -1)
        elif kind == 1:
            cv2.circle(img, p, r, colour, -1, lineType=cv2.LINE_AA)
        elif kind == 2:
            q = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            cv2.line(img, p, q, colour, max(1, int(rng.uniform(0.005, 0.03) * width)), lineType=cv2.LINE_AA)
        else:
            pts = (np.array(p) + rng.uniform(-r, r, (int(rng.integers(3, 6)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, lineType=cv2.LINE_AA)
    img += 0.06 * (rng.random((height, width, 3)).astype(np.float32) - 0.5)  # fine grain
    return np.clip(img, 0, 1)


def skin_albedo(rng: np.random.Generator, tone: np.ndarray, rest_vertices: np.ndarray,
                rest_normals: np.ndarray, variation: float) -> np.ndarray:
    """Per-vertex albedo ``V×3`` in [0, 1]: the skin ``tone`` with a lighter palm and smooth blotches.

    The variation is a sum of random sinusoids of the rest position, so it moves with the skin (trackable).
    """
    v = np.asarray(rest_vertices, dtype=np.float64)
    pattern = np.zeros(len(v))
    for _ in range(4):
        k = rng.normal(size=3) / rng.uniform(8.0, 30.0)
        pattern += np.sin(v @ k + rng.uniform(0, 2 * np.pi))
    pattern /= 2.0
    palm = np.clip(-np.asarray(rest_normals)[:, 2], 0, 1)  # the palm faces −z in the rest pose
    shade = 1.0 + variation * pattern + 0.12 * palm
    redness = np.array([1.0, 0.97, 0.97]) + 0.04 * pattern[:, None] * np.array([1.0, -0.5, -0.5])
    return np.clip(tone[None] * shade[:, None] * redness, 0, 1)


def shade(
    frags: Fragments,
    faces: np.ndarray,
    camera_vertices: np.ndarray,
    normals: np.ndarray,
    albedo: np.ndarray,
    light_dir: np.ndarray,
    light_colour: np.ndarray,
    ambient: float,
    specular: float = 0.06,
) -> np.ndarray:
    """Lambert (+ a weak Blinn–Phong highlight) RGB ``H×W×3`` of the visible surface, zero off the mesh.

    Normals are interpolated per pixel and turned towards the camera, so the result does not depend on the mesh's
    winding. ``light_dir`` points from the light into the scene (camera frame).
    """
    n = interpolate(frags, faces, normals)
    n /= np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-9)
    p = interpolate(frags, faces, camera_vertices)
    view = -p / np.linalg.norm(p, axis=-1, keepdims=True).clip(1e-9)
    n *= np.where((n * view).sum(-1, keepdims=True) < 0, -1.0, 1.0)
    to_light = -np.asarray(light_dir, dtype=np.float64)
    to_light /= np.linalg.norm(to_light)
    lambert = np.clip(n @ to_light, 0, None)[..., None]
    half = to_light + view
    half /= np.linalg.norm(half, axis=-1, keepdims=True).clip(1e-9)
    spec = specular * np.clip((n * half).sum(-1, keepdims=True), 0, None) ** 24
    colour = interpolate(frags, faces, albedo)
    out = colour * light_colour * (ambient + (1.0 - ambient) * lambert) + spec * light_colour
    return np.where(frags.mask[..., None], out, 0.0)
