"""Checking a dataset folder and reporting everything that is wrong with it in one error.

A user who points ``root`` at a half-copied dataset should read one message listing each missing sequence,
file and variable, not a stack trace from the first ``open`` that failed.
"""

from __future__ import annotations

from pathlib import Path


class DatasetLayoutError(ValueError):
    """The dataset folder does not have the expected files; ``problems`` lists each one."""

    def __init__(self, dataset: str, root: Path | str, problems: list[str], limit: int = 20) -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.problems = list(problems)
        shown = self.problems[:limit]
        lines = [f"{dataset} folder {self.root} is not usable ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in shown]
        if len(self.problems) > limit:
            lines.append(f"  … and {len(self.problems) - limit} more")
        lines.append(f"See docs/datasets.md for the expected layout of {dataset}.")
        super().__init__("\n".join(lines))


class LayoutProblems:
    """Collects problems while a folder is checked; :meth:`raise_if_any` turns them into one error.

    :meth:`missing_files` only stats files and lists the first few missing ones of a group (e.g. the frames of one
    sequence), then summarises the rest as a count, so an empty folder yields a few lines, not 1500.
    """

    def __init__(self, dataset: str, root: Path | str, limit: int = 20) -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.limit = limit
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def missing_files(self, paths: list[Path], what: str, per_group: int = 3) -> None:
        """Report the first ``per_group`` of ``paths`` that do not exist and how many more are missing."""
        missing = [p for p in paths if not p.is_file()]
        for p in missing[:per_group]:
            self.add(f"missing {what}: {p}")
        if len(missing) > per_group:
            self.add(f"… {len(missing) - per_group} more missing {what} files like {missing[per_group]}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise DatasetLayoutError(self.dataset, self.root, self.items, self.limit)
