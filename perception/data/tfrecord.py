"""TFRecord files without TensorFlow: record framing and CRC-32C checks.

A record is ``uint64 length | uint32 masked_crc32c(length bytes) | data | uint32
masked_crc32c(data)``, little-endian, where ``masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8``
(mod 2^32) and CRC-32C is the Castagnoli CRC (reflected polynomial 0x82F63B78, init and
final xor 0xFFFFFFFF). Used by the Waymo v1 loader (``perception.data.waymo``).

CRC-32C in pure Python costs about a second per Waymo frame, so long inputs are cut into
equal chunks whose CRCs run side by side as numpy lanes, then combined with the "shift by one
chunk of zeros" linear map (CRCs are linear over GF(2)).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

import numpy as np

from perception.errors import CorruptFileError, DataError
from perception.files import atomic_write

_POLY = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
_CHUNK = 1024  # bytes per numpy lane
_HEADER = 12  # uint64 length + uint32 crc


def _byte_table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


_TABLE = _byte_table()
_TABLE_LIST = _TABLE.tolist()


def _crc_raw_py(state: int, data: bytes) -> int:
    for b in data:
        state = _TABLE_LIST[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


def _crc_raw_lanes(lanes: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Raw CRC (no init / final xor) of each row of a (K, L) uint8 array, starting from ``state`` (K,)."""
    for j in range(lanes.shape[1]):
        state = _TABLE[(state ^ lanes[:, j]) & 0xFF] ^ (state >> 8)
    return state


@cache
def _shift_tables(n_bytes: int) -> list[list[int]]:
    """Four byte tables of the linear map s -> raw CRC of ``n_bytes`` zeros starting from s."""
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    images = _crc_raw_lanes(np.zeros((32, n_bytes), np.uint8), basis)  # (32,)
    bits = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1  # (256, 8)
    tables = []
    for b in range(4):
        sel = np.where(bits.astype(bool), images[8 * b : 8 * b + 8][None, :], np.uint32(0))
        tables.append(np.bitwise_xor.reduce(sel, axis=1).tolist())
    return tables


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``."""
    if len(data) < 4 * _CHUNK:
        return _crc_raw_py(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    k = -(-len(data) // _CHUNK)
    buf = np.zeros(k * _CHUNK, np.uint8)
    pad = len(buf) - len(data)
    buf[pad:] = np.frombuffer(data, np.uint8)
    # Zeros ahead of a zero state leave it zero; the 0xFFFFFFFF start is xor-ed into the first 4 data bytes.
    buf[pad : pad + 4] ^= 0xFF
    states = _crc_raw_lanes(buf.reshape(k, _CHUNK), np.zeros(k, np.uint32)).tolist()
    s0, s1, s2, s3 = _shift_tables(_CHUNK)
    total = 0
    for s in states:
        total = s0[total & 0xFF] ^ s1[(total >> 8) & 0xFF] ^ s2[(total >> 16) & 0xFF] ^ s3[total >> 24] ^ s
    return total ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def record_index(path: str | Path) -> list[tuple[int, int]]:
    """``(offset of data, length)`` of every record, reading only the headers (length CRCs checked)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    size, out = path.stat().st_size, []
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            header = f.read(_HEADER)
            if len(header) < _HEADER:
                raise CorruptFileError(f"record {len(out)} at byte {offset}: truncated header", path=path)
            length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
            if masked_crc32c(length_bytes) != length_crc:
                raise CorruptFileError(f"record {len(out)} at byte {offset}: length CRC mismatch", path=path)
            (length,) = struct.unpack("<Q", length_bytes)
            end = offset + _HEADER + length + 4
            if end > size:
                raise CorruptFileError(
                    f"record {len(out)} at byte {offset}: truncated ({length} bytes announced)", path=path
                )
            out.append((offset + _HEADER, length))
            offset = end
            f.seek(offset)
    return out


def read_record(path: str | Path, offset: int, length: int, verify: bool = True) -> bytes:
    """The data of one record located by ``record_index``; ``verify`` checks its CRC."""
    path = Path(path)
    with open(path, "rb") as f:
        f.seek(offset)
        data, crc = f.read(length), f.read(4)
    if len(data) != length or len(crc) != 4:
        raise CorruptFileError(f"record at byte {offset - _HEADER}: truncated", path=path)
    if verify and masked_crc32c(data) != struct.unpack("<I", crc)[0]:
        raise CorruptFileError(f"record at byte {offset - _HEADER}: data CRC mismatch", path=path)
    return data


def read_records(path: str | Path, verify: bool = True) -> Iterator[bytes]:
    """Every record's data, in file order."""
    for offset, length in record_index(path):
        yield read_record(path, offset, length, verify)


def write_records(path: str | Path, records: Iterable[bytes]) -> None:
    """Write records with valid framing (atomically)."""
    with atomic_write(path, "wb") as f:
        for data in records:
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data)))
