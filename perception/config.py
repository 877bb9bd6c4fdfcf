"""YAML configs with ``key=value`` overrides, at most one ``base:`` and close-match errors.

A config is a plain dict of at most two levels (``section.key``). Overrides are parsed with
``yaml.safe_load`` (so ``lr=1e-3`` is a float and ``freeze=[backbone]`` a list), never ``eval``.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from perception.errors import ConfigError
from perception.files import atomic_write


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` (no dot, YAML 1.2 style) as a float, not a string."""


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader subclass: plain data only, never objects


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad syntax is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found", path=path)
    try:
        data = _safe_load(path.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise ConfigError(
            f"invalid YAML: {getattr(e, 'problem', e)}", path=path, line=None if line is None else line + 1
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", path=path)
    return data


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a config, merging it over its ``base:`` file (resolved next to it) when it names one."""
    path = Path(path)
    cfg = load_yaml(path)
    base = cfg.pop("base", None)
    if base is None:
        return cfg
    base_cfg = load_yaml(path.parent / base)
    if "base" in base_cfg:
        raise ConfigError("a base config may not have a base of its own", path=path.parent / base)
    return merge(base_cfg, cfg)


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else copy.deepcopy(v)
    return out


def close_match_hint(name: str, choices: Iterable[str]) -> str:
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; valid: {', '.join(choices)}"


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        try:
            value = _safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def apply_overrides(cfg: Mapping[str, Any], overrides: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """Merge overrides into ``cfg``; every key must already exist there (typos fail early)."""
    check_keys(overrides, cfg, where)
    return merge(cfg, overrides)


def check_keys(update: Mapping[str, Any], reference: Mapping[str, Any], where: str = "config") -> None:
    """Raise ConfigError for any key of ``update`` that ``reference`` lacks, listing the valid ones."""
    for k, v in update.items():
        if k not in reference:
            raise ConfigError(f"unknown key {where}.{k}{close_match_hint(k, reference)}")
        if isinstance(v, Mapping) and isinstance(reference[k], Mapping) and reference[k]:
            check_keys(v, reference[k], f"{where}.{k}")


def save_config(cfg: Mapping[str, Any], path: str | Path) -> None:
    with atomic_write(path) as f:
        yaml.safe_dump(dict(cfg), f, sort_keys=False)
