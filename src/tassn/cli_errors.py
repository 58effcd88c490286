"""Short command-line errors: the offending config key and its nearest valid keys, not 60 lines of usage.

jsonargparse answers a typo in a config key (``trainer.max_epoch``) with the whole usage of the subcommand, the
error at the very end. :class:`TassnArgumentParser` prints the key and the closest valid keys first, then the
parser's own message, then where to find every option — and exits with status 2 as before.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

from lightning.pytorch.cli import LightningArgumentParser

from tassn.config_trust import init_parameters

_UNKNOWN = re.compile(r"(?:does not accept option|[Oo]ption|[Kk]ey) '([\w.\-]+)'(?: is not accepted| is not expected)?")
_PARSER_KEY = re.compile(r'Parser key "([\w.]+)"')
_CLASS_PATH = re.compile(r"class_path '([\w.]+)'")
#: Packages whose classes may be inspected for their argument names (already imported; nothing is imported here).
_INSPECTABLE = ("tassn.", "data_modules.", "lightning.", "torch.")


def option_keys(parser: Any) -> list[str]:
    """Every dotted option a parser accepts (``trainer.max_epochs``, ``model``, …)."""
    return [a.dest for a in getattr(parser, "_actions", []) if a.dest and a.dest not in ("help", "config")]


def class_arguments(class_path: str) -> list[str]:
    """The ``__init__`` argument names of an already-imported class of the package's families ([] otherwise),
    through ``**kwargs`` to its bases' as LightningCLI shows them."""
    module_name, _, name = class_path.rpartition(".")
    module = sys.modules.get(module_name)
    if not class_path.startswith(_INSPECTABLE) or module is None or not inspect.isclass(getattr(module, name, None)):
        return []
    return list(init_parameters(getattr(module, name)))


def nearest(key: str, candidates: Iterable[str], count: int = 3) -> list[str]:
    """The ``count`` candidates closest to ``key`` (whole key first, then its last part)."""
    candidates = sorted(set(candidates))
    found = difflib.get_close_matches(key, candidates, n=count, cutoff=0.6)
    if len(found) < count:
        tails = {c.rsplit(".", 1)[-1]: c for c in candidates}
        extra = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tails), n=count, cutoff=0.6)
        found += [tails[t] for t in extra if tails[t] not in found]
    return found[:count]


def unknown_key_hint(message: str, parser: Any) -> str | None:
    """``unknown config key 'K'; nearest valid keys: …`` for a parser message about an unknown key, else None."""
    unknown = _UNKNOWN.search(message)
    if unknown is None:
        return None
    key = unknown.group(1)
    parent = _PARSER_KEY.search(message)
    class_path = _CLASS_PATH.search(message)
    if class_path is not None:
        prefix = f"{parent.group(1)}.init_args." if parent else ""
        candidates = [prefix + a for a in class_arguments(class_path.group(1))]
        key, where = prefix + key, f" (an argument of {class_path.group(1)})"
    else:
        candidates, where = option_keys(parser), ""
    close = nearest(key, candidates)
    suggestion = f"; nearest valid keys: {', '.join(close)}" if close else ""
    return f"unknown config key '{key}'{where}{suggestion}"


class TassnArgumentParser(LightningArgumentParser):
    """LightningCLI's parser with short errors (module doc)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        hint = unknown_key_hint(message, parser)
        lines = [f"{prog}: error: {hint}"] if hint else []
        lines.append(f"{prog}: error: {message.strip()}")
        lines.append(f"(every option: {prog} --help)")
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2)
