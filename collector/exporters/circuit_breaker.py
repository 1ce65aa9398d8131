"""A circuit breaker in front of a destination (exporters' backends, alert receivers).

The OTel Collector's exporterhelper has no circuit breaker; the states and ``half_open_max_requests``
follow the common pattern (Hystrix, sony/gobreaker):

* **closed**: attempts go through. ``failure_threshold`` failed attempts in a row (retriable failures:
  the destination is unreachable, times out or answers "unavailable") open the circuit.
* **open**: no attempt reaches the destination for ``open_duration``. Senders wait (their data stays in
  their queue or outbox); a caller that cannot wait is refused at once (fail fast).
* **half-open**: after ``open_duration`` up to ``half_open_max_requests`` probe attempts go through at a
  time. That many successes in a row close the circuit; one failure opens it again for ``open_duration``.

A permanent error (the destination answered and refused the data) counts as a sign of life, not as a
failure. Attempts admitted before a transition report to a generation that has passed and change
nothing. The state is the gauge ``state`` (0 closed, 1 open, 2 half-open) and every transition is
counted by the state it goes to.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from collector.config.schema import Duration, field

__all__ = ["CircuitBreaker", "CircuitBreakerConfig", "CircuitState", "Permit"]

DEFAULT_OPEN_DURATION = Duration(5.0)


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """``circuit_breaker``: stop sending to a destination that keeps failing, probe it now and then."""

    enabled: bool = True
    failure_threshold: int = field(5, ge=1)
    open_duration: Duration = field(DEFAULT_OPEN_DURATION, gt=0)
    half_open_max_requests: int = field(1, ge=1)


class CircuitState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Permit:
    """Leave to make one attempt; report its outcome with :meth:`CircuitBreaker.record` (or
    :meth:`CircuitBreaker.release` when the attempt was abandoned before it had an outcome)."""

    __slots__ = ("generation", "probe")

    def __init__(self, generation: int, probe: bool) -> None:
        self.generation = generation
        self.probe = probe


class CircuitBreaker:
    """One destination's breaker. ``what`` names it in logs (``exporter otlp``, ``receiver pager``)."""

    __slots__ = (
        "_changed", "_clock", "_config", "_failures", "_generation", "_logger", "_opened_at", "_probes",
        "_state", "_state_gauge", "_successes", "_transitions", "what",
    )

    def __init__(self, config: CircuitBreakerConfig, *, what: str, logger: logging.Logger, state_gauge: Gauge,
                 transitions: Callable[[str], Counter], clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self.what = what
        self._logger = logger
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._state_gauge = state_gauge
        self._state_gauge.set(0)
        self._transitions = transitions
        self._failures = 0  # consecutive failed attempts while closed
        self._successes = 0  # consecutive successful probes while half-open
        self._probes = 0  # probes in flight while half-open
        self._opened_at = 0.0
        self._generation = 0
        self._changed = asyncio.Event()

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._open_remaining() <= 0:
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    @property
    def opened_at(self) -> float:
        """When the circuit last opened (on the breaker's clock, ``time.monotonic`` by default)."""
        return self._opened_at

    @property
    def is_open(self) -> bool:
        """True while the circuit is open and its ``open_duration`` has not passed."""
        return self.state is CircuitState.OPEN

    def _open_remaining(self) -> float:
        return self._opened_at + float(self._config.open_duration) - self._clock()

    def try_acquire(self) -> Permit | None:
        """A permit now, or None while open (or while half-open with every probe slot taken)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return Permit(self._generation, probe=False)
        if state is CircuitState.HALF_OPEN and self._probes < self._config.half_open_max_requests:
            self._probes += 1
            return Permit(self._generation, probe=True)
        return None

    async def acquire(self) -> tuple[Permit, float]:
        """Wait for a permit; returns it with the seconds spent waiting for it."""
        started = self._clock()
        while True:
            permit = self.try_acquire()
            if permit is not None:
                return permit, self._clock() - started
            changed = self._changed
            timeout = self._open_remaining() if self._state is CircuitState.OPEN else None
            try:
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                pass

    async def wait_open(self) -> None:
        """Until the circuit is open (returns at once when it is)."""
        while not self.is_open:
            await self._changed.wait()

    def half_open_now(self) -> bool:
        """Cut an open circuit's wait short (a last chance before shutdown drops what waits in memory).
        True if it was open."""
        if self._state is not CircuitState.OPEN:
            return False
        self._transition(CircuitState.HALF_OPEN)
        return True

    def release(self, permit: Permit) -> None:
        """The attempt was abandoned (cancelled) before it had an outcome."""
        if permit.probe and permit.generation == self._generation and self._probes > 0:
            self._probes -= 1
            self._notify()

    def record(self, permit: Permit, ok: bool) -> None:
        """The outcome of an attempt: ``ok`` is False for a failure that says the destination is down."""
        if permit.generation != self._generation:
            return  # admitted before the last transition: that state's story is over
        if self._state is CircuitState.CLOSED:
            if ok:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self._config.failure_threshold:
                self._logger.warning(
                    "%s: %d attempts in a row failed, circuit opened: no attempt for %gs, then a probe",
                    self.what, self._failures, float(self._config.open_duration))
                self._transition(CircuitState.OPEN)
            return
        if self._state is CircuitState.HALF_OPEN:
            if permit.probe and self._probes > 0:
                self._probes -= 1
            if not ok:
                self._logger.warning("%s: probe failed, circuit open again for %gs",
                                     self.what, float(self._config.open_duration))
                self._transition(CircuitState.OPEN)
                return
            self._successes += 1
            if self._successes >= self._config.half_open_max_requests:
                self._logger.info("%s: probe succeeded, circuit closed", self.what)
                self._transition(CircuitState.CLOSED)
            else:
                self._notify()

    def _transition(self, to: CircuitState) -> None:
        if to is self._state:
            return
        self._state = to
        self._generation += 1
        self._failures = self._successes = self._probes = 0
        if to is CircuitState.OPEN:
            self._opened_at = self._clock()
        self._state_gauge.set(int(to))
        self._transitions(to.label).inc()
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
