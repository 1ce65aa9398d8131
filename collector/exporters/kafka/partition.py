"""Kafka's default partitioner (Java client and aiokafka): ``toPositive(murmur2(key)) % partitions``.

Computed here rather than left to the client so that the exporter can group the traces of a batch by
the partition they will land on and send many traces in one record.
"""

from __future__ import annotations

import struct

import numpy as np

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS = {n: struct.Struct(f"<{n}I") for n in range(0, 17)}


def murmur2(data: bytes) -> int:
    """The 32-bit murmur2 hash of Kafka's ``Utils.murmur2``, as an unsigned int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length >> 2
    words = _WORDS.get(n4) or struct.Struct(f"<{n4}I")
    for k in words.unpack_from(data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra:
        i = n4 << 2
        if extra == 3:
            h ^= data[i + 2] << 16
        if extra >= 2:
            h ^= data[i + 1] << 8
        h ^= data[i]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition the default partitioner picks for ``key`` among ``partitions`` (0..n-1)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def trace_partitions(trace_ids: list[bytes], partitions: int) -> list[int]:
    """The partition of each trace id's record key (its 32 lowercase hex characters) among ``partitions``:
    :func:`partition_for_key` for many 16-byte ids at once, as array arithmetic (uint32 products wrap
    modulo 2**32 exactly as the masked Python ones)."""
    count = len(trace_ids)
    if count == 0:
        return []
    # Hex digits of every id, as the 8 little-endian 32-bit words murmur2 reads from the 32-byte key.
    raw = np.frombuffer(b"".join(trace_ids), dtype=np.uint8).reshape(count, 16)
    hexed = np.empty((count, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    words = hexed.view("<u4")  # (count, 8)
    m = np.uint32(_M)
    h = np.full(count, (_SEED ^ 32) & _MASK, dtype=np.uint32)
    for w in range(8):
        k = words[:, w] * m
        k ^= k >> np.uint32(24)
        k *= m
        h *= m
        h ^= k
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)
    out: list[int] = ((h & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)).tolist()
    return out


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

__all__ = ["murmur2", "partition_for_key", "trace_partitions"]
