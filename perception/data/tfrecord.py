"""TFRecord files without TensorFlow: record framing and CRC-32C checks.

A record is ``uint64 length | uint32 masked_crc32c(length bytes) | data | uint32
masked_crc32c(data)``, little-endian, where ``masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8``
(mod 2^32) and CRC-32C is the Castagnoli CRC (reflected polynomial 0x82F63B78, init and
final xor 0xFFFFFFFF). Used by the Waymo v1 loader (``perception.data.waymo``).

CRC-32C in pure Python costs about a second per Waymo frame, so long inputs are cut into
equal chunks whose CRCs run side by side as numpy lanes, then combined with the "shift by one
chunk of zeros" linear maps, pairwise (CRCs are linear over GF(2)).
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
_CHUNK = 64  # bytes per numpy lane
_HEADER = 12  # uint64 length + uint32 crc


def _byte_table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


_TABLE = _byte_table()
_TABLE_LIST = _TABLE.tolist()
# Slicing-by-4 tables: _T4[k][n] is the CRC contribution of byte n followed by k zero bytes.
_T4 = [_TABLE]
for _ in range(3):
    _T4.append((_T4[-1] >> 8) ^ _TABLE[_T4[-1] & 0xFF])


def _crc_raw_py(state: int, data: bytes) -> int:
    for b in data:
        state = _TABLE_LIST[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


def _crc_raw_lanes(lanes: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Raw CRC (no init / final xor) of each row of a (K, L) uint8 array (L % 4 == 0), from ``state`` (K,).

    Four bytes per step (slicing-by-4), with the lanes' words laid out contiguously per step.
    """
    words = np.ascontiguousarray(lanes).view("<u4").T.copy()  # (L / 4, K)
    t0, t1, t2, t3 = _T4
    for w in words:
        x = state ^ w
        state = t3[x & 0xFF] ^ t2[(x >> 8) & 0xFF] ^ t1[(x >> 16) & 0xFF] ^ t0[x >> 24]
    return state


def _tables_of(images: np.ndarray) -> np.ndarray:
    """(32,) images of the basis bits under a linear map -> (4, 256) byte tables applying that map."""
    bits = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(bool)  # (256, 8)
    return np.stack(
        [np.bitwise_xor.reduce(np.where(bits, images[8 * b : 8 * b + 8], np.uint32(0)), axis=1) for b in range(4)]
    )


def _apply(tables: np.ndarray, x: np.ndarray) -> np.ndarray:
    return tables[0][x & 0xFF] ^ tables[1][(x >> 8) & 0xFF] ^ tables[2][(x >> 16) & 0xFF] ^ tables[3][x >> 24]


@cache
def _shift_tables(n_bytes: int) -> np.ndarray:
    """Tables of the linear map s -> raw CRC of ``n_bytes`` zeros starting from state s (n = CHUNK * 2^k)."""
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    if n_bytes <= _CHUNK:
        return _tables_of(_crc_raw_lanes(np.zeros((32, n_bytes), np.uint8), basis))
    half = _shift_tables(n_bytes // 2)
    return _tables_of(_apply(half, _apply(half, basis)))


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
    states = _crc_raw_lanes(buf.reshape(k, _CHUNK), np.zeros(k, np.uint32))
    span = _CHUNK
    while len(states) > 1:  # crc(A + B) = shift_len(B)(crc(A)) ^ crc(B), for neighbouring lanes at once
        if len(states) % 2:  # a zero lane in front stands for leading zero bytes: no change
            states = np.concatenate([np.zeros(1, np.uint32), states])
        states = _apply(_shift_tables(span), states[0::2]) ^ states[1::2]
        span *= 2
    return int(states[0]) ^ 0xFFFFFFFF


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
