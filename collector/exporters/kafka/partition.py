"""Kafka's default partitioner (Java client and aiokafka): ``toPositive(murmur2(key)) % partitions``.

Computed here rather than left to the client so that the exporter can group the traces of a batch by
the partition they will land on and send many traces in one record.
"""

from __future__ import annotations

import struct

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


__all__ = ["murmur2", "partition_for_key"]
