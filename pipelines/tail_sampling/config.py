"""Config of the ``tail_sampling`` processor: the OTel Collector contrib options, names and defaults.

Top level: ``decision_wait`` (30s), ``num_traces`` (50000), ``expected_new_traces_per_sec`` (0),
``decision_cache: {sampled_cache_size, non_sampled_cache_size}`` (0: off), ``sample_on_first_match``,
``drop_pending_traces_on_shutdown``, ``block_on_overflow``, ``decision_wait_after_root_received`` (0: off),
``maximum_trace_size_bytes`` (0: no limit) and the required ``policies``. The trace buffer reads all but
``policies`` and ``sample_on_first_match`` (see :attr:`Config.buffer_settings`).

A policy has a ``name``, a ``type`` and the block named like its type (``latency: {threshold_ms: 500}``).
``and``/``drop`` hold ``and_sub_policy``/``drop_sub_policy`` lists, ``not`` holds one ``not_sub_policy``,
``composite`` holds ``composite_sub_policy`` (which may use ``and``) with ``rate_allocation`` and
``policy_order``. ``ottl_condition`` is refused: there is no OTTL engine here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from collector.config import ByteSize, Duration, field
from collector.traces import TraceBufferSettings

SharedType = Literal[
    "always_sample", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute",
    "rate_limiting", "bytes_limiting", "span_count", "trace_state", "boolean_attribute", "trace_flags",
    "ottl_condition",
]
CompositeSubType = Literal[
    "always_sample", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute",
    "rate_limiting", "bytes_limiting", "span_count", "trace_state", "boolean_attribute", "trace_flags",
    "ottl_condition", "and",
]
PolicyType = Literal[
    "always_sample", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute",
    "rate_limiting", "bytes_limiting", "span_count", "trace_state", "boolean_attribute", "trace_flags",
    "ottl_condition", "and", "not", "drop", "composite",
]

OTTL_REFUSAL = (
    "ottl_condition policies are not supported by tracetriage (it has no OTTL engine); express the condition "
    "with string_attribute, numeric_attribute, boolean_attribute or status_code policies, combined with and, "
    "not or drop policies"
)

# Config key of each policy block -> dataclass attribute holding it.
_BLOCK_ATTR = {
    "latency": "latency", "numeric_attribute": "numeric_attribute", "probabilistic": "probabilistic",
    "status_code": "status_code", "string_attribute": "string_attribute", "rate_limiting": "rate_limiting",
    "bytes_limiting": "bytes_limiting", "span_count": "span_count", "trace_state": "trace_state",
    "boolean_attribute": "boolean_attribute", "ottl_condition": "ottl_condition",
    "and": "and_", "not": "not_", "drop": "drop", "composite": "composite",
}
_NO_BLOCK = frozenset({"always_sample", "trace_flags"})


# -- policy blocks ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LatencyConfig:
    """Trace duration (earliest start to latest end) ``>= threshold_ms``; with ``upper_threshold_ms``,
    ``threshold_ms < duration <= upper_threshold_ms``."""

    threshold_ms: int = field(0, ge=0)
    upper_threshold_ms: int = field(0, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.upper_threshold_ms and self.upper_threshold_ms <= self.threshold_ms:
            yield ("upper_threshold_ms",
                   f"must be greater than threshold_ms ({self.threshold_ms}), or 0 for no upper bound")


@dataclass(frozen=True)
class NumericAttributeConfig:
    """An int attribute (span or resource) in ``[min_value, max_value]``. As in the OTel Collector, 0 means
    unset: an unset bound is open."""

    key: str = ""
    min_value: int = 0
    max_value: int = 0
    invert_match: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "must not be empty"
        if self.min_value == 0 and self.max_value == 0:
            yield "", "needs min_value or max_value (0 means unset, as in the OTel Collector)"
        elif self.min_value and self.max_value and self.min_value > self.max_value:
            yield "min_value", f"must be <= max_value ({self.max_value}), got {self.min_value}"


@dataclass(frozen=True)
class ProbabilisticConfig:
    """``sampling_percentage`` of traces, decided by a hash of ``hash_salt`` and the trace id (>= 100: all)."""

    hash_salt: str = ""
    sampling_percentage: float = field(0.0, ge=0)


@dataclass(frozen=True)
class StatusCodeConfig:
    status_codes: tuple[Literal["OK", "ERROR", "UNSET"], ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.status_codes:
            yield "status_codes", "must list at least one of OK, ERROR, UNSET"


@dataclass(frozen=True)
class StringAttributeConfig:
    """A string attribute (span or resource) equal to one of ``values`` (or matching one of them as a
    regular expression, searched anywhere in the value, with ``enabled_regex_matching``)."""

    key: str = ""
    values: tuple[str, ...] = ()
    enabled_regex_matching: bool = False
    cache_max_size: int = field(0, ge=0)  # regex results kept (LRU); 0: 128
    invert_match: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "must not be empty"
        if self.enabled_regex_matching:
            for i, value in enumerate(self.values):
                try:
                    re.compile(value)
                except re.error as e:
                    yield f"values[{i}]", f"invalid regular expression {value!r}: {e}"


@dataclass(frozen=True)
class RateLimitingConfig:
    spans_per_second: int = field(0, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.spans_per_second <= 0:
            yield "spans_per_second", "must be > 0"


@dataclass(frozen=True)
class BytesLimitingConfig:
    """Token bucket on trace bytes: refilled at ``bytes_per_second``, holding at most ``burst_capacity``
    (0: twice ``bytes_per_second``)."""

    bytes_per_second: int = field(0, ge=0)
    burst_capacity: int = field(0, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.bytes_per_second <= 0:
            yield "bytes_per_second", "must be > 0"


@dataclass(frozen=True)
class SpanCountConfig:
    """``min_spans <= spans <= max_spans`` (``max_spans`` 0: no upper bound)."""

    min_spans: int = field(0, ge=0)
    max_spans: int = field(0, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.max_spans and self.max_spans < self.min_spans:
            yield "max_spans", f"must be >= min_spans ({self.min_spans}), or 0 for no upper bound"


@dataclass(frozen=True)
class TraceStateConfig:
    key: str = ""
    values: tuple[str, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "must not be empty"


@dataclass(frozen=True)
class BooleanAttributeConfig:
    key: str = ""
    value: bool = False
    invert_match: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "must not be empty"


@dataclass(frozen=True)
class RateAllocationConfig:
    policy: str = ""
    percent: int = field(0, ge=0, le=100)


# -- policies ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SharedPolicyConfig:
    """The policy types allowed everywhere (also inside and/drop/not)."""

    type: SharedType
    name: str = ""
    latency: LatencyConfig | None = None
    numeric_attribute: NumericAttributeConfig | None = None
    probabilistic: ProbabilisticConfig | None = None
    status_code: StatusCodeConfig | None = None
    string_attribute: StringAttributeConfig | None = None
    rate_limiting: RateLimitingConfig | None = None
    bytes_limiting: BytesLimitingConfig | None = None
    span_count: SpanCountConfig | None = None
    trace_state: TraceStateConfig | None = None
    boolean_attribute: BooleanAttributeConfig | None = None
    ottl_condition: dict[str, Any] | None = None

    def block(self) -> Any:
        """The settings block read for this policy's type (None for types without one)."""
        attr = _BLOCK_ATTR.get(self.type)
        return getattr(self, attr, None) if attr else None

    def validate(self) -> Iterator[tuple[str, str]]:
        if not isinstance(self.type, str):  # missing: reported by the decoder
            return
        if self.type == "ottl_condition":
            yield "type", OTTL_REFUSAL
            return
        for key, attr in _BLOCK_ATTR.items():
            if key != self.type and getattr(self, attr, None) is not None:
                yield key, f"is only read by policies of type {key!r}; this policy's type is {self.type!r}"
        if self.type not in _NO_BLOCK and self.block() is None:
            yield self.type, f"is required for a policy of type {self.type!r}"


