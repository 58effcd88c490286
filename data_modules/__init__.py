"""LightningDataModules for the synthetic hand videos, STB and MHP, and the clip pipeline they share."""

from .base import HandClipDataModule, deterministic_split
from .records import FrameRecord, VideoRecord
from .synthetic import SyntheticDataModule

__all__ = ["FrameRecord", "HandClipDataModule", "SyntheticDataModule", "VideoRecord", "deterministic_split"]
