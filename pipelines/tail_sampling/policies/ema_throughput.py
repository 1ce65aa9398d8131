"""``ema_throughput``: sample to a span budget, hard on frequent keys, keeping rare ones (Refinery's
EMA-throughput sampler, with its option names).

Every trace gets a **key** from ``field_list`` (see :func:`key_of`), with ``use_trace_length`` its span count
too. Spans are counted per key over each ``adjustment_interval``. At the end of an interval each key's
exponential moving average becomes ``weight * count + (1 - weight) * average``; keys whose average falls below
``age_out_value`` are forgotten. The budget for the next interval, ``goal_throughput_per_sec`` spans a second
(divided by the members of the Kafka consumer group with ``use_cluster_size``), is then shared out as
Refinery's dynamic samplers do: each key's share grows with the logarithm of its average, keys ordered from
rare to frequent, and what a rare key cannot use passes on to the more frequent ones. A key whose average fits
its share is kept whole; the others are kept with probability share / average. If the spans counted within an
interval reach ``burst_multiple`` times the averages' total (once ``burst_detection_delay`` intervals have
passed), the interval ends early.

Where this departs from Refinery, so that the kept rate holds to the goal and every key stays visible:

* Probabilities are not rounded to whole sample rates (1 in 2.4 is kept as 1 in 2.4, not 1 in 3).
* A throughput guard corrects the level twice a second: the expected kept spans of the last half second (the
  sum of probability x spans) against the goal move one multiplier applied to the keys sampled below 1 (a
  surge of a frequent key is absorbed within seconds, not one interval later). Rare keys are never scaled.
  At each adjustment the multiplier is carried over so that the last interval's traffic keeps the rate it
  had, so a surge is not corrected twice.
* The first trace of each key in an interval is kept (probability 1), so every key with traffic keeps at
  least one trace per interval.
* Keys beyond ``max_keys`` in one interval share one key.

The draw is a hash of ``hash_salt`` and the trace id (FNV-1a, then mixed), independent of the randomness head
sampling used, and the probability is recorded: kept spans carry it in ``th`` (the product with a head-sampled
``th``), so the sum of 1/p over kept spans estimates each key's true span count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.config import Duration, field
from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement, find, record_probability
from pipelines.tail_sampling.policies.probabilistic import DEFAULT_HASH_SALT, MAX_UINT64, fnv1a_64
from pipelines.tail_sampling.policies.registry import Build

OVERFLOW_KEY = "\x00overflow"
CONTROL_STEP = 0.5  # seconds between corrections of the throughput guard
STEP_LIMITS = (0.25, 4.0)  # the most one correction moves the guard
GUARD_LIMITS = (1 / 64, 64.0)
_STATUS = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}


@dataclass(frozen=True)
class EmaThroughputConfig:
    """Refinery's ``EMAThroughputSampler`` options and defaults (durations in Go form)."""

    field_list: tuple[str, ...] = field(min_len=1)
    goal_throughput_per_sec: float = field(100.0, gt=0)
    adjustment_interval: Duration = field(Duration(15.0), gt=0)
    weight: float = field(0.5, gt=0, le=1)
    age_out_value: float = field(0.5, ge=0)
    burst_multiple: float = field(2.0, ge=0)
    burst_detection_delay: int = field(3, ge=0)
    max_keys: int = field(500, ge=0)
    use_trace_length: bool = False
    use_cluster_size: bool = False
    initial_sample_rate: int = field(10, ge=1)
    hash_salt: str = ""

    def validate(self) -> Iterator[tuple[str, str]]:
        for i, name in enumerate(self.field_list or ()):
            if not name.strip():
                yield f"field_list[{i}]", "must not be empty"


def _mix(h: int) -> int:
    """splitmix64's finalizer: FNV-1a alone leaves the high bits of ids that differ in their last bytes alike."""
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & MAX_UINT64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & MAX_UINT64
    return h ^ (h >> 31)


