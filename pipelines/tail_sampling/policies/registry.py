"""The policy registry: one table from the contrib ``type`` name to the class that implements it.

A new policy is one module in this package (the policy class and the dataclass of its settings block) and
one line in :data:`POLICIES` (``docs/recipes/tail_sampling_policy.md``). Everything else reads the table:
config decoding (which types exist, where each may stand, the settings block named like the type),
validation, and the building of ``and``/``drop``/``not``/``composite`` sub-policies. A policy kept in
another package is added with :func:`register`.

A policy entry in config is ``{name, type, <type>: {settings}}``, as in the contrib processor:
:class:`PolicyConfig` for the processor's ``policies``, :class:`CompositeSubPolicyConfig` inside a
composite, :class:`SubPolicyConfig` inside ``and``, ``drop`` and ``not``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from collector.config import Decoder, SelfDecoding
from collector.config.schema import join
from pipelines.tail_sampling.policies.base import Placement, Policy

# contrib `type` -> "module:Class", the module under pipelines.tail_sampling.policies (or a dotted path).
POLICIES: dict[str, str | PolicyClass] = {
    "always_sample": "always_sample:AlwaysSample",
    "latency": "latency:Latency",
    "numeric_attribute": "numeric_attribute:NumericAttribute",
    "probabilistic": "probabilistic:Probabilistic",
    "status_code": "status_code:StatusCode",
    "string_attribute": "string_attribute:StringAttribute",
    "rate_limiting": "rate_limiting:RateLimiting",
    "bytes_limiting": "bytes_limiting:BytesLimiting",
    "span_count": "span_count:SpanCount",
    "trace_state": "trace_state:TraceState",
    "boolean_attribute": "boolean_attribute:BooleanAttribute",
    "trace_flags": "trace_flags:TraceFlags",
    "and": "and_:And",
    "not": "not_:Not",
    "drop": "drop:Drop",
    "composite": "composite:Composite",
    "ema_throughput": "ema_throughput:EmaThroughput",  # Refinery's EMA-throughput sampler
}

OTTL_REFUSAL = (
    "ottl_condition policies are not supported by tracetriage (it has no OTTL engine); express the condition "
    "with string_attribute, numeric_attribute, boolean_attribute or status_code policies, combined with and, "
    "not or drop policies"
)
# Contrib types refused with a reason (their settings block is not reported as unknown).
REFUSED: dict[str, str] = {"ottl_condition": OTTL_REFUSAL}

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_WHERE = {Placement.TOP: "at the top level (policies)", Placement.COMPOSITE: "in composite_sub_policy",
          Placement.SUB: "in and_sub_policy, drop_sub_policy or not_sub_policy"}

Build = Callable[["PolicyConfig"], Policy]  # builds the policy of a sub-policy entry


@runtime_checkable
class PolicyClass(Protocol):
    """What the registry needs of a policy class (the class itself, not its instances).

    * ``config_class``: the frozen dataclass of its settings block (the key named like its ``type``:
      ``latency: {threshold_ms: 500}``), kept in the policy's own module; None for a type without one.
    * ``placement``: where it may stand (most policies: :attr:`Placement.ANYWHERE`).
    * ``from_config(name, settings, build)``: the policy, from its validated settings block (None when it
      has none); ``build`` makes the policy of a sub-policy entry (for ``and``, ``not``, ``composite``).
    """

    config_class: type[Any] | None
    placement: Placement

    def from_config(self, name: str, settings: Any, build: Build) -> Policy: ...


def register(type_name: str, target: str | PolicyClass) -> None:
    """Add a policy type: ``target`` is ``"module:Class"`` (a module of this package, or a dotted path) or
    the class itself. The name must be new (a contrib name already here, or refused, cannot be replaced)."""
    if not _TYPE_RE.match(type_name):
        raise ValueError(f"policy type {type_name!r}: use lower-case letters, digits and '_'")
    if type_name in POLICIES or type_name in REFUSED:
        raise ValueError(f"policy type {type_name!r} is already defined")
    if isinstance(target, str) and ":" not in target:
        raise ValueError(f"policy type {type_name!r}: target {target!r} must be 'module:Class'")
    POLICIES[type_name] = target


def names() -> list[str]:
    """Every policy type, in table order."""
    return list(POLICIES)


def policy_class(type_name: str) -> PolicyClass:
    """The class of a registered type (its module imported on first use). Raises KeyError for an unknown
    type, TypeError for an entry that is not a policy class."""
    target = POLICIES[type_name]
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        if "." not in module_name:
            module_name = f"{__package__}.{module_name}"
        target = getattr(importlib.import_module(module_name), attr)
    if not isinstance(target, PolicyClass):
        raise TypeError(f"policy type {type_name!r}: {POLICIES[type_name]!r} is not a policy class "
                        "(it needs config_class, placement and from_config)")
    return target


def allowed(placement: Placement) -> list[str]:
    """The types that may stand at ``placement``, in table order."""
    return [n for n in POLICIES if policy_class(n).placement & placement]


def build(cfg: PolicyConfig) -> Policy:
    """The policy for a validated config entry (top-level, composite or and/drop/not sub-policy)."""
    cls = policy_class(cfg.type)
    if cls.config_class is not None and cfg.settings is None:
        raise ValueError(f"policy {cfg.name!r}: type {cfg.type!r} needs its settings (config not validated?)")
    return cls.from_config(cfg.name, cfg.settings, build)


@dataclass(frozen=True)
class PolicyConfig(SelfDecoding):
    """A policy entry of the processor's ``policies``: ``name``, ``type`` and, for a type with settings, the
    block named like the type (decoded into the type's ``config_class``, here ``settings``)."""

    type: str
    name: str = ""
    settings: Any = None

    placement: ClassVar[Placement] = Placement.TOP

    @classmethod
    def decode_config(cls, decoder: Decoder, value: Any, path: str) -> Self:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            decoder.error(path, f"must be a mapping with name and type, got {type(value).__name__} {value!r}")
            return cls(type="")
        name = decoder.decode(str, value["name"], join(path, "name")) if "name" in value else ""
        type_, policy = cls._type(decoder, value.get("type"), join(path, "type"))
        config_class = policy.config_class if policy is not None else None
        blocks = {n for n in POLICIES if policy_class(n).config_class is not None} | set(REFUSED)
        settings = None
        for key, raw in value.items():
            if key in ("name", "type"):
                continue
            key_path = join(path, str(key))
            if key == type_ and (config_class is not None or type_ in REFUSED):
                if config_class is not None and raw is not None:
                    settings = decoder.decode(config_class, raw, key_path)
            elif key in blocks:
                if type_:
                    decoder.error(key_path, f"is only read by policies of type {key!r}; this policy's type is "
                                            f"{type_!r}")
            else:
                valid = ", ".join(["name", "type", *([type_] if config_class is not None else [])])
                decoder.error(key_path, f"unknown key (valid keys: {valid})")
        if config_class is not None and settings is None:
            decoder.error(join(path, type_), f"is required for a policy of type {type_!r}")
        return cls(type=type_, name=name, settings=settings)

    @classmethod
    def _type(cls, decoder: Decoder, raw: Any, path: str) -> tuple[str, PolicyClass | None]:
        """The type name (kept when refused, "" when invalid) and its class (None unless usable here)."""
        if raw is None:
            decoder.error(path, "is required")
            return "", None
        if not isinstance(raw, str):
            decoder.error(path, f"must be a string, got {type(raw).__name__} {raw!r}")
            return "", None
        if raw in REFUSED:
            decoder.error(path, REFUSED[raw])
            return raw, None
        choices = allowed(cls.placement)
        if raw not in choices:
            where = ""
            if raw in POLICIES:
                where = f" ({raw!r} policies may stand only " + " or ".join(
                    _WHERE[p] for p in (Placement.TOP, Placement.COMPOSITE, Placement.SUB)
                    if p & policy_class(raw).placement) + ")"
            decoder.error(path, f"must be one of {', '.join(repr(c) for c in choices)}, got {raw!r}{where}")
            return "", None
        return raw, policy_class(raw)


@dataclass(frozen=True)
class CompositeSubPolicyConfig(PolicyConfig):
    """An entry of a composite policy's ``composite_sub_policy``."""

    placement: ClassVar[Placement] = Placement.COMPOSITE


@dataclass(frozen=True)
class SubPolicyConfig(PolicyConfig):
    """An entry of ``and_sub_policy``, ``drop_sub_policy`` or ``not_sub_policy``."""

    placement: ClassVar[Placement] = Placement.SUB
