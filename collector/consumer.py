"""The stage contract: the consumer protocol every stage speaks, the capabilities it declares, the settings
of a pipeline's trace buffer, and the fan-out used where a graph branches. (The trace-level stage protocol,
:class:`collector.component.TraceStage`, sits beside the other component protocols.)

Every stage says what it is with one typed :class:`Capabilities` value from ``capabilities()``, as OTel
Collector consumers do with ``consumer.Capabilities``: the service reads it once, while it builds the
pipeline graph, to decide who gets a copy of a batch, which processors the trace buffer feeds, whose
settings that buffer takes and what the wire walk must look for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from collector.errors import ConsumerError
from collector.model import SpanBatch


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a stage declares about itself (all False: a span-level stage that only reads its batches).

    * ``mutates_data``: it changes the batches (or, for a trace stage, the spans) it is given; fan-out
      hands such a consumer its own copy.
    * ``trace_level``: it works on whole traces (a :class:`collector.component.TraceStage`): the pipeline
      puts a trace buffer in front of it and calls ``process_traces`` instead of ``consume_traces``.
    * ``defines_buffer``: its ``buffer_settings`` configure that trace buffer (``tail_sampling``), rather
      than those of the first trace stage of the run.
    * ``reads_error_attribute``: it treats a span with the attribute ``error`` = true as failed, so the wire
      walk on the way in must flag traces that have one (not only those with an ERROR status).
    """

    mutates_data: bool = False
    trace_level: bool = False
    defines_buffer: bool = False
    reads_error_attribute: bool = False


@runtime_checkable
class TracesConsumer(Protocol):
    """``consume_traces`` takes ownership of the batch. Raise :class:`ConsumerError` to refuse it.

    ``capabilities()`` is read when the graph is built (its ``mutates_data``: whether fan-out hands this
    consumer its own copy).
    """

    def capabilities(self) -> Capabilities: ...

    async def consume_traces(self, batch: SpanBatch) -> None: ...


@dataclass(frozen=True)
class TraceBufferSettings:
    """How the pipeline's one trace buffer holds traces (the tail_sampling names and defaults)."""

    decision_wait: float = 30.0
    num_traces: int = 50000
    expected_new_traces_per_sec: int = 0
    sampled_cache_size: int = 0
    non_sampled_cache_size: int = 0
    block_on_overflow: bool = False
    decision_wait_after_root_received: float = 0.0  # 0: off
    maximum_trace_size_bytes: int = 0  # 0: no limit
    drop_pending_traces_on_shutdown: bool = False


_READS_ONLY = Capabilities()


class FanOutConsumer:
    """Delivers each batch to several consumers (a receiver feeding pipelines, a pipeline feeding exporters).

    Consumers that mutate get a copy; the others share the bytes. If any consumer refuses, the error
    goes back to the sender (the most retriable view wins: one retriable refusal makes the whole retriable),
    so that the client retries rather than loses data. As in the OTel Collector, a retry may then
    duplicate data at consumers that had already accepted it.
    """

    __slots__ = ("_consumers", "_copies")

    def __init__(self, consumers: Sequence[TracesConsumer]) -> None:
        if not consumers:
            raise ValueError("fan-out needs at least one consumer")
        self._consumers = tuple(consumers)
        self._copies = tuple(c.capabilities().mutates_data for c in self._consumers)

    def capabilities(self) -> Capabilities:
        return _READS_ONLY  # it copies for the consumers that mutate

    @property
    def consumers(self) -> tuple[TracesConsumer, ...]:
        return self._consumers

    async def consume_traces(self, batch: SpanBatch) -> None:
        consumers = self._consumers
        if len(consumers) == 1:
            await consumers[0].consume_traces(batch)
            return
        # Each consumer owns what it gets: a copy if it mutates, else a view of the same bytes; both
        # hold their own references to the acks. The original stays ours until all have taken theirs.
        batches = [batch.copy() if copy else batch.view() for copy in self._copies]
        results = await asyncio.gather(
            *(c.consume_traces(b) for c, b in zip(consumers, batches, strict=True)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            batch.release()
            return
        for b, r in zip(batches, results, strict=True):
            if isinstance(r, BaseException):
                b.release()  # refused: that consumer never owned it; the caller keeps the original
        for err in errors:
            if not isinstance(err, Exception):
                raise err
        consumer_errors = [e for e in errors if isinstance(e, ConsumerError)]
        if len(consumer_errors) != len(errors):
            raise next(e for e in errors if not isinstance(e, ConsumerError))
        retriable = [e for e in consumer_errors if e.retriable]
        raise retriable[0] if retriable else consumer_errors[0]