def _root(trace: Trace) -> tuple[Span | None, int]:
    """The root span (the first without a parent, else the first span) and the index of its group."""
    first: tuple[Span | None, int] = (None, 0)
    for gi, group in enumerate(trace.groups()):
        for s in group.scope_spans.spans:
            if not s.parent_span_id:
                return s, gi
            if first[0] is None:
                first = (s, gi)
    return first


def _text(value: object) -> str:
    which = value.WhichOneof("value")  # type: ignore[attr-defined]
    if which is None:
        return ""
    v = getattr(value, which)
    if which == "bool_value":
        return "true" if v else "false"
    return str(v) if which in ("string_value", "int_value", "double_value") else ""


def key_of(trace: Trace, fields: tuple[str, ...], use_trace_length: bool) -> str:
    """The trace's key: for each field, ``name``/``status_code`` (also ``root.name``, ``root.status_code``) of
    the root span; ``root.<attr>`` from the root span, else its resource; ``<attr>`` from the root span, its
    resource, else the first span (or resource) that has it. Values joined by ``|``; missing ones empty."""
    root, root_group = _root(trace)
    groups = trace.groups()
    parts: list[str] = []
    for name in fields:
        bare = name[5:] if name.startswith("root.") else name
        if root is None:
            parts.append("")
            continue
        if bare == "name":
            parts.append(root.name)
            continue
        if bare == "status_code":
            parts.append(_STATUS.get(root.status.code, str(root.status.code)))
            continue
        found = find(root.attributes, bare)
        if found is None:
            found = find(groups[root_group].resource.attributes, bare)
        if found is None and bare == name:
            for group in groups:
                found = find(group.resource.attributes, bare)
                for s in group.scope_spans.spans:
                    if found is not None:
                        break
                    found = find(s.attributes, bare)
                if found is not None:
                    break
        parts.append("" if found is None else _text(found))
    if use_trace_length:
        parts.append(str(trace.span_count))
    return "|".join(parts)


def allocate(averages: dict[str, float], goal: float) -> dict[str, float]:
    """Keep probabilities per key for a budget of ``goal`` spans per interval (keys whose average fits their
    share are left out: kept whole)."""
    if not averages:
        return {}
    total = sum(max(1.0, a) for a in averages.values())
    if total <= goal:
        return {}
    log_sum = sum(math.log10(max(1.0, a)) for a in averages.values())
    ratio = goal / log_sum if log_sum > 0 else 0.0
    keys = sorted(averages, key=lambda k: (averages[k], k))
    rates: dict[str, float] = {}
    extra = 0.0
    for i, k in enumerate(keys):
        count = max(1.0, averages[k])
        share = max(1.0, math.log10(count) * ratio)
        bonus = extra / (len(keys) - i)
        share += bonus
        extra -= bonus
        if count <= share:
            extra += share - count
        else:
            rates[k] = share / count
    return rates


