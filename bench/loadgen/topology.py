"""The load generator's topology: services, their operations and call graph, databases, third-party APIs.

A topology is YAML decoded into frozen dataclasses (``collector.config.schema``), so every mistake is
reported with its key path (``services.checkout.operations.PlaceOrder.calls[2].service: unknown ...``).

An operation's span name is its key. The name says the protocol: ``POST /checkout`` is HTTP (method and
route), ``oteldemo.CheckoutService/PlaceOrder`` is gRPC (``rpc.service`` / ``rpc.method``), a consumer
reads the operation's ``topic``; anything else is an internal span. A call to another service's server
operation makes a CLIENT span in the caller with the callee's SERVER span as its child; a call to a
consumer operation makes a PRODUCER span whose CONSUMER child runs asynchronously; a call to a
database or external API makes only the caller's CLIENT span (they are not instrumented).

``latency`` is an operation's own time; the calls it makes add theirs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from collector.config.schema import ConfigError, ConfigIssue, decode, field

Scalar = bool | int | float | str
SpanKindName = Literal["server", "client", "internal", "producer", "consumer"]

HTTP_NAME_RE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/\S*)$")
RPC_NAME_RE = re.compile(r"^([A-Za-z_][\w.]*)/([A-Za-z_]\w*)$")

MAX_SPANS_PER_TRACE = 10_000
MAX_CALL_DEPTH = 64
DEFAULT_TOPOLOGY = "shop.yaml"

DEFAULT_DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle.db": 1521,
                    "redis": 6379, "mongodb": 27017, "cassandra": 9042, "elasticsearch": 9200}


@dataclass(frozen=True)
class Latency:
    """``lognormal`` (p50_ms, p99_ms), ``normal`` (mean_ms, stddev_ms), ``uniform`` (min_ms, max_ms),
    ``constant`` (mean_ms)."""

    distribution: Literal["lognormal", "normal", "uniform", "constant"] = "lognormal"
    p50_ms: float | None = field(None, gt=0)
    p99_ms: float | None = field(None, gt=0)
    mean_ms: float | None = field(None, ge=0)
    stddev_ms: float | None = field(None, ge=0)
    min_ms: float | None = field(None, ge=0)
    max_ms: float | None = field(None, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        needs = {"lognormal": ("p50_ms", "p99_ms"), "normal": ("mean_ms", "stddev_ms"),
                 "uniform": ("min_ms", "max_ms"), "constant": ("mean_ms",)}[self.distribution]
        for name in ("p50_ms", "p99_ms", "mean_ms", "stddev_ms", "min_ms", "max_ms"):
            given = getattr(self, name) is not None
            if name in needs and not given:
                yield name, f"is required for distribution {self.distribution}"
            elif name not in needs and given:
                yield name, f"does not apply to distribution {self.distribution} (it takes {', '.join(needs)})"
        if self.distribution == "lognormal" and self.p50_ms and self.p99_ms and self.p99_ms < self.p50_ms:
            yield "p99_ms", f"must be >= p50_ms ({self.p50_ms}), got {self.p99_ms}"
        if self.distribution == "uniform" and self.min_ms is not None and self.max_ms is not None \
                and self.max_ms < self.min_ms:
            yield "max_ms", f"must be >= min_ms ({self.min_ms}), got {self.max_ms}"


DEFAULT_LATENCY = Latency(p50_ms=2.0, p99_ms=10.0)


@dataclass(frozen=True)
class Call:
    """One call an operation makes. ``service`` names a service, a database or an external API.
    Consecutive ``parallel`` calls run concurrently; ``count`` repeats the call (concurrently if parallel)."""

    service: str
    operation: str
    probability: float = field(1.0, ge=0, le=1)
    count: int = field(1, ge=1, le=100)
    parallel: bool = False


@dataclass(frozen=True)
class Operation:
    kind: SpanKindName = "server"
    latency: Latency = DEFAULT_LATENCY
    attributes: dict[str, Scalar] = field(default_factory=dict)
    calls: tuple[Call, ...] = field(default_factory=tuple)
    topic: str = ""                     # consumer operations: the messaging destination
    messaging_system: str = "kafka"

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.kind == "consumer" and not self.topic:
            yield "topic", "is required for a consumer operation (the messaging destination it reads)"
        if self.topic and self.kind != "consumer":
            yield "topic", f"only applies to consumer operations, this one is {self.kind}"


@dataclass(frozen=True)
class Service:
    operations: dict[str, Operation] = field(min_len=1)
    version: str = "1.0.0"
    language: str = "python"
    instances: int = field(2, ge=1, le=64)
    port: int = field(8080, gt=0, lt=65536)
    resource: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class DbOperation:
    query: str                          # db.query.text
    name: str = ""                      # db.operation.name; default: the query's first word
    collection: str = ""                # db.collection.name
    latency: Latency = DEFAULT_LATENCY

    @property
    def operation_name(self) -> str:
        return self.name or (self.query.split(None, 1) or [""])[0].upper()


@dataclass(frozen=True)
class Database:
    """An uninstrumented database: only the caller's CLIENT span exists."""

    system: str                         # db.system: postgresql, mysql, redis, mongodb, ...
    operations: dict[str, DbOperation] = field(min_len=1)
    namespace: str = ""                 # db.namespace; default: the database's name
    host: str = ""                      # server.address; default: the database's name
    port: int = field(0, ge=0, lt=65536)  # server.port; default: the system's usual port
    peer_service: str | None = None     # peer.service; default: the database's name; "" leaves it out


