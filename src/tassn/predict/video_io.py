"""Reading a user's video (any file OpenCV decodes, or a folder of frames) and writing MP4.

Frames travel as RGB ``uint8`` arrays ``H×W×3`` everywhere in :mod:`tassn.predict`; OpenCV's BGR stays inside
this module. Reading is streamed so a long video never has to fit in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

#: Image files a frame folder may hold (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Frame rate assumed for a folder of frames, or for a video whose container does not say.
DEFAULT_FPS = 30.0


class VideoReadError(ValueError):
    """The input cannot be read as a video or a folder of frames."""


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a frame source before reading it all.

    num_frames: exact for a folder; for a video file the container's count, which some containers get wrong
    (the reader stops at the real end either way).
    """

    path: Path
    fps: float
    width: int
    height: int
    num_frames: int
    is_folder: bool


def _natural_key(path: Path) -> list[int | str]:
    """Sort ``frame_2.png`` before ``frame_10.png``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def check_frame_numbers(files: list[Path]) -> None:
    """Refuse a frame folder whose numbered names skip a number: a clip would treat the jump as one frame.

    Only names that all end in a number are checked (``frame_0001.png``); other folders are taken in name order.
    """
    numbers = [int(m.group(1)) for p in files if (m := re.search(r"(\d+)$", p.stem))]
    if len(numbers) != len(files):
        return
    for (a, pa), (b, pb) in zip(zip(numbers, files, strict=True), zip(numbers[1:], files[1:], strict=True),
                                strict=False):
        if b - a != 1:
            raise VideoReadError(
                f"frame folder {pa.parent} skips from {pa.name} to {pb.name} ({b - a - 1} frame(s) missing); "
                "expected consecutive frame numbers so that no clip spans a gap: restore the missing frames "
                "or split the folder at the gap"
            )


def _read_image_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoReadError(f"cannot read frame image {path}: OpenCV could not decode it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class FrameSource:
    """The frames of a video file or of a folder of images, in order, as RGB ``uint8`` ``H×W×3``.

    Opening checks the input at once (it exists, decodes, is not empty) so a bad path fails before any model
    is loaded. ``max_frames`` stops early (handy for a quick look at a long video).
    """

    def __init__(self, path: str | Path, fps: float | None = None, max_frames: int | None = None) -> None:
        self.path = Path(path)
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.max_frames = max_frames
        if not self.path.exists():
            raise VideoReadError(f"video {self.path} does not exist; expected a video file or a folder of frames")
        if self.path.is_dir():
            self._files = sorted(
                (p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                key=_natural_key,
            )
            if not self._files:
                raise VideoReadError(
                    f"frame folder {self.path} holds no images; expected files ending in "
                    f"{', '.join(IMAGE_SUFFIXES)}"
                )
            check_frame_numbers(self._files)
            first = _read_image_rgb(self._files[0])
            count = len(self._files)
            native_fps = DEFAULT_FPS
        else:
            self._files = []
            capture = self._open_capture()
            ok, bgr = capture.read()
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            native_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            capture.release()
            if not ok or bgr is None:
                raise VideoReadError(
                    f"cannot read video {self.path}: OpenCV opened it but decoded no frame; expected a video "
                    "with at least one frame"
                )
            first = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            count = max(count, 1)
        if max_frames is not None:
            count = min(count, max_frames)
        chosen_fps = fps if fps is not None else (native_fps if native_fps > 0 else DEFAULT_FPS)
        if chosen_fps <= 0:
            raise ValueError(f"fps must be positive, got {chosen_fps}")
        self.info = VideoInfo(
            path=self.path,
            fps=float(chosen_fps),
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            num_frames=count,
            is_folder=self.path.is_dir(),
        )

    def _open_capture(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise VideoReadError(
                f"cannot read video {self.path}: OpenCV could not open it; expected a video file OpenCV can "
                f"decode (e.g. .mp4, .avi, .mov) or a folder of {'/'.join(IMAGE_SUFFIXES)} frames"
            )
        return capture

    def __len__(self) -> int:
        return self.info.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        limit = self.max_frames if self.max_frames is not None else np.inf
        size = (self.info.height, self.info.width)
        if self.info.is_folder:
            for index, file in enumerate(self._files):
                if index >= limit:
                    return
                frame = _read_image_rgb(file)
                if frame.shape[:2] != size:
                    raise VideoReadError(
                        f"frame {file} is {frame.shape[1]}×{frame.shape[0]} but the first frame of {self.path} "
                        f"is {size[1]}×{size[0]}; every frame of a folder must have the same size"
                    )
                yield frame
            return
        capture = self._open_capture()
        try:
            index = 0
            while index < limit:
                ok, bgr = capture.read()
                if not ok or bgr is None:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()


def read_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """All frames of a (short) video or folder at once: ``N×H×W×3`` RGB ``uint8``."""
    return np.stack(list(FrameSource(path, max_frames=max_frames)))


class Mp4Writer:
    """Writes RGB ``uint8`` frames to an MP4 file.

    Uses OpenCV's ``mp4v`` encoder where the OpenCV build has it and falls back to imageio-ffmpeg (H.264) where
    it does not, so the overlay video is written on any machine with either library.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        """``size`` is ``(width, height)`` in pixels."""
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.frames_written = 0
        self.backend = "opencv"
        self._cv: cv2.VideoWriter | None = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size
        )
        self._ff = None
        if not self._cv.isOpened():
            self._cv.release()
            self._cv = None
            self._ff = self._open_ffmpeg()
            self.backend = "imageio-ffmpeg"

    def _open_ffmpeg(self):  # noqa: ANN202 - a generator from imageio-ffmpeg
        try:
            import imageio_ffmpeg
        except ImportError as err:
            raise RuntimeError(
                f"cannot write {self.path}: OpenCV has no mp4v encoder here and imageio-ffmpeg is not installed "
                "(pip install imageio-ffmpeg)"
            ) from err
        writer = imageio_ffmpeg.write_frames(
            str(self.path), self.size, fps=self.fps, codec="libx264", macro_block_size=1,
            output_params=["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"],
        )
        writer.send(None)
        return writer

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB ``uint8`` ``H×W×3`` frame of the writer's size."""
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame for {self.path} must be uint8 {self.size[1]}×{self.size[0]}×3, got {frame.dtype} "
                f"{'×'.join(map(str, frame.shape))}"
            )
        if self._cv is not None:
            self._cv.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        else:
            self._ff.send(np.ascontiguousarray(frame))
        self.frames_written += 1

    def close(self) -> None:
        if self._cv is not None:
            self._cv.release()
            self._cv = None
        if self._ff is not None:
            self._ff.close()
            self._ff = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
