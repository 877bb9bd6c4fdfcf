"""One error tree for everything a user can get wrong.

Every error names the file (and line) it is about, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path


class PerceptionError(Exception):
    """Base of every error caused by input, config or environment (not by a bug)."""

    def __init__(self, msg: str, *, path: str | Path | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path is not None and line is not None else f"{path}: " if path is not None else ""
        super().__init__(where + msg)
        self.path = Path(path) if path is not None else None
        self.line = line


class ConfigError(PerceptionError):
    """Unknown key, bad value or unknown component name in a config or on the command line."""


class DataError(PerceptionError):
    """A dataset file is missing, unreadable or inconsistent."""


class CorruptFileError(DataError):
    """A file exists but its bytes cannot be what its format says (truncated, bad CRC, NaN...)."""


class ShapeError(DataError):
    """Arrays whose shapes do not agree."""


class UnknownClassError(DataError):
    """A class name that the dataset's class list and mapping do not know."""


class CheckpointError(PerceptionError):
    """A checkpoint that is unreadable, lacks its config, or belongs to another model."""


class MissingExtraError(PerceptionError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"{module} is not installed: pip install 'perception[{extra}]'")
        self.module, self.extra = module, extra
