"""A read-only dict for the mapping fields of frozen core types.

``types.MappingProxyType`` would do, but it cannot be pickled, and frames must travel to
data-loader workers and between processes.
"""

from __future__ import annotations

from typing import Any, NoReturn


class ReadOnlyDict(dict):
    """A dict whose contents cannot change after construction; pickles as a plain copy."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return type(self), (dict(self),)

    def __copy__(self) -> ReadOnlyDict:
        return self

    def __deepcopy__(self, memo: dict) -> ReadOnlyDict:
        import copy

        return type(self)(copy.deepcopy(dict(self), memo))
