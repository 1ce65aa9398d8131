"""Sampling policies, one module each, behind one interface (:class:`~.base.Policy`); :func:`build` makes
a policy from its config."""

from __future__ import annotations

from pipelines.tail_sampling.config import CompositeSubPolicyConfig, PolicyConfig, SharedPolicyConfig
from pipelines.tail_sampling.policies.always_sample import AlwaysSample
from pipelines.tail_sampling.policies.and_ import And
from pipelines.tail_sampling.policies.base import Decision, Policy, PolicyEvaluationError
from pipelines.tail_sampling.policies.boolean_attribute import BooleanAttribute
from pipelines.tail_sampling.policies.bytes_limiting import BytesLimiting
from pipelines.tail_sampling.policies.composite import Composite
from pipelines.tail_sampling.policies.drop import Drop
from pipelines.tail_sampling.policies.latency import Latency
from pipelines.tail_sampling.policies.not_ import Not
from pipelines.tail_sampling.policies.numeric_attribute import NumericAttribute
from pipelines.tail_sampling.policies.probabilistic import Probabilistic
from pipelines.tail_sampling.policies.rate_limiting import RateLimiting
from pipelines.tail_sampling.policies.span_count import SpanCount
from pipelines.tail_sampling.policies.status_code import StatusCode
from pipelines.tail_sampling.policies.string_attribute import StringAttribute
from pipelines.tail_sampling.policies.trace_flags import TraceFlags
from pipelines.tail_sampling.policies.trace_state import TraceState


def build(cfg: SharedPolicyConfig) -> Policy:
    """The policy for a validated config (top-level, composite or and/drop/not sub-policy)."""
    name, kind, block = cfg.name, str(cfg.type), cfg.block()
    if kind == "always_sample":
        return AlwaysSample(name)
    if kind == "trace_flags":
        return TraceFlags(name)
    if kind in ("and", "drop") and isinstance(cfg, PolicyConfig | CompositeSubPolicyConfig):
        subs = [build(s) for s in (block.and_sub_policy if kind == "and" else block.drop_sub_policy)]
        return And(name, subs) if kind == "and" else Drop(name, subs)
    if kind == "not":
        return Not(name, build(block.not_sub_policy))
    if kind == "composite":
        return Composite(name, block, [build(s) for s in block.composite_sub_policy])
    simple = _SIMPLE.get(kind)
    if simple is None or block is None:
        raise ValueError(f"policy {name!r}: type {kind!r} cannot be built (config not validated?)")
    return simple(name, block)  # type: ignore[no-any-return]


_SIMPLE: dict[str, type] = {
    "latency": Latency,
    "numeric_attribute": NumericAttribute,
    "probabilistic": Probabilistic,
    "status_code": StatusCode,
    "string_attribute": StringAttribute,
    "rate_limiting": RateLimiting,
    "bytes_limiting": BytesLimiting,
    "span_count": SpanCount,
    "trace_state": TraceState,
    "boolean_attribute": BooleanAttribute,
}

__all__ = [
    "AlwaysSample", "And", "BooleanAttribute", "BytesLimiting", "Composite", "Decision", "Drop", "Latency", "Not",
    "NumericAttribute", "Policy", "PolicyEvaluationError", "Probabilistic", "RateLimiting", "SpanCount",
    "StatusCode", "StringAttribute", "TraceFlags", "TraceState", "build",
]