@dataclass(frozen=True)
class AndConfig:
    and_sub_policy: tuple[SharedPolicyConfig, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.and_sub_policy:
            yield "and_sub_policy", "must list at least one policy"


@dataclass(frozen=True)
class DropConfig:
    drop_sub_policy: tuple[SharedPolicyConfig, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.drop_sub_policy:
            yield "drop_sub_policy", "must list at least one policy"


@dataclass(frozen=True)
class NotConfig:
    not_sub_policy: SharedPolicyConfig | None = None

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.not_sub_policy is None:
            yield "not_sub_policy", "is required"


@dataclass(frozen=True)
class CompositeSubPolicyConfig(SharedPolicyConfig):
    type: CompositeSubType  # type: ignore[assignment]
    and_: AndConfig | None = field(None, alias="and")


@dataclass(frozen=True)
class CompositeConfig:
    """Sub-policies tried in ``policy_order`` (then any not named there, in list order); the first that
    samples decides, within its per-second span budget: ``percent`` of ``max_total_spans_per_second`` from
    ``rate_allocation`` (an entry with percent 0: an equal share), and for sub-policies without an entry
    what the entries leave unallocated. All sub-policies together stay within the total."""

    max_total_spans_per_second: int = field(0, ge=0)
    policy_order: tuple[str, ...] = ()
    composite_sub_policy: tuple[CompositeSubPolicyConfig, ...] = ()
    rate_allocation: tuple[RateAllocationConfig, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.max_total_spans_per_second <= 0:
            yield "max_total_spans_per_second", "must be > 0"
        if not self.composite_sub_policy:
            yield "composite_sub_policy", "must list at least one policy"
        names: set[str] = set()
        for i, sub in enumerate(self.composite_sub_policy):
            if not sub.name:
                yield f"composite_sub_policy[{i}].name", "must not be empty (policy_order and rate_allocation use it)"
            elif sub.name in names:
                yield f"composite_sub_policy[{i}].name", f"duplicate sub-policy name {sub.name!r}"
            names.add(sub.name)
        seen: set[str] = set()
        for i, name in enumerate(self.policy_order):
            if name not in names:
                yield f"policy_order[{i}]", f"{name!r} is not the name of a composite_sub_policy"
            elif name in seen:
                yield f"policy_order[{i}]", f"{name!r} is listed twice"
            seen.add(name)
        seen = set()
        for i, alloc in enumerate(self.rate_allocation):
            if alloc.policy not in names:
                yield f"rate_allocation[{i}].policy", f"{alloc.policy!r} is not the name of a composite_sub_policy"
            elif alloc.policy in seen:
                yield f"rate_allocation[{i}].policy", f"{alloc.policy!r} is allocated twice"
            seen.add(alloc.policy)
        total = sum(a.percent for a in self.rate_allocation)
        if total > 100:
            yield "rate_allocation", f"percents add up to {total}, more than 100"


@dataclass(frozen=True)
class PolicyConfig(SharedPolicyConfig):
    """A top-level policy: any type, including the compound ones."""

    type: PolicyType  # type: ignore[assignment]
    and_: AndConfig | None = field(None, alias="and")
    not_: NotConfig | None = field(None, alias="not")
    drop: DropConfig | None = None
    composite: CompositeConfig | None = None


@dataclass(frozen=True)
class DecisionCacheConfig:
    sampled_cache_size: int = field(0, ge=0)
    non_sampled_cache_size: int = field(0, ge=0)


@dataclass(frozen=True)
class Config:
    """``tail_sampling`` settings (see the module docstring)."""

    policies: tuple[PolicyConfig, ...] = field(min_len=1)
    decision_wait: Duration = field(Duration(30.0), gt=0)
    num_traces: int = field(50000, gt=0)
    expected_new_traces_per_sec: int = field(0, ge=0)
    decision_cache: DecisionCacheConfig = field(default_factory=DecisionCacheConfig)
    sample_on_first_match: bool = False
    drop_pending_traces_on_shutdown: bool = False
    block_on_overflow: bool = False
    decision_wait_after_root_received: Duration = field(Duration(0.0), ge=0)
    maximum_trace_size_bytes: ByteSize = field(ByteSize(0), ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        names: set[str] = set()
        for i, policy in enumerate(self.policies or ()):
            if not policy.name:
                yield f"policies[{i}].name", "must not be empty"
            elif policy.name in names:
                yield f"policies[{i}].name", f"duplicate policy name {policy.name!r}"
            names.add(policy.name)

    @property
    def buffer_settings(self) -> TraceBufferSettings:
        """What the pipeline's trace buffer takes from this config."""
        return TraceBufferSettings(
            decision_wait=float(self.decision_wait),
            num_traces=self.num_traces,
            expected_new_traces_per_sec=self.expected_new_traces_per_sec,
            sampled_cache_size=self.decision_cache.sampled_cache_size,
            non_sampled_cache_size=self.decision_cache.non_sampled_cache_size,
            block_on_overflow=self.block_on_overflow,
            decision_wait_after_root_received=float(self.decision_wait_after_root_received),
            maximum_trace_size_bytes=int(self.maximum_trace_size_bytes),
            drop_pending_traces_on_shutdown=self.drop_pending_traces_on_shutdown,
        )
