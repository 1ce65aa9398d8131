"""The live tests as arrays for the compiled check (:mod:`pipelines.trace_tests._kernel`, numba, the ``jit``
extra): most live traces are answered without a span decoded or a Python object per span.

:meth:`CompiledTests.build` turns the plans of a library (:func:`~pipelines.trace_tests.live.plan_tests`)
into arrays, when every test's first live selector can be compiled; otherwise the processor keeps the Python
evaluation for every trace. What compiles:

* **Selectors** of one path of one segment without a pseudo-class, naming the span by ``name =`` (or not
  at all), whose other filters a span's resource decides (``service.name="checkout"``): per origin each
  selector gets a verdict (ruled out, holds, or undecided: a filter on a span attribute).
* **Assertions** on ``tracetest.selected_spans.count``, ``tracetest.span.duration`` / ``.start_time`` /
  ``.end_time`` (numbers and durations), ``tracetest.span.status_code`` and ``kind`` (any comparator: their
  values are a small set, so the answer is a bit mask computed by the Python predicate itself), the span's
  name, and the span's own attributes (numbers compared as numbers, text as text).

A trace of one origin or several is answered when the kernel is certain of every spec of every test that
applies: that it passes, or that it fails (which assertions fail, and the span the first of them fails on
first in Tracetest's order, or none selected); the processor then decodes only that span to write the
failure's report line. Everything else (a spec that does not compile, an origin whose resource names an
asserted key, an undecided selector, a value the kernel does not read as Python does, a cycle of parents)
sends the trace to the Python evaluation, which answers it as before. tests/pipelines/trace_tests/
test_compiled.py compares both on random traces and definitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import is_
from typing import Any

import numpy as np

from pipelines.trace_tests._layout import FAILED, FALLBACK, PASSED, R_COLS, UNTESTED
from pipelines.trace_tests.assertion import COUNT, ORDERING, Assertion, predicate
from pipelines.trace_tests.library import LiveTest
from pipelines.trace_tests.live import NAME_KEYS, FastSelector, TestPlan
from pipelines.trace_tests.spans import Value

__all__ = ["FAILED", "FALLBACK", "PASSED", "UNTESTED", "Checked", "CompiledTests", "load"]

NUMBER_FIELDS = {"tracetest.span.duration": 0, "tracetest.span.start_time": 1, "tracetest.span.end_time": 2}
MASK_FIELDS = {"kind": 0, "tracetest.span.kind": 0, "tracetest.span.status_code": 1}
MASK_VALUES = {0: ("unspecified", "internal", "server", "client", "producer", "consumer"),
               1: ("unset", "ok", "error")}
NUMERIC = ("=", "!=", *ORDERING)
COMPARATORS = {"=": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5, "contains": 6, "not-contains": 7}
MAX_ORIGINS = 4096  # origins whose verdicts are kept (then forgotten, between rounds: see new_round)
UNCOMPILED = -2  # a spec's selector index when the spec does not compile
NOT_LIVE = -1  # ... when the spec is not checked live


def load() -> Any:
    """The kernel module (compiled now, or loaded from numba's cache), or None when the compiled wire walk is
    off (no numba, ``TRACETRIAGE_JIT=0``)."""
    from collector.wire import load_compiled

    if not load_compiled():
        return None
    try:
        from pipelines.trace_tests import _kernel
    except (ImportError, KeyError, TypeError):  # (a numba without these options: the Python evaluation answers)
        return None
    return _kernel


class _Stub:
    """A span with one value, to ask the Python predicate what it answers for it."""

    __slots__ = ("value",)

    def __init__(self, value: Value) -> None:
        self.value = value

    def get(self, key: str) -> Value:
        return self.value


def _int64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >> 63 else v


def name_hash(raw: bytes, k1: int, k2: int) -> int:
    """The kernel's ``_name_hash`` of a name (its arithmetic on 64-bit signed integers)."""
    n = len(raw)
    if n >= 8:
        h = _int64(int.from_bytes(raw[:8], "little") * k1) ^ _int64(int.from_bytes(raw[-8:], "little"))
    else:
        h = int.from_bytes(raw, "big")
    return _int64((h ^ n) * k2) >> 32


def _bytes_offset() -> int | None:
    """Where a ``bytes`` object's bytes start, from the object's address (CPython's ``ob_sval``), checked on
    this interpreter; None when it does not hold (then each chunk's address is asked for)."""
    offset = bytes.__basicsize__ - 1
    probe = b"tracetriage"
    return offset if np.frombuffer(probe, dtype=np.uint8).ctypes.data == id(probe) + offset else None


_OFFSET = _bytes_offset()


def _address(chunk: bytes | bytearray) -> int:
    """Where the chunk's bytes are in memory."""
    if _OFFSET is not None and type(chunk) is bytes:
        return id(chunk) + _OFFSET
    return int(np.frombuffer(chunk, dtype=np.uint8).ctypes.data) if chunk else 0


class Checked:
    """What :meth:`CompiledTests.run` found: per trace its ``status`` (UNTESTED, PASSED, FAILED, FALLBACK);
    ``applied``: (trace, test) of the tests that applied to the PASSED and FAILED traces; ``failed``: a row per
    failed spec (the kernel's R_* columns); ``roots``: per FAILED trace, where its root span's entry, span and
    end are (-1: no root). Offsets are the kernel's: :meth:`locate` makes them a chunk's."""

    __slots__ = ("applied", "failed", "lengths", "roots", "starts", "status")

    def __init__(self, starts: np.ndarray, lengths: np.ndarray, status: np.ndarray, applied: np.ndarray,
                 failed: np.ndarray, roots: np.ndarray) -> None:
        self.starts = starts
        self.lengths = lengths
        self.status = status
        self.applied = applied
        self.failed = failed
        self.roots = roots

    def locate(self, first: int, last: int, offset: int) -> tuple[int, int]:
        """(chunk index, offset in it) of a kernel offset inside one of chunks ``first`` to ``last``."""
        for c in range(first, last):  # (in memory, a trace's chunks are in any order)
            at = offset - int(self.starts[c])
            if 0 <= at < self.lengths[c]:
                return c, at
        raise ValueError(f"offset {offset} is in none of chunks {first} to {last}")


class CompiledTests:
    """See the module docstring. ``tests`` are the plans' tests in definition order (the kernel's test
    indices); ``specs[i]`` the (spec name, checked live) pairs of test ``i``."""

    def __init__(self, kernel: Any, plans: Sequence[TestPlan]) -> None:
        self._kernel = kernel
        self.plans = list(plans)
        self._selectors: list[FastSelector] = []
        self._selector_index: dict[int, int] = {}
        names: list[bytes] = []
        name_index: dict[bytes, int] = {}
        sel_name: list[int] = []
        kinds: list[int] = []
        cmps: list[int] = []
        fields: list[int] = []
        nums: list[float] = []
        texts: list[tuple[int, int, int, int]] = []
        text = bytearray()
        self.asserted_keys: set[str] = set()

        def selector(fast: FastSelector) -> int:
            got = self._selector_index.get(id(fast))
            if got is not None:
                return got
            name = -1
            if fast.paths is not None and len(fast.paths) == 1 and fast.paths[0].name is not None:
                raw = fast.paths[0].name.encode()
                name = name_index.get(raw, -1)
                if name < 0:
                    name = name_index[raw] = len(names)
                    names.append(raw)
            self._selector_index[id(fast)] = len(self._selectors)
            self._selectors.append(fast)
            sel_name.append(name)
            return len(self._selectors) - 1

        def add_text(data: bytes) -> tuple[int, int]:
            at = len(text)
            text.extend(data)
            return at, len(data)

        test_first: list[int] = []
        test_specs = [0]
        spec_sel: list[int] = []
        spec_asserts = [0]
        for plan in self.plans:
            assert plan.first is not None
            test_first.append(selector(plan.first))
            for sp in plan.specs:
                if sp is None:
                    spec_sel.append(NOT_LIVE)
                else:
                    compiled = [self._assertion(a) for a in sp.spec.assertions]
                    if not self.compiles(sp.selector) or any(c is None for c in compiled):
                        spec_sel.append(UNCOMPILED)
                    else:
                        spec_sel.append(selector(sp.selector))
                        for a, c in zip(sp.spec.assertions, compiled, strict=True):
                            assert c is not None
                            kind, cmp, field, num, want = c
                            kinds.append(kind)
                            cmps.append(cmp)
                            fields.append(field)
                            nums.append(num)
                            at, ln = add_text(want)
                            key_at, key_len = add_text(a.key.encode())
                            texts.append((at, ln, key_at, key_at + key_len))
                            if a.key != COUNT and a.key not in NAME_KEYS:
                                self.asserted_keys.add(a.key)
                spec_asserts.append(len(kinds))
            test_specs.append(len(spec_sel))
        i64 = np.int64
        self._names = np.frombuffer(bytes(b"".join(names)) or b"\0", dtype=np.uint8)
        self._name_bounds = np.cumsum([0, *(len(n) for n in names)]).astype(i64)
        size = 1 << max(3, (2 * len(names) + 1).bit_length())
        table = np.full(size, -1, dtype=i64)
        lengths = np.zeros(kernel.LONG_NAME + 1, dtype=np.uint8)  # (the kernel hashes a name of these lengths)
        for i, raw in enumerate(names):
            lengths[min(len(raw), kernel.LONG_NAME)] = 1
            slot = name_hash(raw, kernel.NAME_K1, kernel.NAME_K2) & (size - 1)
            while table[slot] >= 0:
                slot = (slot + 1) & (size - 1)
            table[slot] = i
        self._name_table = table
        self._name_lengths = lengths
        self._sel_name = np.array(sel_name, dtype=i64)
        self._test_first = np.array(test_first, dtype=i64)
        self._test_specs = np.array(test_specs, dtype=i64)
        self._spec_of = [(ti, p - test_specs[ti]) for ti in range(len(test_first))
                         for p in range(test_specs[ti], test_specs[ti + 1])]
        self._spec_sel = np.array(spec_sel, dtype=i64)
        self._spec_asserts = np.array(spec_asserts, dtype=i64)
        self._a_kind = np.array(kinds, dtype=i64)
        self._a_cmp = np.array(cmps, dtype=i64)
        self._a_field = np.array(fields, dtype=i64)
        self._a_num = np.array(nums, dtype=np.float64)
        self._a_text = np.array(texts, dtype=i64).reshape(len(texts), 4)
        self._text = np.frombuffer(bytes(text) or b"\0", dtype=np.uint8)
        self._spans = np.empty((0, kernel.S_COLS), dtype=i64)
        self._verdicts = np.zeros((16, max(1, len(self._selectors))), dtype=i64)
        self.rows: dict[Any, int] = {}  # origin -> its row of verdicts (see row)
        self._nrows = 0

    @classmethod
    def build(cls, tests: Sequence[LiveTest], plans: Mapping[str, TestPlan]) -> CompiledTests | None:
        """The compiled tests, or None when the kernel is off or some test's first live selector does not
        compile (the kernel could not say which traces the test is about)."""
        chosen = [plans[t.definition.name] for t in tests]
        live = [p for p in chosen if p.first is not None]  # (a test with none is never run live)
        if not all(cls.compiles(p.first) for p in live if p.first is not None):
            return None
        kernel = load()
        if kernel is None:
            return None
        return cls(kernel, live)

    @staticmethod
    def compiles(fast: FastSelector) -> bool:
        """One path of one segment, no pseudo-class, the name only as ``name =`` (see the module docstring)."""
        paths = fast.paths
        return paths is not None and len(paths) == 1 and not any(f.key in NAME_KEYS for f in paths[0].filters)

    def _assertion(self, a: Assertion) -> tuple[int, int, int, float, bytes] | None:
        """(kind, comparator, field, number, text) of an assertion the kernel answers, None otherwise."""
        k = self._kernel
        key, cmp, exp = a.key, a.comparator, a.expected
        numeric = exp.kind in ("number", "duration") and cmp in NUMERIC
        c = COMPARATORS[cmp]
        if key == COUNT:
            return (k.A_COUNT, c, 0, exp.number, b"") if numeric else None
        field = NUMBER_FIELDS.get(key)
        if field is not None:
            return (k.A_NUMBER, c, field, exp.number, b"") if numeric else None
        field = MASK_FIELDS.get(key)
        if field is not None:
            check = predicate(a)
            mask = 0
            for v, label in enumerate(MASK_VALUES[field]):
                if check(_Stub(label), 1, {}):  # type: ignore[arg-type]
                    mask |= 1 << v
            return k.A_MASK, c, field, float(mask), b""
        if key.startswith("tracetest."):
            return None  # (type, status description, parent id, response: the Python evaluation's)
        if key in NAME_KEYS:
            return None if numeric else (k.A_NAME_TEXT, c, 0, 0.0, exp.text.encode())
        if numeric:
            return k.A_ATTR_NUMBER, c, 0, exp.number, b""
        return k.A_ATTR_TEXT, c, 0, 0.0, exp.text.encode()

    def verdicts(self, resource: Mapping[str, Value]) -> np.ndarray:
        """Per selector, for spans of this resource: 0 ruled out by a resource attribute, 1 the resource
        satisfies every filter but the name, 2 undecided (a filter on a span's own attribute, a selector that
        does not compile, or a resource that names an asserted key: a resource attribute wins over a span's)."""
        out = np.empty(len(self._selectors), dtype=np.int64)
        shadowed = any(key in resource for key in self.asserted_keys)
        for i, fast in enumerate(self._selectors):
            if not self.compiles(fast):
                out[i] = 2
                continue
            assert fast.paths is not None
            verdict = 2 if shadowed else 1
            for f in fast.paths[0].filters:
                actual = resource.get(f.key)
                if actual is None:
                    verdict = 2
                elif not f.holds_for(actual):
                    verdict = 0
                    break
            out[i] = verdict
        return out

    def row(self, origin: Any, resource: Mapping[str, Value]) -> int:
        """The row of ``origin``'s verdicts; negative (the row's bitwise complement) when no test's first
        selector can select a span of it."""
        got = self.rows.get(origin)
        if got is not None:
            return got
        v = self.verdicts(resource)
        n = self._nrows
        if n >= len(self._verdicts):
            grown = np.zeros((2 * len(self._verdicts), self._verdicts.shape[1]), dtype=np.int64)
            grown[:n] = self._verdicts[:n]
            self._verdicts = grown
        self._verdicts[n] = v
        self._nrows = n + 1
        got = self.rows[origin] = n if v[self._test_first].any() else ~n
        return got

    def new_round(self) -> None:
        """Before a round's rows are asked for: forget the origins' rows when there are MAX_ORIGINS (not during
        a round, whose rows must stay those of their origins)."""
        if len(self.rows) >= MAX_ORIGINS:
            self.rows.clear()
            self._nrows = 0

    def run(self, chunks: Sequence[bytes | bytearray], rows: Sequence[int], parts: Sequence[int], most_spans: int
            ) -> Checked:
        """Check traces made of ``chunks`` (framed span entries of one origin each, its :meth:`row` in ``rows``:
        a chunk of a negative row is read only when some test applies to its trace): trace ``t`` is chunks
        ``parts[t]`` to ``parts[t + 1]``; at most ``most_spans`` spans each. See
        :class:`Checked`. The kernel reads each chunk where it is (a ``bytes`` object's bytes are at a fixed
        offset from it in CPython, checked at load)."""
        k = self._kernel
        n = len(parts) - 1
        if _OFFSET is not None and all(map(is_, map(type, chunks), repeat(bytes))):  # (most rounds: maps in C)
            addresses = np.fromiter(map(id, chunks), dtype=np.int64, count=len(chunks)) + _OFFSET
        else:
            addresses = np.fromiter(map(_address, chunks), dtype=np.int64, count=len(chunks))
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        base = int(addresses.min()) if len(chunks) else 0
        size = int((addresses + lengths).max()) - base if len(chunks) else 0
        if len(self._spans) < most_spans:
            self._spans = np.empty((max(most_spans, 2 * len(self._spans)), k.S_COLS), dtype=np.int64)
        status = np.empty(n, dtype=np.int64)
        roots = np.empty((n, 3), dtype=np.int64)
        starts = addresses - base
        rows_a, parts_a = np.array(rows, dtype=np.int64), np.array(parts, dtype=np.int64)
        room = 2 * n + 16  # (rows of tests applied and of specs failed: more when a round needs more)
        while True:
            applied = np.empty((room, 2), dtype=np.int64)
            failed = np.empty((room, R_COLS), dtype=np.int64)
            na, nf = k.check(base, size, starts, lengths, rows_a, parts_a, self._verdicts, self._names,
                             self._name_bounds, self._name_table, self._name_lengths, self._sel_name,
                             self._test_first, self._test_specs, self._spec_sel, self._spec_asserts, self._a_kind,
                             self._a_cmp, self._a_field, self._a_num, self._a_text, self._text, self._spans, status,
                             applied, failed, roots)
            if na >= 0:
                break  # (else again: the parts the first call made positive in rows_a are read early, same answers)
            room *= 4
        return Checked(starts, lengths, status, applied[:na], failed[:nf], roots)

    def spec_of(self, p: int) -> tuple[int, int]:
        """(test index, spec index within the test) of the kernel's spec ``p``."""
        return self._spec_of[p]

    def warm(self) -> None:
        """Compile the kernel (or load it from numba's cache) now, not on the first trace."""
        self.run([], [], [0], 1)
