"""Feature gates, as otelcol's ``--feature-gates``: named switches for behaviour that is not the default.

``--feature-gates=a,-b,+c`` enables ``a`` and ``c`` and disables ``b``. Only the gates below exist; any
other id is refused, so that a gate a config relies on is never silently without effect. The chosen
gates are an object the caller hands to the loader and the validation, never process-wide state. A component
config class may name gates that switch its own options on (``feature_gates: {gate id: option name}``): the
validation sets those options to true when the gate is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Stage = Literal["alpha", "beta", "stable"]


@dataclass(frozen=True)
class Gate:
    id: str
    stage: Stage
    description: str
    default: bool = False


MERGE_APPEND = "confmap.enableMergeAppendOption"
ALLOW_NO_PIPELINES = "service.AllowNoPipelines"

TAIL_SAMPLING_RECORD_POLICY = "processor.tailsamplingprocessor.recordpolicy"
TAIL_SAMPLING_USE_TRACESTATE = "processor.tailsamplingprocessor.usetracestate"

GATES: tuple[Gate, ...] = (
    Gate(MERGE_APPEND, "alpha",
         "With several --config sources, join the component lists of service (extensions, a pipeline's "
         "receivers and exporters) instead of replacing them."),
    Gate(ALLOW_NO_PIPELINES, "alpha",
         "Accept a config without pipelines: only the extensions run."),
    Gate(TAIL_SAMPLING_RECORD_POLICY, "alpha",
         "tail_sampling: kept spans carry tailsampling.policy, tailsampling.composite_policy and "
         "tailsampling.cached_decision (as record_policy: true)."),
    Gate(TAIL_SAMPLING_USE_TRACESTATE, "alpha",
         "tail_sampling: the probabilistic policy decides by the tracestate's rv/th and kept spans carry th "
         "(as use_tracestate: true)."),
)
_BY_ID: Mapping[str, Gate] = {g.id: g for g in GATES}


class FeatureGates:
    """The gates in force for one run."""

    def __init__(self, enabled: Iterable[str] = ()) -> None:
        self._state = {g.id: g.default for g in GATES}
        for gate_id in enabled:
            self._state[gate_id] = True

    @classmethod
    def parse(cls, specs: Iterable[str]) -> FeatureGates:
        """From ``--feature-gates`` values (each comma separated). Raises ValueError naming every bad id."""
        gates = cls()
        errors: list[str] = []
        for spec in specs:
            if not spec:
                continue
            for i, item in enumerate(spec.split(",")):
                item = item.strip()
                if not item:
                    errors.append(f"empty feature gate identifier at index {i} of {spec!r}")
                    continue
                value = not item.startswith("-")
                gate_id = item.lstrip("+-")
                gate = _BY_ID.get(gate_id)
                if gate is None:
                    known = ", ".join(sorted(_BY_ID))
                    errors.append(f"no such feature gate {gate_id!r} (tracetriage implements: {known})")
                elif gate.stage == "stable" and not value:
                    errors.append(f"feature gate {gate_id!r} is stable and cannot be disabled")
                else:
                    gates._state[gate_id] = value
        if errors:
            raise ValueError("; ".join(errors))
        return gates

    def enabled(self, gate_id: str) -> bool:
        return self._state.get(gate_id, False)

    def __repr__(self) -> str:
        return "FeatureGates(" + ",".join(("" if on else "-") + g for g, on in sorted(self._state.items())) + ")"


__all__ = ["ALLOW_NO_PIPELINES", "GATES", "MERGE_APPEND", "TAIL_SAMPLING_RECORD_POLICY",
           "TAIL_SAMPLING_USE_TRACESTATE", "FeatureGates", "Gate"]
