"""Configs and checkpoint hyper-parameters are data: they pick allow-listed classes and never choose a path.

A YAML config names classes (``class_path``) and callables that jsonargparse imports and calls, so a downloaded
config could run any importable code (``subprocess.Popen``). :func:`check_config` refuses every class or callable
outside :data:`ALLOWED_MODULES` before anything is instantiated. A checkpoint's hyper-parameters are merged into
a ``--ckpt_path`` run only through :func:`checkpoint_overrides`: plain numbers and flags, strings only from a
closed set of choices (a ``Literal``), never a path (``template`` only when ``procedural``), and never over what
the user passed.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from tassn.safe_load import UntrustedFileError

#: module prefixes whose classes and callables a config may name.
ALLOWED_MODULES: tuple[str, ...] = ("tassn", "data_modules", "lightning", "torch.optim")
#: the one ``template`` value a checkpoint may set (other names load files).
CHECKPOINT_TEMPLATES: tuple[str, ...] = ("procedural",)
#: how a ``--ckpt_path`` names a remote file; those are refused, never downloaded and unpickled.
REMOTE_PREFIXES: tuple[str, ...] = ("http://", "https://", "ftp://", "s3://", "gs://", "hf://", "registry:")


#: PME arguments that name files or folders: a checkpoint's value is never used for them.
NET_PATH_ARGUMENTS: tuple[str, ...] = ("template", "graph_cache_dir", "flow_checkpoint")


class UntrustedConfigError(UntrustedFileError):
    """A config or checkpoint asked for a class, callable or path that tassn does not take from files."""


def allowed_name(qualified: str) -> bool:
    """Whether ``module.name`` lies in one of :data:`ALLOWED_MODULES`."""
    return any(qualified == m or qualified.startswith(m + ".") for m in ALLOWED_MODULES)


def _walk(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every node under ``value`` (jsonargparse Namespaces, dicts and lists)."""
    yield key, value
    if hasattr(value, "items") and callable(value.items):
        for k, v in value.items():
            yield from _walk(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{key}[{i}]")


def check_config(config: Any, source: str = "the config") -> None:
    """Refuse any ``class_path`` or resolved callable outside :data:`ALLOWED_MODULES`, naming key and class."""
    for key, value in _walk(config, ""):
        if key.endswith("class_path") and isinstance(value, str):
            name = value
        elif inspect.isclass(value) or inspect.isroutine(value):  # a callable jsonargparse imported by name
            name = f"{getattr(value, '__module__', None) or 'builtins'}.{value.__qualname__}"
        elif isinstance(value, functools.partial):
            name = f"{getattr(value.func, '__module__', None)}.{getattr(value.func, '__qualname__', value.func)}"
        else:
            continue
        if not allowed_name(name):
            raise UntrustedConfigError(
                f"{source}: {key} names {name}, which configs may not instantiate or call; allowed are classes "
                f"from {', '.join(ALLOWED_MODULES)} (see SECURITY.md)"
            )


def check_ckpt_path(ckpt_path: Any) -> None:
    """Refuse a remote ``--ckpt_path``: Lightning would download and load it outside tassn's checks."""
    if isinstance(ckpt_path, str) and ckpt_path.lower().startswith(REMOTE_PREFIXES):
        raise UntrustedConfigError(
            f"{ckpt_path}: refused to load a remote checkpoint; download it, check it (see SECURITY.md) and pass "
            "the local file to --ckpt_path"
        )


def _class(class_path: str) -> type | None:
    module, _, name = class_path.rpartition(".")
    if not allowed_name(class_path):
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def init_parameters(cls: type) -> dict[str, tuple[Any, Any]]:
    """``name: (annotation, default)`` of ``cls.__init__`` and, where an ``__init__`` passes ``**kwargs`` on, of its
    bases' (the signature LightningCLI shows); annotations resolved where possible."""
    out: dict[str, tuple[Any, Any]] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # unresolvable forward references: fall back to no annotations
            hints = {}
        parameters = inspect.signature(init).parameters
        for name, p in parameters.items():
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                out.setdefault(name, (hints.get(name), p.default))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            break
    return out


def _literal_values(annotation: Any) -> set[Any]:
    """Every value a ``Literal`` inside ``annotation`` allows (``Optional``/``Union``/``Sequence`` looked through)."""
    if typing.get_origin(annotation) is Literal:
        return set(typing.get_args(annotation))
    values: set[Any] = set()
    for arg in typing.get_args(annotation):
        values |= _literal_values(arg)
    return values


def _plain(value: Any, key: str, annotation: Any) -> bool:
    """Numbers, flags and None anywhere; strings only when the parameter's Literal choices hold them."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        if key == "template":
            return value in CHECKPOINT_TEMPLATES
        return value in _literal_values(annotation)
    if isinstance(value, (list, tuple)):
        return all(_plain(v, key, annotation) for v in value)
    return False


def _user_dict(value: Any) -> Any:
    return value.as_dict() if hasattr(value, "as_dict") else value


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied recursively (a nested mapping updates, it does not replace)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def checkpoint_overrides(hparams: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a checkpoint's ``hparams`` that may fill the user's model config ``{class_path, init_args}``.

    A value is taken only where the user left the class's default, only for the same class, and only when it is
    plain (:func:`_plain`); nested ``{class_path, init_args}`` values (the network) follow the same rules.
    Returns ``init_args`` overrides (possibly nested as ``{class_path, init_args}``); empty when nothing applies.
    """
    user = _user_dict(user) or {}
    cls = _class(str(user.get("class_path", "")))
    if cls is None:
        return {}
    given = _user_dict(user.get("init_args")) or {}
    parameters = init_parameters(cls)
    out: dict[str, Any] = {}
    for key, value in hparams.items():
        if key.startswith("_") or key not in parameters or key not in given:
            continue
        annotation, default = parameters[key]
        mine = _user_dict(given[key])
        if isinstance(value, Mapping) and "class_path" in value:
            if isinstance(mine, Mapping) and mine.get("class_path") == value.get("class_path"):
                nested = checkpoint_overrides(value.get("init_args") or {}, mine)
                if nested:
                    out[key] = {"class_path": mine["class_path"], "init_args": nested}
            continue
        if mine == default and value != mine and _plain(value, key, annotation):
            out[key] = value
    return out


def recorded_net_config(config: Mapping[str, Any], path: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's recorded PME arguments without the ones that name files (:data:`NET_PATH_ARGUMENTS`).

    ``given`` are the user's own arguments, which may name any file. A ``template`` other than ``procedural``
    is not dropped silently (the network would not fit it): the user is asked to name the file.
    """
    template = config.get("template", "procedural")
    if "template" not in given and template not in CHECKPOINT_TEMPLATES:
        raise UntrustedConfigError(
            f"{path}: the network was trained with template {template!r}; a checkpoint never chooses a file to "
            "read: pass the template yourself (--net-config FILE.yaml with 'template: …')"
        )
    return {k: v for k, v in config.items() if k not in NET_PATH_ARGUMENTS}
