"""Column-selective reading of Arrow files (Feather for Argoverse 2, Parquet for Waymo v2).

Only the asked-for columns are read, so a Waymo segment never has to fit in memory; a
missing file, a file that is not Arrow, or a missing column is one error naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import feather, ipc
from pyarrow import parquet as pq

from perception.errors import CorruptFileError, DataError


def _open(path: Path, columns: Sequence[str], kind: str, filters=None) -> pa.Table:
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        if kind == "feather":  # fast path: the schema is only read again to explain a failure
            try:
                return feather.read_table(path, columns=list(columns), memory_map=False)
            except (pa.ArrowInvalid, KeyError):
                names = set(feather_columns(path))
        else:
            names = set(pq.read_schema(path).names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise CorruptFileError(f"missing column(s) {missing}; the file has {sorted(names)}", path=path)
        if kind == "feather":
            return feather.read_table(path, columns=list(columns), memory_map=False)
        return pq.read_table(path, columns=list(columns), filters=filters)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise CorruptFileError(f"not a readable {kind} file: {e}", path=path) from None


def feather_columns(path: str | Path) -> list[str]:
    """Column names of a Feather file, read from its schema only."""
    with pa.memory_map(str(path)) as source:
        return ipc.open_file(source).schema.names


def parquet_columns(path: str | Path) -> list[str]:
    """Column names of a Parquet file, from its footer only."""
    path = Path(path)
    try:
        return pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as e:
        raise CorruptFileError(f"not a readable parquet file: {e}", path=path) from None


def read_feather(path: str | Path, columns: Sequence[str]) -> pa.Table:
    """The named columns of a Feather (Arrow IPC) file."""
    return _open(Path(path), columns, "feather")


def read_parquet(path: str | Path, columns: Sequence[str], filters=None) -> pa.Table:
    """The named columns of a Parquet file, optionally only the rows matching pyarrow ``filters``."""
    return _open(Path(path), columns, "parquet", filters)


def column(table: pa.Table, name: str, dtype=None) -> np.ndarray:
    """A column as a numpy array (``dtype`` casts it); nulls become NaN for floats."""
    col = table.column(name)
    if dtype is not None and np.dtype(dtype).kind == "f" and (col.null_count or col.type != pa.from_numpy_dtype(dtype)):
        col = pc.fill_null(pc.cast(col, pa.from_numpy_dtype(dtype)), np.nan)  # arrow casts float16 faster than numpy
    arr = col.to_numpy()
    return arr if dtype is None else arr.astype(dtype, copy=False)


def list_column(table: pa.Table, name: str, width: int, path: Path, dtype=np.float64) -> np.ndarray:
    """A fixed-width list column (e.g. a flattened 4x4 transform) as an (N, width) array."""
    col = table.column(name).combine_chunks()
    values = col.flatten().to_numpy(zero_copy_only=False)
    if values.size != len(col) * width:
        raise CorruptFileError(f"column {name!r}: expected {width} values per row", path=path)
    return values.reshape(len(col), width).astype(dtype, copy=False)
