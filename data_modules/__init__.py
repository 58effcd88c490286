"""LightningDataModules for the synthetic hand videos, STB and MHP, and the clip pipeline they share."""

from .base import HandClipDataModule, deterministic_split
from .records import FrameRecord, VideoRecord

__all__ = ["FrameRecord", "HandClipDataModule", "SyntheticDataModule", "VideoRecord", "deterministic_split"]


def __getattr__(name: str):
    # imported on first use so that `python -m data_modules.synthetic` does not import the module twice
    if name == "SyntheticDataModule":
        from .synthetic import SyntheticDataModule

        return SyntheticDataModule
    raise AttributeError(f"module 'data_modules' has no attribute {name!r}")
