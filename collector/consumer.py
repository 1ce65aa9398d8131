"""The one consumer protocol every stage speaks, the fan-out used where a graph branches, and what a
trace-level stage is (:class:`TraceStage`) with the settings of the trace buffer in front of it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from collector.errors import ConsumerError
from collector.model import SpanBatch, Trace

if TYPE_CHECKING:
    from collector.component import Host  # (collector.component imports this module)


@runtime_checkable
class TracesConsumer(Protocol):
    """``consume_traces`` takes ownership of the batch. Raise :class:`ConsumerError` to refuse it.

    ``mutates_data`` declares whether the consumer changes batches it is given; fan-out hands such a
    consumer its own copy.
    """

    mutates_data: bool

    async def consume_traces(self, batch: SpanBatch) -> None: ...


class FanOutConsumer:
    """Delivers each batch to several consumers (a receiver feeding pipelines, a pipeline feeding exporters).

    Consumers that mutate get a copy; the others share the bytes. If any consumer refuses, the error
    goes back to the sender (the most retriable view wins: one retriable refusal makes the whole retriable),
    so that the client retries rather than loses data. As in the OTel Collector, a retry may then
    duplicate data at consumers that had already accepted it.
    """

    __slots__ = ("_consumers", "mutates_data")

    def __init__(self, consumers: Sequence[TracesConsumer]) -> None:
        if not consumers:
            raise ValueError("fan-out needs at least one consumer")
        self._consumers = tuple(consumers)
        self.mutates_data = False

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
        batches = [batch.copy() if c.mutates_data else batch.view() for c in consumers]
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


@runtime_checkable
class TraceStage(Protocol):
    """A processor that works on whole traces (``trace_level = True`` on the class).

    The pipeline puts one trace buffer in front of each run of consecutive trace stages and calls
    ``process_traces`` with the traces whose decision time has come, in config order. A stage returns
    the traces it lets through (all of them, for a stage that only looks); traces it does not return
    are dropped by the buffer (and remembered as not sampled in its decision cache).

    ``buffer_settings`` configures that buffer: the tail_sampling stage's settings win
    (``defines_buffer = True``), else the first stage's.
    """

    trace_level: ClassVar[bool]
    defines_buffer: ClassVar[bool]
    mutates_data: bool
    buffer_settings: TraceBufferSettings

    def process_traces(self, traces: list[Trace]) -> list[Trace]: ...

    async def start(self, host: Host) -> None: ...

    async def shutdown(self) -> None: ...
