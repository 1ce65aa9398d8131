"""Faults to inject, grouped into named scenarios, from YAML or the compact CLI syntax.

* ``error``: spans of ``service`` (its server/consumer operations, or ``operation``) fail: status ERROR
  (or, with ``via: attribute``, status UNSET and ``error=true``), an ``exception`` event and ``error.type``.
  With ``cascade: true`` (the default) the failure travels up: the caller's CLIENT span and its own span
  fail too, up to the entrypoint, and the caller skips its remaining sequential calls.
* ``latency``: ``add_ms`` more own time for ``service`` (or a database / external API).
* ``database_down``: CLIENT spans to ``database`` (a database or an external API) fail, cascading.
* ``noise``: spans of ``service`` (or every span) get ``error=true`` with status OK: not an error.

``rate`` of error, latency and database_down is the fraction of traces in which the fault is active;
the ``rate`` of noise is the fraction of spans marked. A trace picks one scenario by ``weight`` and draws
each of its faults independently, so two faults can be active in one trace (two independent failures).

Compact syntax (``--fault``)::

    error:SERVICE[/OPERATION]:RATE[:nocascade][:attribute]
    latency:SERVICE[/OPERATION]:ADD_MS[:RATE]
    db:DATABASE:RATE                      (alias database_down:)
    noise[:SERVICE]:RATE

Shipped fault files (``--faults NAME``): ``accuracy`` (single, cascade, independent, caller-also-fails,
noisy; slow-service and slow-database for the latency walk), for root-cause accuracy runs against the shop
topology.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from bench.loadgen.topology import Topology
from collector.config.schema import ConfigError, ConfigIssue, decode, field

FaultType = Literal["error", "latency", "database_down", "noise"]


@dataclass(frozen=True)
class Fault:
    type: FaultType
    service: str = ""
    operation: str = ""
    database: str = ""
    rate: float = field(1.0, ge=0, le=1)
    cascade: bool = True
    add_ms: float = field(0.0, ge=0)
    via: Literal["status", "attribute"] = "status"
    error_type: str = ""                # exception.type / error.type; a default per fault otherwise
    message: str = ""                   # exception.message and the status message

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.type in ("error", "latency") and not self.service:
            yield "service", f"is required for a {self.type} fault"
        if self.type == "database_down" and not self.database:
            yield "database", "is required for a database_down fault"
        if self.type != "database_down" and self.database:
            yield "database", f"only applies to database_down faults (use service for {self.type})"
        if self.type == "latency" and self.add_ms <= 0:
            yield "add_ms", "must be > 0 for a latency fault"
        if self.type != "latency" and self.add_ms:
            yield "add_ms", "only applies to latency faults"
        if self.operation and not self.service and self.type != "database_down":
            yield "operation", "needs service"

    @property
    def label(self) -> str:
        """Compact form, as written on the command line."""
        target = self.database or self.service
        if self.operation:
            target += f"/{self.operation}"
        if self.type == "latency":
            return f"latency:{target}:{self.add_ms:g}:{self.rate:g}"
        if self.type == "noise":
            return f"noise:{target}:{self.rate:g}" if target else f"noise:{self.rate:g}"
        kind = "db" if self.type == "database_down" else "error"
        extra = ("" if self.cascade else ":nocascade") + (":attribute" if self.via == "attribute" else "")
        return f"{kind}:{target}:{self.rate:g}{extra}"


@dataclass(frozen=True)
class Scenario:
    name: str
    weight: float = field(1.0, gt=0)
    faults: tuple[Fault, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class FaultPlan:
    """One or more scenarios; each trace picks one by weight."""

    scenarios: tuple[Scenario, ...] = field(default_factory=tuple)
    faults: tuple[Fault, ...] = field(default_factory=tuple)   # shorthand: one scenario named "faults"

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.scenarios and self.faults:
            yield "faults", "give either scenarios or faults, not both"
        seen: set[str] = set()
        for i, s in enumerate(self.scenarios):
            if s.name in seen:
                yield f"scenarios[{i}].name", f"scenario {s.name!r} is defined twice"
            seen.add(s.name)

    def all_scenarios(self) -> tuple[Scenario, ...]:
        if self.scenarios:
            return tuple(self.scenarios)
        if self.faults:
            return (Scenario("faults", 1.0, tuple(self.faults)),)
        return (Scenario("healthy", 1.0, ()),)


NO_FAULTS = FaultPlan()


def plan_from_faults(faults: Sequence[Fault], name: str = "") -> FaultPlan:
    """A plan with one scenario holding ``faults`` (named after them unless ``name`` is given)."""
    if not faults:
        return NO_FAULTS
    return FaultPlan(scenarios=(Scenario(name or "+".join(f.label for f in faults), 1.0, tuple(faults)),))


def parse_fault(spec: str) -> Fault:
    """Parse the compact syntax; raise ValueError saying what is wrong."""
    parts = spec.strip().split(":")
    kind, args = parts[0].lower(), parts[1:]

    def rate(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"fault {spec!r}: rate must be a number between 0 and 1, got {text!r}") from None
        if not 0 <= value <= 1:
            raise ValueError(f"fault {spec!r}: rate must be between 0 and 1, got {text}")
        return value

    def target(text: str) -> tuple[str, str]:
        service, _, operation = text.partition("/")
        if not service:
            raise ValueError(f"fault {spec!r}: a service name is missing")
        return service, operation

    if kind == "error":
        if len(args) < 2:
            raise ValueError(f"fault {spec!r}: expected error:SERVICE[/OPERATION]:RATE[:nocascade][:attribute]")
        service, operation = target(args[0])
        flags = {a.lower() for a in args[2:]}
        unknown = flags - {"nocascade", "cascade", "attribute", "status"}
        if unknown:
            raise ValueError(f"fault {spec!r}: unknown option(s) {', '.join(sorted(unknown))} "
                             "(known: nocascade, attribute)")
        return Fault("error", service=service, operation=operation, rate=rate(args[1]),
                     cascade="nocascade" not in flags, via="attribute" if "attribute" in flags else "status")
    if kind == "latency":
        if len(args) not in (2, 3):
            raise ValueError(f"fault {spec!r}: expected latency:SERVICE[/OPERATION]:ADD_MS[:RATE]")
        service, operation = target(args[0])
        try:
            add_ms = float(args[1])
        except ValueError:
            raise ValueError(f"fault {spec!r}: ADD_MS must be a number, got {args[1]!r}") from None
        if add_ms <= 0:
            raise ValueError(f"fault {spec!r}: ADD_MS must be > 0")
        return Fault("latency", service=service, operation=operation, add_ms=add_ms,
                     rate=rate(args[2]) if len(args) == 3 else 1.0)
    if kind in ("db", "database_down"):
        if len(args) != 2:
            raise ValueError(f"fault {spec!r}: expected db:DATABASE:RATE")
        database, operation = target(args[0])
        return Fault("database_down", database=database, operation=operation, rate=rate(args[1]))
    if kind == "noise":
        if len(args) == 1:
            return Fault("noise", rate=rate(args[0]))
        if len(args) == 2:
            service, operation = target(args[0])
            return Fault("noise", service=service, operation=operation, rate=rate(args[1]))
        raise ValueError(f"fault {spec!r}: expected noise[:SERVICE]:RATE")
    raise ValueError(f"fault {spec!r}: unknown fault type {kind!r} (known: error, latency, db, noise)")


def parse_plan(doc: Any, source: str = "") -> FaultPlan:
    """A fault file: a list of faults, ``{faults: [...]}`` or ``{scenarios: [{name, weight, faults}]}``."""
    if isinstance(doc, list):
        doc = {"faults": doc}
    try:
        return decode(FaultPlan, doc)
    except ConfigError as e:
        raise ConfigError(ConfigIssue(i.path, i.message, source or None) for i in e.issues) from None


def shipped_plans() -> list[str]:
    """Names of the fault files shipped with the package (``--faults accuracy``)."""
    folder = resources.files("bench.loadgen").joinpath("scenarios")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_plan(path: str | Path) -> FaultPlan:
    """Load a fault file; a bare name such as ``accuracy`` names a shipped one."""
    text_path = str(path)
    if not Path(path).exists() and "/" not in text_path and text_path.removesuffix(".yaml") in shipped_plans():
        name = text_path.removesuffix(".yaml") + ".yaml"
        doc = yaml.safe_load(resources.files("bench.loadgen").joinpath("scenarios", name).read_text("utf-8"))
        return parse_plan(doc, f"<shipped {name}>")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as e:
        raise ConfigError([ConfigIssue("", f"cannot read fault file: {e.strerror or e}", str(path))]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([ConfigIssue("", f"invalid YAML: {e}", str(path))]) from None
    return parse_plan(doc, str(path))


def check_plan(plan: FaultPlan, topology: Topology, source: str = "") -> None:
    """Raise ConfigError if a fault names a service, operation or database the topology lacks."""
    issues: list[ConfigIssue] = []
    explicit = bool(plan.scenarios)
    for si, scenario in enumerate(plan.all_scenarios()):
        for fi, fault in enumerate(scenario.faults):
            path = f"scenarios[{si}].faults[{fi}]" if explicit else f"faults[{fi}]"
            for key, message in _check_fault(fault, topology):
                issues.append(ConfigIssue(f"{path}.{key}", message, source or None))
    if issues:
        raise ConfigError(issues)


def check_fault(fault: Fault, topo: Topology) -> list[str]:
    """Problems of one fault against the topology, each as ``key: message``."""
    return [f"{key}: {message}" for key, message in _check_fault(fault, topo)]


def _check_fault(fault: Fault, topo: Topology) -> Iterator[tuple[str, str]]:
    if fault.type == "database_down":
        if fault.database not in topo.databases and fault.database not in topo.external:
            known = sorted([*topo.databases, *topo.external])
            yield "database", f"unknown database or external API {fault.database!r} (known: {', '.join(known)})"
        elif fault.operation and fault.operation not in topo.operations_of(fault.database):
            yield "operation", f"{fault.database} has no operation {fault.operation!r}"
        return
    if not fault.service:
        return
    kind = topo.kind_of(fault.service)
    if fault.type == "latency" and kind is not None:
        pass
    elif kind != "service":
        hint = " (use a database_down fault for databases and external APIs)" if kind else ""
        yield "service", f"unknown service {fault.service!r} (known: {', '.join(sorted(topo.services))}){hint}"
        return
    if fault.operation and fault.operation not in topo.operations_of(fault.service):
        ops = ", ".join(topo.operations_of(fault.service))
        yield "operation", f"{fault.service} has no operation {fault.operation!r} (known: {ops})"
