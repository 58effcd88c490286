"""Dependency floors exclude releases with known loader or decoder holes, in setup.cfg and requirements.txt alike.

torch < 2.6 could run code through ``torch.load(weights_only=True)`` (CVE-2025-32434) and < 2.10 could corrupt
memory in the weights-only unpickler (CVE-2026-24747); opencv-python-headless < 4.8.1.78 bundles the libwebp heap
overflow (CVE-2023-4863), and frame folders accept ``.webp``.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"torch": Version("2.10"), "opencv-python-headless": Version("4.8.1.78")}


def requirements(lines: list[str]) -> dict[str, Requirement]:
    found = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
    return {r.name: r for r in found}


def sources() -> dict[str, dict[str, Requirement]]:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return {
        "setup.cfg": requirements(setup["options"]["install_requires"].splitlines()),
        "requirements.txt": requirements((ROOT / "requirements.txt").read_text().splitlines()),
    }


@pytest.mark.parametrize("source", ["setup.cfg", "requirements.txt"])
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_floors_exclude_vulnerable_releases(source: str, name: str) -> None:
    spec = sources()[source][name].specifier
    floor = FLOORS[name]
    assert spec.contains(str(floor), prereleases=False), f"{source}: {name}{spec} refuses {floor}"
    below = [v for v in ("2.5.1", "2.6.0", "2.9.1", "4.8.0.74", "4.8.1.77") if Version(v) < floor]
    assert not any(spec.contains(v) for v in below), f"{source}: {name}{spec} admits a release below {floor}"


def test_both_files_agree() -> None:
    setup, reqs = sources().values()
    assert {n: str(r.specifier) for n, r in setup.items()} == {n: str(r.specifier) for n, r in reqs.items()}
