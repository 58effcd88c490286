"""Makes the shared test helpers in this folder (e.g. ``tiny_pme``) importable from every test package."""

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require-cuda", action="store_true",
                     help="fail (not skip) the CUDA-marked tests where no CUDA device is available")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """CUDA-marked tests skip without a GPU, unless ``--require-cuda`` asks for one: then they fail loudly."""
    if torch.cuda.is_available() or config.getoption("--require-cuda"):
        return
    skip = pytest.mark.skip(reason="no CUDA device (pass --require-cuda to fail instead)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cuda_device() -> torch.device:
    if not torch.cuda.is_available():
        pytest.fail(f"a CUDA-marked test ran without a CUDA device (torch {torch.__version__})")
    return torch.device("cuda")
