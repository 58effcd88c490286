"""Run a trained model on a user's hand video: 2D/3D keypoints, meshes and an overlay video.

``predict_video`` (also ``python -m tassn.predict`` and ``tassn predict --video …``) is the entry point; the
submodules are its parts: reading/writing video (:mod:`.video_io`), choosing hand crops (:mod:`.hand_crop`,
tracking in :mod:`.tracking`), output files (:mod:`.writers`), heatmap decoding (:mod:`.decode`), the checkpoint (:mod:`.model`), overlay frames
(:mod:`.overlay`, :mod:`.view3d`) and the loop itself (:mod:`.runner`); :mod:`.prediction_writer` writes the same
run folder from the LightningCLI ``predict`` subcommand with :class:`data_modules.video.VideoDataModule`.
The network-free parts import without torch models so data modules can use them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["predict_video"]


def __getattr__(name: str) -> Any:
    # Lazy: importing tassn.predict.video_io (e.g. from a data module) must not import the networks.
    if name == "predict_video":
        from .runner import predict_video

        return predict_video
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
