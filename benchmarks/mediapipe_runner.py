"""MediaPipe Hands over lists of frames, run inside MediaPipe's own virtual environment (mediapipe 0.10.21 needs
numpy < 2 and protobuf < 5, which the project's environment does not have), so it imports only mediapipe, numpy
and OpenCV. ``benchmarks/peer_mediapipe.py`` calls it and scores the output with the project's metrics::

    .venv-mediapipe/bin/python benchmarks/mediapipe_runner.py frames.json out.npz

``frames.json``: ``{"videos": [{"name": str, "frames": [image path, …]}, …], "modes": ["static", "tracking"]}``.
``out.npz``, per mode ``m``, frames in the input order (videos concatenated):
``m/image F×21×2`` original-image pixels (pixel centres at integers; NaN where no hand was found),
``m/world F×21×3`` MediaPipe's metric world landmarks in mm (hand-centred), ``m/found F`` bool,
``m/seconds F`` the wall time of each ``process`` call; ``version`` MediaPipe's. Tracking mode starts a fresh tracker per video.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

MODES = {"static": True, "tracking": False}  # mode → static_image_mode


def read_rgb(path: str) -> np.ndarray:
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"mediapipe_runner: cannot read image {path}: missing or not an image file")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def run_video(paths: list[str], static: bool) -> dict[str, np.ndarray]:
    """One video through one ``Hands`` instance (so tracking never carries across videos)."""
    import mediapipe as mp

    n = len(paths)
    out = {"image": np.full((n, 21, 2), np.nan), "world": np.full((n, 21, 3), np.nan),
           "found": np.zeros(n, dtype=bool), "seconds": np.zeros(n)}
    with mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=1, model_complexity=1,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5) as hands:
        for i, path in enumerate(paths):
            rgb = read_rgb(path)
            start = time.perf_counter()
            result = hands.process(rgb)
            out["seconds"][i] = time.perf_counter() - start
            if not result.multi_hand_landmarks:
                continue
            h, w = rgb.shape[:2]
            # normalised coordinates span the image's edges: x·w − 0.5 puts pixel centres at integers
            lm = result.multi_hand_landmarks[0].landmark
            out["image"][i] = [(p.x * w - 0.5, p.y * h - 0.5) for p in lm]
            world = result.multi_hand_world_landmarks[0].landmark
            out["world"][i] = [(p.x * 1000.0, p.y * 1000.0, p.z * 1000.0) for p in world]
            out["found"][i] = True
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: mediapipe_runner.py FRAMES.json OUT.npz")
    spec = json.loads(Path(argv[0]).read_text())
    arrays: dict[str, np.ndarray] = {}
    for mode in spec["modes"]:
        if mode not in MODES:
            raise SystemExit(f"mediapipe_runner: {argv[0]}: unknown mode {mode!r}; expected one of {sorted(MODES)}")
        parts = [run_video(v["frames"], MODES[mode]) for v in spec["videos"]]
        for key in ("image", "world", "found", "seconds"):
            arrays[f"{mode}/{key}"] = np.concatenate([p[key] for p in parts])
        found = arrays[f"{mode}/found"]
        print(f"mediapipe {mode}: {int(found.sum())}/{len(found)} frames with a hand", file=sys.stderr)
    import mediapipe as mp

    np.savez(argv[1], version=np.array(mp.__version__), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
