"""Dataset category names -> indices into the classes a dataset YAML chooses.

Used by the nuScenes, Lyft, Waymo and Argoverse 2 loaders. The order of precedence is
the YAML's ``class_map``, then the name itself when it is one of ``classes``, then the
loader's default mapping (e.g. nuScenes' official category -> detection class table).
A default target the YAML did not choose drops the box; a name known to none of the three
is an ``UnknownClassError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from perception.errors import UnknownClassError

DROP = -1


class CategoryMap:
    """Caches the resolution of each category name (loaders see few distinct names)."""

    def __init__(self, classes: Iterable[str], class_map: Mapping[str, str | None], defaults: Mapping[str, str | None]):
        self.classes = tuple(classes)
        self.class_map = dict(class_map)
        self.defaults = dict(defaults)
        self._index = {c: i for i, c in enumerate(self.classes)}
        self._cache: dict[str, int] = {}

    def label(self, name: str, path: Path | None = None) -> int:
        """Class index of ``name``, or ``DROP`` (-1) for a category the YAML leaves out."""
        if name in self._cache:
            return self._cache[name]
        if name in self.class_map:
            target = self.class_map[name]
        elif name in self._index:
            target = name
        elif name in self.defaults:
            target = self.defaults[name]
        else:
            known = sorted(set(self.class_map) | set(self._index) | set(self.defaults))
            raise UnknownClassError(f"unknown category {name!r}; known: {known}", path=path)
        self._cache[name] = self._index.get(target, DROP) if target is not None else DROP
        return self._cache[name]

    def labels(self, names: Iterable[str], path: Path | None = None) -> np.ndarray:
        """(N,) int64 class indices, ``DROP`` where the category is left out."""
        return np.array([self.label(n, path) for n in names], dtype=np.int64)
