"""What every dataset loader provides, and the dataset YAML that configures it.

A dataset YAML (``datasets/*.yaml``)::

    format: kitti                 # loader name, see perception.data.registry.LOADERS
    root: ../../shared/data/kitti/object   # relative paths resolve against the YAML's folder
    split: train                  # default split
    splits: {train: ImageSets/train.txt, val: ImageSets/val.txt}
    classes: [Car, Pedestrian, Cyclist]
    class_map: {Van: null, DontCare: null}   # dataset type -> one of classes, or null to drop
    options: {}                   # loader-specific keys (cameras, sweeps, ...)
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception.config import check_keys, load_yaml
from perception.core import Frame
from perception.errors import ConfigError, DataError

_SPEC_KEYS = {
    "format": "",
    "root": "",
    "split": "",
    "splits": {},
    "classes": [],
    "class_map": {},
    "options": {},
    "name": "",
}


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset YAML."""

    format: str
    root: Path
    classes: tuple[str, ...]
    split: str | None = None
    splits: dict[str, Any] = field(default_factory=dict)
    class_map: dict[str, str | None] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None  # the YAML it came from

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> DatasetSpec:
        path = Path(path)
        raw = {**load_yaml(path), **{k: v for k, v in overrides.items() if v is not None}}
        check_keys(raw, _SPEC_KEYS, where=str(path))
        for key in ("format", "classes"):
            if not raw.get(key):
                raise ConfigError(f"missing required key {key!r}", path=path)
        root = Path(str(raw.get("root", ".")))
        if not root.is_absolute():
            root = (path.parent / root).resolve()
        classes = tuple(raw["classes"])
        bad = {k: v for k, v in (raw.get("class_map") or {}).items() if v is not None and v not in classes}
        if bad:
            raise ConfigError(f"class_map targets {bad} are not in classes {list(classes)}", path=path)
        return cls(
            format=raw["format"], root=root, classes=classes, split=raw.get("split") or None,
            splits=dict(raw.get("splits") or {}), class_map=dict(raw.get("class_map") or {}),
            options=dict(raw.get("options") or {}), source=path,
        )  # fmt: skip


class DriveDataset(abc.ABC):
    """A random-access sequence of ``Frame``s.

    Subclasses implement ``__len__``, ``load_frame`` and ``frame_key``; ``check`` has a default
    that loads every frame and collects the errors instead of stopping at the first.
    """

    name: str = ""

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        self.spec = spec
        self.split = split if split is not None else spec.split
        self.class_names = spec.classes

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        """Frame ``i`` of the split; skip reading points or images when not asked for."""

    @abc.abstractmethod
    def frame_key(self, i: int) -> tuple[str, int]:
        """``(sequence, index)`` of frame ``i`` without reading it."""

    def __getitem__(self, i: int) -> Frame:
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} out of range for {len(self)} frames")
        return self.load_frame(i % len(self))

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self.load_frame(i)

    def sequences(self) -> dict[str, list[int]]:
        """Sequence id -> dataset indices in time order."""
        out: dict[str, list[tuple[int, int]]] = {}
        for i in range(len(self)):
            seq, idx = self.frame_key(i)
            out.setdefault(seq, []).append((idx, i))
        return {s: [i for _, i in sorted(v)] for s, v in out.items()}

    def check(self) -> list[DataError]:
        """Read every file; return every problem found (empty list: all good)."""
        problems = []
        for i in range(len(self)):
            try:
                self.load_frame(i)
            except DataError as e:
                problems.append(e)
        return problems
