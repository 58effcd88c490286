"""Run a trained model on a user's hand video: 2D/3D keypoints, meshes and an overlay video.

``predict_video`` (also ``python -m tassn.predict`` and ``tassn predict --video …``) is the one prediction path;
the submodules are its parts: reading/writing video (:mod:`.video_io`), choosing hand crops (:mod:`.hand_crop`,
tracking in :mod:`.tracking`), the network's forward and reversed passes (:mod:`.passes`), output files
(:mod:`.writers`), heatmap decoding (:mod:`.decode`), the checkpoint (:mod:`.model`), overlay frames
(:mod:`.overlay`, :mod:`.view3d`) and the run itself (:mod:`.runner`).
``predict_video`` is imported on first use, so the network-free parts (video, crops, writers) import without the networks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["predict_video"]


def __getattr__(name: str) -> Any:
    # Lazy: importing tassn.predict.video_io must not import the networks.
    if name == "predict_video":
        from .runner import predict_video

        return predict_video
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