class EmaThroughput:
    __slots__ = (
        "_averages", "_burst_threshold", "_counts", "_expected", "_guard", "_interval_end", "_interval_sum",
        "_intervals", "_next_step", "_rates", "_seen", "cfg", "cluster_size", "name", "salt_state",
    )

    config_class = EmaThroughputConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: EmaThroughputConfig, build: Build) -> EmaThroughput:
        return cls(name, settings)

    def __init__(self, name: str, cfg: EmaThroughputConfig) -> None:
        self.name = name
        self.cfg = cfg
        self.salt_state = fnv1a_64((cfg.hash_salt or DEFAULT_HASH_SALT).encode())
        # Members of the consumer group sharing the goal (use_cluster_size); set by the processor.
        self.cluster_size: Callable[[], int] = lambda: 1
        self._counts: dict[str, int] = {}  # spans per key in this interval
        self._averages: dict[str, float] = {}
        self._rates: dict[str, float] | None = None  # None: before the first adjustment (initial_sample_rate)
        self._seen: set[str] = set()  # keys with a trace kept at probability 1 in this interval
        self._interval_end = -1.0
        self._intervals = 0
        self._interval_sum = 0
        self._burst_threshold = 0.0
        self._guard = 1.0
        self._next_step = -1.0
        self._expected = 0.0  # expected kept spans since the last guard step

    @property
    def goal(self) -> float:
        """Spans per second this sampler aims at."""
        members = max(1, self.cluster_size()) if self.cfg.use_cluster_size else 1
        return self.cfg.goal_throughput_per_sec / members

    def rates(self) -> dict[str, float]:
        """The current keep probabilities of the keys sampled below 1 (before the guard)."""
        return dict(self._rates or {})

    @property
    def guard(self) -> float:
        return self._guard

    def _advance(self, now: float) -> None:
        interval = float(self.cfg.adjustment_interval)
        if self._interval_end < 0:
            self._interval_end = now + interval
            self._next_step = now + CONTROL_STEP
            return
        if now >= self._next_step:
            steps = max(1.0, (now - self._next_step) / CONTROL_STEP + 1)
            goal = self.goal * CONTROL_STEP * steps
            if self._rates and self._expected > 0:
                lo, hi = GUARD_LIMITS
                hi = min(hi, 1.0 / min(self._rates.values()))  # beyond it every key is kept whole
                step = min(STEP_LIMITS[1], max(STEP_LIMITS[0], goal / self._expected))
                self._guard = min(hi, max(lo, self._guard * step))
            self._expected = 0.0
            self._next_step = now + CONTROL_STEP
        if now >= self._interval_end:
            self._adjust(now, full=True)

    def _adjust(self, now: float, full: bool) -> None:
        cfg = self.cfg
        interval = float(cfg.adjustment_interval)
        elapsed = interval if full else max(1e-9, interval - (self._interval_end - now))
        scale = interval / elapsed  # an interval ended early by a burst: its counts per whole interval
        w = cfg.weight
        averages = self._averages
        counts = self._counts
        for k in set(averages) | set(counts):
            avg = w * counts.get(k, 0) * scale + (1 - w) * averages.get(k, 0.0)
            if avg < cfg.age_out_value:
                averages.pop(k, None)
            else:
                averages[k] = avg
        rates = allocate(averages, self.goal * interval)
        before = self._rates
        if before and rates:
            # Carry the level the guard reached over to the new rates: the keep rate of this interval's traffic
            # stays what it was, and the guard goes on correcting from there (not twice for one surge).
            was = sum(min(1.0, before[k] * self._guard) * c for k, c in counts.items() if k in before)
            now_ = sum(rates[k] * c for k, c in counts.items() if k in rates)
            if was > 0 and now_ > 0:
                lo, hi = GUARD_LIMITS
                self._guard = min(hi, 1.0 / min(rates.values()), max(lo, was / now_))
        self._rates = rates
        self._burst_threshold = cfg.burst_multiple * sum(averages.values())
        self._counts = {}
        self._seen = set()
        self._interval_sum = 0
        self._intervals += 1
        self._interval_end = now + interval

    def probability(self, key: str) -> float:
        rates = self._rates
        if rates is None:
            return 1.0 / self.cfg.initial_sample_rate
        base = rates.get(key)
        return 1.0 if base is None else min(1.0, base * self._guard)

    def evaluate(self, trace: Trace, now: float) -> Decision:
        self._advance(now)
        cfg = self.cfg
        key = key_of(trace, cfg.field_list, cfg.use_trace_length)
        counts = self._counts
        if key not in counts and cfg.max_keys and len(counts) >= cfg.max_keys:
            key = OVERFLOW_KEY
        n = trace.span_count
        counts[key] = counts.get(key, 0) + n
        self._interval_sum += n
        if key not in self._seen:
            self._seen.add(key)
            p = 1.0
        else:
            p = self.probability(key)
        self._expected += p * n
        record_probability(trace, self.name, p)
        if self._burst_threshold > 0 and self._interval_sum >= self._burst_threshold \
                and self._intervals >= cfg.burst_detection_delay:
            self._adjust(now, full=False)
        if p >= 1.0:
            return Decision.SAMPLED
        draw = _mix(fnv1a_64(trace.trace_id, self.salt_state)) / MAX_UINT64
        return Decision.SAMPLED if draw < p else Decision.NOT_SAMPLED
