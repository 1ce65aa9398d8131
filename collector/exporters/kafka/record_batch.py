"""Kafka record batches with a hardware CRC-32C, for the producer's large records.

aiokafka builds each record batch in Cython and checksums it (CRC-32C over the whole batch, as the v2
record format requires) with a table-driven CRC at about 2 GB/s on this machine: a fifth of the
collector's CPU when it forwards 4 KB attribute values (the ``long_values`` shape of ``bench.shapes``).
``google-crc32c`` computes the same checksum with the processor's CRC32 instruction (about 13 GB/s).

:func:`install` gives aiokafka's producer a batch builder (aiokafka's own pure-Python one) that writes each
record's value into the batch once and checksums the batch with ``google-crc32c``. The bytes are identical
to aiokafka's (``tests/collector/kafka/test_units.py`` compares them). When ``google-crc32c`` is not
installed, or runs without its C extension, nothing is changed.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

from aiokafka.producer import message_accumulator
from aiokafka.record import default_records
from aiokafka.record.util import encode_varint, size_of_varint

_CRC = struct.Struct(">I")
_DEFAULT = message_accumulator.DefaultRecordBatchBuilder  # what aiokafka chose (Cython when built)


def _hardware_crc32c() -> tuple[Callable[[bytes], int], Callable[[int, bytes], int]] | None:
    try:
        import google_crc32c
    except ImportError:
        return None
    if google_crc32c.implementation != "c":  # its pure-Python fallback is slower than aiokafka's
        return None
    return google_crc32c.value, google_crc32c.extend


_crc32c, _extend = _hardware_crc32c() or (None, lambda crc, chunk: crc)


class RecordBatchBuilder(default_records._DefaultRecordBatchBuilderPy):  # type: ignore[misc]  # untyped
    """aiokafka's pure-Python record batch builder, with each value copied once and a hardware CRC.

    The checksum covers the batch from its attributes to its end. ``google-crc32c`` takes only ``bytes``
    (not a view of the batch's buffer), so it is computed from the pieces as they were appended: the
    header's tail, then each record's small head, its value (the caller's ``bytes``) and its trailer.
    Anything else (headers, a value that is not ``bytes``, compression that shrank the batch) falls back
    to aiokafka's own code and a checksum over a copy of the batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pieces: list[bytes] | None = []  # what follows the header, in order (None: unknown)
        self._piece_bytes = 0

    def append(self, offset: int, timestamp: int | None, key: bytes | None, value: bytes | None,
               headers: list[tuple[str, bytes | None]], *args: Any, **kwargs: Any) -> Any:
        if (type(value) is not bytes or headers or args or kwargs or type(offset) is not int
                or not (key is None or type(key) is bytes) or not (timestamp is None or type(timestamp) is int)):
            self._pieces = None
            return super().append(offset, timestamp, key, value, headers)  # (raises aiokafka's TypeErrors)
        assert value is not None
        if timestamp is None:
            timestamp = int(time.time() * 1000)  # as aiokafka stamps a record sent without one
        base: int | None = self._first_timestamp  # type: ignore[has-type]  # (aiokafka's, untyped)
        first = base is None
        # The message: attributes, timestamp delta, offset delta, key, value, no headers, as aiokafka writes it.
        head = bytearray(b"\x00")
        encode_varint(0 if base is None else timestamp - base, head.append)
        encode_varint(offset, head.append)
        if key is None:
            head.append(1)  # varint -1: no key
        else:
            encode_varint(len(key), head.append)
            head += key
        encode_varint(len(value), head.append)
        message_len = len(head) + len(value) + 1  # + the header count, 0
        required = message_len + size_of_varint(message_len)
        buffer = self._buffer
        if not first and required + len(buffer) > self._batch_size:
            return None
        if first:
            self._first_timestamp = self._max_timestamp = timestamp
        elif timestamp > self._max_timestamp:
            self._max_timestamp = timestamp
        self._num_records += 1
        self._last_offset = offset
        prefix = bytearray()
        encode_varint(message_len, prefix.append)
        prefix += head
        buffer += prefix
        buffer += value
        buffer.append(0)
        if self._pieces is not None:
            self._pieces += (bytes(prefix), value, b"\x00")
            self._piece_bytes += required
        return default_records._DefaultRecordMetadataPy(offset, required, timestamp)

    def _write_header(self, use_compression_type: bool = True) -> None:
        crc32c = _crc32c
        assert crc32c is not None
        buffer = self._buffer
        self.HEADER_STRUCT.pack_into(
            buffer, 0, 0, len(buffer) - self.AFTER_LEN_OFFSET, self.NO_PARTITION_LEADER_EPOCH, self._magic, 0,
            self._get_attributes(use_compression_type), self._last_offset, self._first_timestamp or 0,
            self._max_timestamp or 0, self._producer_id, self._producer_epoch, self._base_sequence,
            self._num_records,
        )
        size = self.HEADER_STRUCT.size
        pieces = self._pieces
        if pieces is None or len(buffer) != size + self._piece_bytes:  # (compressed, or another path)
            crc = crc32c(bytes(buffer[self.ATTRIBUTES_OFFSET:]))
        else:
            crc = crc32c(bytes(buffer[self.ATTRIBUTES_OFFSET:size]))
            for piece in pieces:
                crc = _extend(crc, piece)
        _CRC.pack_into(buffer, self.CRC_OFFSET, crc)


def available() -> bool:
    """``google-crc32c`` is installed with its C extension."""
    return _crc32c is not None


def install() -> bool:
    """Make :class:`RecordBatchBuilder` the producer's batch builder (idempotent); False, changing nothing,
    when ``google-crc32c`` is not available."""
    if _crc32c is None:
        return False
    message_accumulator.DefaultRecordBatchBuilder = RecordBatchBuilder
    return True


def uninstall() -> None:
    """Put aiokafka's own builder back (for tests comparing the two)."""
    message_accumulator.DefaultRecordBatchBuilder = _DEFAULT


__all__ = ["RecordBatchBuilder", "available", "install", "uninstall"]
