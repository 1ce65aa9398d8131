"""Every span of a request read into columns in one compiled pass: the loader of the walk
(:func:`collector.wire._column_kernels.walk`, numba, the ``jit`` extra).

One row per span (int64; the columns are numbered in :mod:`._column_layout`): its ResourceSpans index, where
its trace id, span id, parent span id and name are in the request's bytes (-1 or 0 when absent), its kind,
start and end times, status code, and where the span's bytes begin and end. Beside it (uint64) the FNV-1a
hash of the span's name and, for spans of the kinds asked for, the wanted attributes' first string values
(hash, and offset and length in an int64 table). The span-derived metrics (pipelines/exposition) build on
it; nothing but this package reads span fields from wire bytes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from collector.wire._column_layout import NCOLS
from collector.wire._jit import load as load_compiled

_log = logging.getLogger(__name__)
_walk: Callable[..., int] | None = None
_state = "unloaded"
_lock = threading.Lock()


def load_column_walk() -> Callable[..., int] | None:
    """The compiled column walk (compiled, or loaded from numba's cache, on first use), or None when the
    compiled wire walk is off (no numba, ``TRACETRIAGE_JIT=0``) or numba failed. Safe to call often.

    ``walk(buf, cols, hashes, attrs, resources, keys, bounds, attr_min_kind, attr_max_kind, hash_names)``
    reads every span of the request ``buf`` (uint8) into ``cols`` (``NCOLS`` int64 columns), the name hashes
    into ``hashes[:, 0]``, and for spans whose kind is in ``[attr_min_kind, attr_max_kind]`` the first string
    value of each wanted key (``keys`` split at ``bounds``) into ``attrs`` (offset, length) and
    ``hashes[:, 1:]``; ``resources`` gets each ResourceSpans' resource field range, and in its last row the
    number of resources and of spans with a wanted attribute. Returns the number of spans, or -1 (malformed,
    more rows needed, a group, a time at or above 2**63: the caller then decodes with protobuf)."""
    global _walk, _state
    if _state != "unloaded":
        return _walk
    with _lock:
        if _state != "unloaded":
            return _walk
        if not load_compiled():
            _state = "unavailable"
            return None
        try:
            from collector.wire._column_kernels import walk

            cols = np.zeros((1, NCOLS), dtype=np.int64)
            walk(np.frombuffer(bytes(2), dtype=np.uint8), cols, np.zeros((1, 1), dtype=np.uint64),
                 np.zeros((1, 0), dtype=np.int64), np.zeros((2, 2), dtype=np.int64),
                 np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64), 0, 0, True)
        except Exception as e:  # noqa: BLE001 - a compiler failure: the protobuf path still works
            _log.warning("the compiled span column walk is off: numba failed (%s: %s)", type(e).__name__, e)
            _state = "unavailable"
            return None
        _walk = walk
        _state = "ready"
        return _walk
