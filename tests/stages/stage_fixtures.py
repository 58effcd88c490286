"""Fixtures: tiny networks, tiny synthetic videos and tiny configs for the stage, CLI and config tests.

Everything is written under pytest's temporary folders: the procedural hand and its graph are built once per
session into a temporary cache (``XDG_CACHE_HOME`` and ``graph_cache_dir``), datasets into ``tmp_path``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from stage_helpers import TINY_DATA, TINY_NET


@contextmanager
def cache_home(root: Path) -> Iterator[None]:
    """``XDG_CACHE_HOME`` pointed at ``root`` for the block (session fixtures cannot use monkeypatch)."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME")
        else:
            os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session cache holding the procedural hand and its graph hierarchy (built once)."""
    root = tmp_path_factory.mktemp("cache")
    with cache_home(root):
        from tassn.hand.graph import hierarchy_for
        from tassn.hand.template import load_template

        hierarchy_for(load_template("procedural"), levels=4, cache_dir=root / "graphs")
    return root


@pytest.fixture(autouse=True)
def isolated_env(cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_root))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.fixture
def net_args(cache_root: Path) -> dict:
    return {**TINY_NET, "graph_cache_dir": str(cache_root / "graphs")}


@pytest.fixture
def make_net(net_args: dict):
    from tassn.nets import PME

    def make(**overrides):
        torch.manual_seed(0)
        return PME(**{**net_args, **overrides})

    return make


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory, cache_root: Path) -> Path:
    """The tiny synthetic videos of both domains, generated once per session."""
    from data_modules.synthetic import SyntheticDataModule

    root = tmp_path_factory.mktemp("synthetic")
    with cache_home(cache_root):
        for domain, extra in (("target", {}), ("source", {"silhouettes": False})):
            SyntheticDataModule(root=str(root), domain=domain, **{**TINY_DATA, **extra}).prepare_data()
    return root


@pytest.fixture
def make_data(data_root: Path):
    from data_modules.synthetic import SyntheticDataModule

    def make(domain: str = "target", **overrides):
        extra = {"serve_3d_in_train": True, "silhouettes": False} if domain == "source" else {}
        return SyntheticDataModule(root=str(data_root), domain=domain, **{**TINY_DATA, **extra, **overrides})

    return make


@pytest.fixture
def write_configs(tmp_path: Path, net_args: dict, data_root: Path):
    """Write a stage's tiny config files (stage, data, trainer) into ``tmp_path``; returns their paths."""

    def write(stage_class: str, domain: str = "target", model: dict | None = None, trainer: dict | None = None,
              data: dict | None = None, name: str = "run") -> list[str]:
        data_args = {"root": str(data_root), "domain": domain, **TINY_DATA}
        if domain == "source":
            data_args.update(serve_3d_in_train=True, silhouettes=False)
        config = {
            "model": {
                "class_path": f"tassn.stages.{stage_class}",
                "init_args": {
                    "net": {"class_path": "tassn.nets.PME", "init_args": {**net_args}},
                    "lr": 1e-3,
                    **(model or {}),
                },
            },
            "data": {
                "class_path": "data_modules.synthetic.SyntheticDataModule",
                "init_args": {**data_args, **(data or {})},
            },
            "trainer": {
                "default_root_dir": str(tmp_path / name),
                "accelerator": "cpu",
                "devices": 1,
                "max_epochs": 1,
                "enable_model_summary": False,
                "log_every_n_steps": 1,
                **(trainer or {}),
            },
        }
        # the network's image_size follows data.init_args.crop_size (a CLI link)
        config["model"]["init_args"]["net"]["init_args"].pop("image_size")
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return ["--config", str(path)]

    return write
