"""The stage tests' fixtures live in stage_fixtures.py, which tests/test_cli.py and tests/test_configs.py share."""

from stage_fixtures import *  # noqa: F401,F403