@dataclass(frozen=True)
class ExternalOperation:
    latency: Latency = DEFAULT_LATENCY
    attributes: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class External:
    """A third-party HTTP API (uninstrumented): only the caller's CLIENT span exists.
    Operation names are ``METHOD /path``."""

    host: str                           # server.address, e.g. api.stripe.com
    operations: dict[str, ExternalOperation] = field(min_len=1)
    port: int = field(443, gt=0, lt=65536)
    scheme: Literal["https", "http"] = "https"
    peer_service: str | None = None     # peer.service; default: the API's name; "" leaves it out

    def validate(self) -> Iterator[tuple[str, str]]:
        for name in self.operations:
            if not HTTP_NAME_RE.match(name):
                yield f"operations.{name}", "an external operation is named 'METHOD /path', e.g. 'POST /v1/charges'"


@dataclass(frozen=True)
class Entrypoint:
    service: str
    operation: str
    weight: float = field(1.0, gt=0)


@dataclass(frozen=True)
class Topology:
    services: dict[str, Service] = field(min_len=1)
    entrypoints: tuple[Entrypoint, ...] = field(min_len=1)
    databases: dict[str, Database] = field(default_factory=dict)
    external: dict[str, External] = field(default_factory=dict)
    namespace: str = "shop"             # service.namespace
    environment: str = "production"     # deployment.environment.name

    def kind_of(self, name: str) -> Literal["service", "database", "external"] | None:
        if name in self.services:
            return "service"
        if name in self.databases:
            return "database"
        if name in self.external:
            return "external"
        return None

    def operations_of(self, name: str) -> list[str]:
        if name in self.services:
            return list(self.services[name].operations)
        if name in self.databases:
            return list(self.databases[name].operations)
        if name in self.external:
            return list(self.external[name].operations)
        return []

    def validate(self) -> Iterator[tuple[str, str]]:
        for name in self.databases:
            if name in self.services:
                yield f"databases.{name}", "a service has the same name: names are unique across sections"
        for name in self.external:
            if name in self.services or name in self.databases:
                yield f"external.{name}", "another service or database has the same name"
        for sname, svc in self.services.items():
            for oname, op in svc.operations.items():
                base = f"services.{sname}.operations.{oname}"
                if op.kind == "consumer" and (HTTP_NAME_RE.match(oname) or RPC_NAME_RE.match(oname)):
                    yield base, "a consumer operation is named for what it does, e.g. 'process orders'"
                for i, call in enumerate(op.calls):
                    yield from self._check_call(sname, call, f"{base}.calls[{i}]")
        for i, ep in enumerate(self.entrypoints):
            ep_svc = self.services.get(ep.service)
            if ep_svc is None:
                yield f"entrypoints[{i}].service", _unknown("service", ep.service, self.services)
            elif ep.operation not in ep_svc.operations:
                yield f"entrypoints[{i}].operation", _unknown("operation", ep.operation, ep_svc.operations)
            elif ep_svc.operations[ep.operation].kind not in ("server", "consumer"):
                yield f"entrypoints[{i}].operation", "an entrypoint must be a server or consumer operation"
        yield from self._check_graph()

    def _check_call(self, caller: str, call: Call, path: str) -> Iterator[tuple[str, str]]:
        kind = self.kind_of(call.service)
        if kind is None:
            known = [*self.services, *self.databases, *self.external]
            yield f"{path}.service", _unknown("service, database or external API", call.service, known)
            return
        ops = self.operations_of(call.service)
        if call.operation not in ops:
            yield f"{path}.operation", _unknown(f"operation of {call.service}", call.operation, ops)
            return
        if kind == "service" and call.service != caller:
            target = self.services[call.service].operations[call.operation]
            if target.kind not in ("server", "consumer"):
                yield f"{path}.operation", (f"{call.service}/{call.operation} is a {target.kind} operation: a call "
                                            "into another service must target a server or consumer operation")
            elif target.kind == "server" and not (HTTP_NAME_RE.match(call.operation)
                                                  or RPC_NAME_RE.match(call.operation)):
                yield f"{path}.operation", (f"{call.service}/{call.operation}: a server operation called by another "
                                            "service is named 'METHOD /route' (HTTP) or 'pkg.Service/Method' (gRPC)")

    def _check_graph(self) -> Iterator[tuple[str, str]]:
        """No cycles; bounded depth and spans per trace (iterative, worst case: every call made)."""
        order: list[tuple[str, str]] = []
        state: dict[tuple[str, str], int] = {}  # 1 = on the stack, 2 = done
        for sname, svc in self.services.items():
            for oname in svc.operations:
                root = (sname, oname)
                if root in state:
                    continue
                stack: list[tuple[tuple[str, str], Iterator[Call]]] = [(root, iter(svc.operations[oname].calls))]
                state[root] = 1
                while stack:
                    node, it = stack[-1]
                    call = next(it, None)
                    if call is None:
                        stack.pop()
                        state[node] = 2
                        order.append(node)
                        continue
                    if call.service not in self.services or \
                            call.operation not in self.services[call.service].operations:
                        continue
                    child = (call.service, call.operation)
                    st = state.get(child)
                    if st == 1:
                        path = " -> ".join(f"{s}/{o}" for (s, o), _ in stack) + f" -> {child[0]}/{child[1]}"
                        yield f"services.{node[0]}.operations.{node[1]}.calls", f"call cycle: {path}"
                        return
                    if st is None:
                        state[child] = 1
                        stack.append((child, iter(self.services[child[0]].operations[child[1]].calls)))
        spans: dict[tuple[str, str], int] = {}
        depth: dict[tuple[str, str], int] = {}
        for node in order:  # children come before their callers
            op = self.services[node[0]].operations[node[1]]
            n, d = 1, 1
            for call in op.calls:
                if call.service in self.services:
                    child = (call.service, call.operation)
                    if child not in spans:
                        continue
                    extra = 0 if call.service == node[0] else 1  # the CLIENT/PRODUCER span
                    n += call.count * (spans[child] + extra)
                    d = max(d, depth[child] + 1 + extra)
                else:
                    n += call.count
                    d = max(d, 2)
            spans[node], depth[node] = min(n, 10 * MAX_SPANS_PER_TRACE), d
        for i, ep in enumerate(self.entrypoints):
            node = (ep.service, ep.operation)
            if spans.get(node, 0) > MAX_SPANS_PER_TRACE:
                yield f"entrypoints[{i}]", (f"{ep.service}/{ep.operation} can make up to {spans[node]} spans "
                                            f"per trace, more than {MAX_SPANS_PER_TRACE}: lower counts")
            if depth.get(node, 0) > MAX_CALL_DEPTH:
                yield f"entrypoints[{i}]", (f"{ep.service}/{ep.operation} nests {depth[node]} spans deep, "
                                            f"more than {MAX_CALL_DEPTH}")


def _unknown(what: str, name: str, known: Any) -> str:
    names = sorted(known)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"unknown {what} {name!r} (known: {shown or 'none'})"


def parse_topology(doc: Any, source: str = "") -> Topology:
    """Decode a YAML document into a :class:`Topology`; raise ConfigError naming every problem."""
    try:
        return decode(Topology, doc)
    except ConfigError as e:
        raise ConfigError(ConfigIssue(i.path, i.message, source or None) for i in e.issues) from None


def load_topology(path: str | Path | None = None) -> Topology:
    """Load a topology file, or the shipped ``shop.yaml`` when ``path`` is None."""
    if path is None:
        text = resources.files("bench.loadgen").joinpath("topologies", DEFAULT_TOPOLOGY).read_text("utf-8")
        source = f"<shipped {DEFAULT_TOPOLOGY}>"
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as e:
            raise ConfigError([ConfigIssue("", f"cannot read topology: {e.strerror or e}", source)]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([ConfigIssue("", f"invalid YAML: {e}", source)]) from None
    return parse_topology(doc, source)
