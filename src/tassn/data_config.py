"""A parser of a `tassn fit` run's config files that reads only their ``data`` section.

For the commands that need the dataset but not the stage (``tassn prepare``, ``tassn train-detector``): they take
the same ``--config`` files as ``fit``, so a dataset is configured in one place.
"""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser

#: config sections of a `tassn fit` run that `tassn prepare` reads and ignores.
IGNORED_BY_PREPARE = ("model", "trainer", "checkpoint", "step_checkpoint", "optimizer", "lr_scheduler",
                      "seed_everything", "ckpt_path",
                      "weights_only")
PlainValue = dict | list | str | int | float | bool | None


def data_config_parser(prog: str, description: str) -> ArgumentParser:
    """A parser of ``--config`` files whose ``data`` section is a HandClipDataModule; the other sections of a
    `tassn fit` run are read and ignored."""
    from data_modules.base import HandClipDataModule

    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", action=ActionConfigFile, help="the config files of a `tassn fit` run")
    parser.add_subclass_arguments(HandClipDataModule, "data", required=True)
    for other in IGNORED_BY_PREPARE:
        # plain values, never Any: jsonargparse instantiates a class_path it finds in an Any-typed value
        parser.add_argument(f"--{other}", type=PlainValue, help="read and ignored (used by fit)")
    return parser
