"""One procedural hand per test session, built into a temporary cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tassn.hand.template import HandTemplate, load_template


@pytest.fixture(scope="session")
def hand_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hand-cache")


@pytest.fixture(scope="session")
def procedural(hand_cache_dir: Path) -> HandTemplate:
    return load_template("procedural", cache_dir=hand_cache_dir)
