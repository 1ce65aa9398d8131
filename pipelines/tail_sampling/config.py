"""Config of the ``tail_sampling`` processor: the OTel Collector contrib options, names and defaults.

Top level: ``decision_wait`` (30s), ``num_traces`` (50000), ``expected_new_traces_per_sec`` (0),
``decision_cache: {sampled_cache_size, non_sampled_cache_size}`` (0: off), ``sample_on_first_match``,
``drop_pending_traces_on_shutdown``, ``block_on_overflow``, ``decision_wait_after_root_received`` (0: off),
``maximum_trace_size_bytes`` (0: no limit) and the required ``policies``. The trace buffer reads all but
``policies`` and ``sample_on_first_match`` (see :attr:`Config.buffer_settings`).

What kept spans record (see :mod:`pipelines.tail_sampling.processor`): ``record_policy`` (contrib's
``processor.tailsamplingprocessor.recordpolicy`` gate), ``use_tracestate`` (its
``processor.tailsamplingprocessor.usetracestate`` gate), ``sampling_precision`` (hex digits of ``th``, 4),
``adjusted_count: {enabled, attribute}``; ``dry_run`` keeps everything and marks what would be dropped;
``recent_decisions`` (10000, 0: off) bounds the ring ``GET /debug/traces/{trace_id}`` answers from.

A policy has a ``name``, a ``type`` and the block named like its type (``latency: {threshold_ms: 500}``).
``and``/``drop`` hold ``and_sub_policy``/``drop_sub_policy`` lists, ``not`` holds one ``not_sub_policy``,
``composite`` holds ``composite_sub_policy`` (which may use ``and``) with ``rate_allocation`` and
``policy_order``. ``ottl_condition`` is refused: there is no OTTL engine here. The types, and the dataclass
of each type's block, come from the policy registry (:mod:`pipelines.tail_sampling.policies.registry`);
each block's dataclass lives in its policy's module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

from collector.config import ByteSize, Duration, field
from collector.consumer import TraceBufferSettings
from pipelines.tail_sampling.policies.registry import OTTL_REFUSAL, PolicyConfig


@dataclass(frozen=True)
class DecisionCacheConfig:
    sampled_cache_size: int = field(0, ge=0)
    non_sampled_cache_size: int = field(0, ge=0)


@dataclass(frozen=True)
class AdjustedCountConfig:
    """A span attribute with 1 / the probability each kept span was kept with (for backends that read
    attributes rather than ``th``)."""

    enabled: bool = False
    attribute: str = "sampling.adjusted_count"

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.enabled and not self.attribute.strip():
            yield "attribute", "must not be empty when enabled"


RECORD_POLICY_GATE = "processor.tailsamplingprocessor.recordpolicy"
USE_TRACESTATE_GATE = "processor.tailsamplingprocessor.usetracestate"


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
    record_policy: bool = False
    use_tracestate: bool = False
    sampling_precision: int = field(4, ge=1, le=14)
    adjusted_count: AdjustedCountConfig = field(default_factory=AdjustedCountConfig)
    dry_run: bool = False
    recent_decisions: int = field(10000, ge=0)

    # contrib's feature gates (--feature-gates) that turn on the same switches as these options
    feature_gates: ClassVar[Mapping[str, str]] = {RECORD_POLICY_GATE: "record_policy",
                                                  USE_TRACESTATE_GATE: "use_tracestate"}

    def validate(self) -> Iterator[tuple[str, str]]:
        names: set[str] = set()
        for i, policy in enumerate(self.policies or ()):
            if not policy.name:
                yield f"policies[{i}].name", "must not be empty"
            elif policy.name in names:
                yield f"policies[{i}].name", f"duplicate policy name {policy.name!r}"
            names.add(policy.name)

    def warnings(self) -> Iterator[tuple[str, str]]:
        if self.dry_run:
            yield "dry_run", "is on: every trace is kept (and marked with the decision it would have had)"
        if self.sample_on_first_match and (self.use_tracestate or self.adjusted_count.enabled):
            yield "sample_on_first_match", ("stops at the first policy that keeps a trace, so a later, less strict "
                                            "one cannot lower the recorded threshold: adjusted counts may be off")

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


__all__ = ["OTTL_REFUSAL", "RECORD_POLICY_GATE", "USE_TRACESTATE_GATE", "AdjustedCountConfig", "Config",
           "DecisionCacheConfig", "PolicyConfig"]
