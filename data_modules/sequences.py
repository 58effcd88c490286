"""The data module of a dataset of named sequences under one folder (STB, MHP), written once.

A dataset subclasses :class:`SequenceDataModule`, names itself and its sequences (:attr:`~SequenceDataModule.dataset_name`,
:attr:`~SequenceDataModule.sequences`) and implements one hook, :meth:`~SequenceDataModule.scan_sequence`: the videos
of one sequence, adding to a :class:`~data_modules.layout.LayoutProblems` everything that is missing or malformed.
The base checks the sequence names of each split, checks the root, reads every sequence of every split once
(one error lists all that is wrong with the folder) and serves the splits from that cache.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .base import SPLITS, HandClipDataModule
from .layout import LayoutProblems
from .records import VideoRecord

log = logging.getLogger(__name__)

#: ``(sequence, problems) → videos``: how a dataset reads one sequence.
ScanSequence = Callable[[str, LayoutProblems], list[VideoRecord]]


def check_sequence_names(names: Sequence[str], known: Sequence[str], dataset: str, argument: str) -> list[str]:
    """``names`` as a list, after checking each against the dataset's ``known`` sequences."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{argument}: unknown {dataset} sequence(s) {unknown}; expected names from {tuple(known)}")
    return list(names)


def load_sequences(
    dataset: str, root: Path | str, sequences: Iterable[str], scan: ScanSequence
) -> dict[str, list[VideoRecord]]:
    """``{sequence: its videos}`` for ``sequences`` under ``root``, each read by ``scan``.

    Raises :class:`~data_modules.layout.DatasetLayoutError` listing every missing sequence, file or variable.
    """
    root = Path(root)
    problems = LayoutProblems(dataset, root)
    if not root.is_dir():
        problems.add(f"dataset root {root} does not exist or is not a folder")
        problems.raise_if_any()
    videos = {s: scan(s, problems) for s in sequences}
    problems.raise_if_any()
    return videos


class SequenceDataModule(HandClipDataModule):
    """Clips of a dataset whose videos come in named sequences under ``root``.

    Args:
        root: the dataset's folder.
        train_sequences, val_sequences, test_sequences: the sequences of each split (``val_sequences=None``: the
            test sequences); the predict split is the test split.
        **kwargs: the clip settings of :class:`~data_modules.base.HandClipDataModule` (clip_len, crop_size, …).
    """

    #: the dataset's name in messages (``STB``).
    dataset_name: ClassVar[str]
    #: every sequence name the dataset has.
    sequences: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        root: str,
        train_sequences: Sequence[str],
        val_sequences: Sequence[str] | None,
        test_sequences: Sequence[str],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.root = Path(root)
        train = self.check_sequence_names(train_sequences, "train_sequences")
        test = self.check_sequence_names(test_sequences, "test_sequences")
        val = test if val_sequences is None else self.check_sequence_names(val_sequences, "val_sequences")
        self.splits = {"train": train, "val": val, "test": test, "predict": test}
        self._videos: dict[str, list[VideoRecord]] | None = None

    @classmethod
    def check_sequence_names(cls, names: Sequence[str], argument: str) -> list[str]:
        """Validate user-given sequence names against :attr:`sequences`."""
        return check_sequence_names(names, cls.sequences, cls.dataset_name, argument)

    @abstractmethod
    def scan_sequence(self, sequence: str, problems: LayoutProblems) -> list[VideoRecord]:
        """The videos of one sequence under :attr:`root`; adds to ``problems`` whatever is missing or malformed."""

    @property
    def data_root(self) -> Path:
        return self.root

    def videos_by_sequence(self) -> dict[str, list[VideoRecord]]:
        """Every sequence of every split, read once; one error lists all that is wrong with the folder."""
        if self._videos is None:
            wanted = list(dict.fromkeys(s for split in ("train", "val", "test") for s in self.splits[split]))
            self._videos = load_sequences(self.dataset_name, self.root, wanted, self.scan_sequence)
        return self._videos

    def prepare_dataset(self) -> None:
        videos = [v for vs in self.videos_by_sequence().values() for v in vs]
        log.info("%s %s: %d sequences, %d videos, %d frames", self.dataset_name, self.root, len(self.videos_by_sequence()),
                 len(videos), sum(len(v) for v in videos))

    def load_videos(self, split: str) -> list[VideoRecord]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        videos = self.videos_by_sequence()
        return [v for s in self.splits[split] for v in videos[s]]
