"""Build OTLP ``ExportTraceServiceRequest`` bytes from a topology, fast.

The topology is compiled once into plans holding pre-serialized span templates (:mod:`sites`); a trace
is a walk over the plans that only draws latencies and branches, patches ids and times into the
templates and files each span's bytes under its resource. A batch is assembled from those bytes without
building protobuf messages. While it builds a trace the generator also works out its ground truth
(:mod:`truth`).

Timing: an operation spends part of its own latency before its first call and the rest after its last.
Sequential calls follow each other, consecutive ``parallel`` calls start together; a CLIENT span wraps
its SERVER child with a little network time on each side, so children lie within their parents. A
CONSUMER span starts after its PRODUCER parent ends (asynchronous delivery) and its failures do not
travel back to the producer.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
import random
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from bench.loadgen.faults import NO_FAULTS, Fault, FaultPlan, check_plan, plan_from_faults
from bench.loadgen.sites import Protocol, Site, default_error_type, example_path, key_values
from bench.loadgen.topology import (
    DEFAULT_DB_PORTS,
    HTTP_NAME_RE,
    RPC_NAME_RE,
    Latency,
    Operation,
    Topology,
)
from bench.loadgen.truth import LatencyTuple, RootCauseTuple, Truth, order_latency_causes, order_root_causes
from collector import __version__
from collector.wire import encode_varint, frame

__all__ = ["Batch", "GeneratedTrace", "Generator"]

_TIMES = struct.Struct("<BQBQ")      # 0x39 start (fixed64), 0x41 end (fixed64)
_FIXED64 = struct.Struct("<Q")
_VARINT = [encode_varint(i) for i in range(1 << 14)]
_MASK64 = (1 << 64) - 1
_ID_STEP = 0x9E3779B97F4A7C15      # odd: base + i * step never repeats within 2**64 spans
_MAX_LATENCY_NS = 120 * 1_000_000_000
SCOPE_NAME = "tracetriage.loadgen"

Sampler = Callable[[], int]
Result = tuple[int, bool, Fault | None, list[RootCauseTuple] | None]   # end, in error, cascading fault, causes


def make_sampler(lat: Latency, rng: random.Random) -> Sampler:
    """Draws an operation's own time in nanoseconds."""
    if lat.distribution == "constant":
        value = int((lat.mean_ms or 0.0) * 1e6)
        return lambda: value
    if lat.distribution == "uniform":
        lo, hi = (lat.min_ms or 0.0) * 1e6, (lat.max_ms or 0.0) * 1e6
        span_ = hi - lo
        rnd = rng.random
        return lambda: int(lo + span_ * rnd())
    if lat.distribution == "normal":
        mean, sd = (lat.mean_ms or 0.0) * 1e6, (lat.stddev_ms or 0.0) * 1e6
        gauss = rng.gauss
        return lambda: max(int(gauss(mean, sd)), 1000)
    p50, p99 = lat.p50_ms or 1.0, lat.p99_ms or 1.0
    mu, sigma = math.log(p50 * 1e6), (math.log(p99) - math.log(p50)) / 2.3263478740408408
    gauss, exp, cap = rng.gauss, math.exp, math.log(_MAX_LATENCY_NS)

    def lognormal() -> int:
        x = gauss(mu, sigma)
        return int(exp(x if x < cap else cap))

    return lognormal


class _OpPlan:
    """A service's operation, compiled."""

    __slots__ = ("groups", "index", "label", "n_instances", "res_base", "sample", "service", "service_index",
                 "site")

    def __init__(self, index: int, service: str, service_index: int, site: Site, sample: Sampler,
                 res_base: int, n_instances: int) -> None:
        self.index = index
        self.service = service
        self.service_index = service_index
        self.label = f"{service}/{site.span_name}"
        self.site = site
        self.sample = sample
        self.res_base = res_base
        self.n_instances = n_instances
        self.groups: tuple[tuple[_CallPlan, ...], ...] = ()


class _LeafPlan:
    """An operation of a database or external API: only the caller's CLIENT span."""

    __slots__ = ("index", "label", "name", "sample", "site")

    def __init__(self, index: int, name: str, site: Site, sample: Sampler) -> None:
        self.index = index
        self.name = name
        self.label = f"{name}/{site.span_name}"
        self.site = site
        self.sample = sample


class _CallPlan:
    """How a call is made: ``mode`` 0 same service, 1 CLIENT -> SERVER, 2 PRODUCER -> CONSUMER, 3 leaf."""

    __slots__ = ("leaf", "mode", "probability", "site", "target")

    def __init__(self, mode: int, probability: float, site: Site | None, target: _OpPlan | None,
                 leaf: _LeafPlan | None) -> None:
        self.mode = mode
        self.probability = probability
        self.site = site
        self.target = target
        self.leaf = leaf


@dataclass(frozen=True, slots=True)
class _FaultRule:
    fault: Fault
    label: str
    ops: frozenset[int]       # op plan indexes
    leaves: frozenset[int]    # leaf plan indexes
    services: frozenset[int]  # service indexes (noise)


class GeneratedTrace:
    """One trace's span entries (framed ``ScopeSpans.spans`` fields) grouped by resource index."""

    __slots__ = ("by_resource", "generator", "spans", "trace_id")

    def __init__(self, generator: Generator, trace_id: bytes, by_resource: dict[int, list[bytes]],
                 spans: int) -> None:
        self.generator = generator
        self.trace_id = trace_id
        self.by_resource = by_resource
        self.spans = spans

    def to_request(self) -> bytes:
        """This trace alone as a serialized ``ExportTraceServiceRequest``."""
        return self.generator.build_request(self.by_resource)


@dataclass(slots=True)
class Batch:
    """A serialized ``ExportTraceServiceRequest`` of whole traces, with their ground truth."""

    payload: bytes
    spans: int
    truths: list[Truth]

    @property
    def traces(self) -> int:
        return len(self.truths)


class Generator:
    """Generates traces of ``topology`` with ``faults`` injected; the same ``seed`` gives the same traces
    (ids, structure, durations; start times come from ``clock``, pass a fixed one for identical bytes)."""

    def __init__(self, topology: Topology, faults: FaultPlan | Sequence[Fault] = NO_FAULTS,
                 seed: int | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        plan = faults if isinstance(faults, FaultPlan) else plan_from_faults(list(faults))
        check_plan(plan, topology)
        self.topology = topology
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
        self._rng = random.Random(self.seed)
        self._clock = clock
        self._resources: list[bytes] = []       # framed ResourceSpans.resource field per resource index
        self._res_service: list[int] = []       # service index per resource index
        self._scope = frame(0x0A, InstrumentationScope(name=SCOPE_NAME, version=__version__).SerializeToString())
        self._services = list(topology.services)
        self._ops: dict[tuple[str, str], _OpPlan] = {}
        self._leaves: dict[tuple[str, str], _LeafPlan] = {}
        self._compile()
        self._entry_plans = [self._ops[(e.service, e.operation)] for e in topology.entrypoints]
        total = 0.0
        self._entry_cum: list[float] = []
        for e in topology.entrypoints:
            total += e.weight
            self._entry_cum.append(total)
        self._scenarios = plan.all_scenarios()
        self._scenario_cum: list[float] = []
        total = 0.0
        for s in self._scenarios:
            total += s.weight
            self._scenario_cum.append(total)
        self._rules = [[self._rule(f) for f in s.faults] for s in self._scenarios]
        # per-trace state
        self._tid = b""
        self._tid_field = b""
        self._sid_base = 0
        self._n = 0
        self._out: dict[int, list[bytes]] = {}
        self._err: dict[int, _FaultRule] = {}
        self._down: dict[int, _FaultRule] = {}
        self._lat: dict[int, tuple[int, str]] = {}
        self._lat_leaf: dict[int, tuple[int, str]] = {}
        self._noise: list[float] | None = None
        self._noise_labels: list[str] = []
        self._hit: set[str] = set()
        self._slow: list[LatencyTuple] = []  # spans a latency fault lengthened, within the root's calls
        self._async = 0  # > 0 while building what a producer's message starts (outside the root's time)

    # ---- compilation -------------------------------------------------------------------------------

    def _compile(self) -> None:
        topo, rng = self.topology, self._rng
        for si, (sname, svc) in enumerate(topo.services.items()):
            res_base = len(self._resources)
            for inst in range(svc.instances):
                self._resources.append(frame(0x0A, self._resource(sname, inst)))
                self._res_service.append(si)
            for oname, op in svc.operations.items():
                site = self._op_site(sname, svc.port, oname, op)
                self._ops[(sname, oname)] = _OpPlan(len(self._ops), sname, si, site,
                                                    make_sampler(op.latency, rng), res_base, svc.instances)
        for dname, db in topo.databases.items():
            host = db.host or dname
            port = db.port or DEFAULT_DB_PORTS.get(db.system, 0)
            peer = dname if db.peer_service is None else db.peer_service
            for oname, dop in db.operations.items():
                op_name = dop.operation_name
                attrs: dict[str, bool | int | float | str] = {"db.system": db.system,
                                                              "db.namespace": db.namespace or dname,
                                                              "db.operation.name": op_name}
                if dop.collection:
                    attrs["db.collection.name"] = dop.collection
                attrs["db.query.text"] = dop.query
                attrs["server.address"] = host
                if port:
                    attrs["server.port"] = port
                if peer:
                    attrs["peer.service"] = peer
                span_name = f"{op_name} {dop.collection or db.namespace or dname}".strip()
                site = Site("", span_name, "client", "db", attrs, error_type="ConnectionRefusedError",
                            exc_message=f"connection to {host}:{port} refused")
                self._leaves[(dname, oname)] = _LeafPlan(len(self._leaves), dname, site,
                                                         make_sampler(dop.latency, rng))
        for xname, ext in topo.external.items():
            peer = xname if ext.peer_service is None else ext.peer_service
            for oname, xop in ext.operations.items():
                m = HTTP_NAME_RE.match(oname)
                method, path = (m.group(1), m.group(2)) if m else ("GET", "/")
                default_port = 443 if ext.scheme == "https" else 80
                port_part = "" if ext.port == default_port else f":{ext.port}"
                attrs = {"http.request.method": method,
                         "url.full": f"{ext.scheme}://{ext.host}{port_part}{example_path(path)}",
                         "url.template": path, "server.address": ext.host, "server.port": ext.port,
                         "http.response.status_code": 200}
                if peer:
                    attrs["peer.service"] = peer
                attrs.update(xop.attributes)
                site = Site("", oname, "client", "external", attrs, error_type="HTTPError",
                            exc_message=f"503 Service Unavailable from {ext.host}")
                self._leaves[(xname, oname)] = _LeafPlan(len(self._leaves), xname, site,
                                                         make_sampler(xop.latency, rng))
        call_sites: dict[tuple[str, str], Site] = {}
        for (sname, oname), plan in self._ops.items():
            op = topo.services[sname].operations[oname]
            groups: list[list[_CallPlan]] = []
            prev_parallel = False
            for call in op.calls:
                cp = self._call_plan(sname, call.service, call.operation, call.probability, call_sites)
                if call.parallel:
                    if not prev_parallel:
                        groups.append([])
                    groups[-1].extend([cp] * call.count)
                else:
                    groups.extend([cp] for _ in range(call.count))
                prev_parallel = call.parallel
            plan.groups = tuple(tuple(g) for g in groups)

    def _call_plan(self, caller: str, service: str, operation: str, probability: float,
                   call_sites: dict[tuple[str, str], Site]) -> _CallPlan:
        leaf = self._leaves.get((service, operation))
        if leaf is not None:
            return _CallPlan(3, probability, leaf.site, None, leaf)
        target = self._ops[(service, operation)]
        if service == caller:
            return _CallPlan(0, probability, None, target, None)
        op = self.topology.services[service].operations[operation]
        site = call_sites.get((service, operation))
        if site is None:
            site = self._call_site(service, self.topology.services[service].port, operation, op)
            call_sites[(service, operation)] = site
        return _CallPlan(2 if op.kind == "consumer" else 1, probability, site, target, None)

    def _resource(self, service: str, instance: int) -> bytes:
        topo, svc = self.topology, self.topology.services[service]
        digest = hashlib.sha1(f"{topo.namespace}/{service}".encode(), usedforsecurity=False).hexdigest()
        suffix = hashlib.sha1(f"{digest}/{instance}".encode(), usedforsecurity=False).hexdigest()[:5]
        pod = f"{service}-{digest[:9]}-{suffix}"
        attrs: dict[str, bool | int | float | str] = {
            "service.name": service,
            "service.namespace": topo.namespace,
            "service.version": svc.version,
            "service.instance.id": f"{digest[:8]}-{digest[8:12]}-{instance:04x}-{digest[12:16]}-{digest[16:28]}",
            "deployment.environment.name": topo.environment,
            "host.name": pod,
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.language": svc.language,
            "telemetry.sdk.version": "1.27.0",
        }
        attrs.update(svc.resource)
        return bytes(Resource(attributes=key_values(attrs)).SerializeToString())

    def _op_site(self, service: str, port: int, name: str, op: Operation) -> Site:
        attrs: dict[str, bool | int | float | str] = {}
        protocol: Protocol = "internal"
        if op.kind == "server":
            m = HTTP_NAME_RE.match(name)
            r = RPC_NAME_RE.match(name)
            if m:
                protocol = "http"
                attrs = {"http.request.method": m.group(1), "http.route": m.group(2),
                         "url.path": example_path(m.group(2)), "url.scheme": "http", "server.address": service,
                         "server.port": port, "network.protocol.version": "1.1", "http.response.status_code": 200}
            elif r:
                protocol = "rpc"
                attrs = {"rpc.system": "grpc", "rpc.service": r.group(1), "rpc.method": r.group(2),
                         "server.address": service, "server.port": port, "rpc.grpc.status_code": 0}
        elif op.kind == "consumer":
            protocol = "messaging"
            attrs = {"messaging.system": op.messaging_system, "messaging.destination.name": op.topic,
                     "messaging.operation.type": "process", "messaging.operation.name": "process",
                     "messaging.consumer.group.name": service}
        attrs.update(op.attributes)
        return Site(service, name, op.kind, protocol, attrs,
                    error_type=default_error_type(service), exc_message=f"{name} failed in {service}")

    def _call_site(self, service: str, port: int, name: str, op: Operation) -> Site:
        """The caller's CLIENT (or PRODUCER) span of a call to ``service``'s operation ``name``."""
        if op.kind == "consumer":
            attrs: dict[str, bool | int | float | str] = {
                "messaging.system": op.messaging_system, "messaging.destination.name": op.topic,
                "messaging.operation.type": "publish", "messaging.operation.name": "publish"}
            return Site("", f"publish {op.topic}", "producer", "messaging", attrs, error_type="ProducerError",
                        exc_message=f"publish to {op.topic} failed", blame=service)
        m = HTTP_NAME_RE.match(name)
        if m:
            attrs = {"http.request.method": m.group(1), "url.full": f"http://{service}:{port}{example_path(m.group(2))}",
                     "url.template": m.group(2), "server.address": service, "server.port": port,
                     "http.response.status_code": 200}
            return Site("", name, "client", "http", attrs, error_type="HTTPError",
                        exc_message=f"500 from {service}", blame=service)
        r = RPC_NAME_RE.match(name)
        assert r is not None  # validated by Topology
        attrs = {"rpc.system": "grpc", "rpc.service": r.group(1), "rpc.method": r.group(2),
                 "server.address": service, "server.port": port, "rpc.grpc.status_code": 0}
        return Site("", name, "client", "rpc", attrs, error_type="INTERNAL", exc_message=f"{name} failed",
                    blame=service)

    def _rule(self, fault: Fault) -> _FaultRule:
        ops: set[int] = set()
        leaves: set[int] = set()
        services: set[int] = set()
        if fault.type in ("error", "latency", "noise") and fault.service in self.topology.services:
            svc = self.topology.services[fault.service]
            services.add(self._services.index(fault.service))
            if fault.operation:
                ops.add(self._ops[(fault.service, fault.operation)].index)
            elif fault.type == "error":
                entry = [n for n, o in svc.operations.items() if o.kind in ("server", "consumer")]
                ops.update(self._ops[(fault.service, n)].index for n in entry or svc.operations)
            else:
                ops.update(self._ops[(fault.service, n)].index for n in svc.operations)
        elif fault.type == "noise" and not fault.service:
            services.update(range(len(self._services)))
        name = fault.database if fault.type == "database_down" else fault.service
        if fault.type in ("latency", "database_down"):
            for (lname, oname), leaf in self._leaves.items():
                if lname == name and (not fault.operation or oname == fault.operation):
                    leaves.add(leaf.index)
        return _FaultRule(fault, fault.label, frozenset(ops), frozenset(leaves), frozenset(services))

    # ---- generation --------------------------------------------------------------------------------

    def traces(self, count: int | None = None) -> Iterator[tuple[GeneratedTrace, Truth]]:
        """``count`` traces (endless if None), each with its ground truth."""
        n = 0
        while count is None or n < count:
            n += 1
            yield self.next_trace()

    def batches(self, batch_spans: int = 500, count: int | None = None) -> Iterator[Batch]:
        """Requests of whole traces, about ``batch_spans`` spans each (a bigger trace goes alone)."""
        if batch_spans < 1:
            raise ValueError(f"batch_spans must be >= 1, got {batch_spans}")
        pending: dict[int, list[bytes]] = {}
        truths: list[Truth] = []
        spans = 0
        for trace, truth in self.traces(count):
            if spans and spans + trace.spans > batch_spans:
                yield Batch(self.build_request(pending), spans, truths)
                pending, truths, spans = {}, [], 0
            for res, entries in trace.by_resource.items():
                bucket = pending.get(res)
                if bucket is None:
                    pending[res] = entries
                else:
                    bucket.extend(entries)
            truths.append(truth)
            spans += trace.spans
            if spans >= batch_spans:
                yield Batch(self.build_request(pending), spans, truths)
                pending, truths, spans = {}, [], 0
        if spans:
            yield Batch(self.build_request(pending), spans, truths)

    def build_request(self, by_resource: dict[int, list[bytes]]) -> bytes:
        """Serialize an ``ExportTraceServiceRequest`` from span entries grouped by resource index."""
        out: list[bytes] = []
        scope = self._scope
        for res in sorted(by_resource):
            ss = frame(0x12, scope + b"".join(by_resource[res]))
            out.append(frame(0x0A, self._resources[res] + ss))
        return b"".join(out)

    def next_trace(self) -> tuple[GeneratedTrace, Truth]:
        rng = self._rng
        tid = rng.getrandbits(128).to_bytes(16, "big")
        while tid == bytes(16):
            tid = rng.getrandbits(128).to_bytes(16, "big")
        self._tid = tid
        self._tid_field = b"\n\x10" + tid + b"\x12\x08"
        self._sid_base = rng.getrandbits(64)
        self._n = 0
        self._out = {}
        self._hit = set()
        self._slow = []
        si = bisect.bisect_right(self._scenario_cum, rng.random() * self._scenario_cum[-1]) \
            if len(self._scenarios) > 1 else 0
        si = min(si, len(self._scenarios) - 1)
        self._activate(self._rules[si])
        ei = min(bisect.bisect_right(self._entry_cum, rng.random() * self._entry_cum[-1]), len(self._entry_cum) - 1)
        entry = self._entry_plans[ei]
        res = entry.res_base + (int(rng.random() * entry.n_instances) if entry.n_instances > 1 else 0)
        start = self._clock()
        end, in_error, _casc, causes = self._op(entry, None, start, 0, res)
        truth = Truth(
            trace_id=tid.hex(), scenario=self._scenarios[si].name, entrypoint=entry.label,
            faults=tuple(r.label for r in self._rules[si] if r.label in self._hit),
            error=in_error, root_causes=order_root_causes(causes) if in_error and causes else (), spans=self._n,
            duration_ms=(end - start) / 1e6,
            latency_causes=order_latency_causes(self._slow) if self._slow else (),
        )
        return GeneratedTrace(self, tid, self._out, self._n), truth

    def _activate(self, rules: list[_FaultRule]) -> None:
        self._err, self._down, self._lat, self._lat_leaf, self._noise = {}, {}, {}, {}, None
        self._noise_labels = []
        rnd = self._rng.random
        for rule in rules:
            f = rule.fault
            if f.type == "noise":
                if self._noise is None:
                    self._noise = [0.0] * len(self._services)
                for s in rule.services:
                    self._noise[s] = max(self._noise[s], f.rate)
                self._noise_labels.append(rule.label)
                continue
            if f.rate < 1.0 and rnd() >= f.rate:
                continue
            if f.type == "error":
                for i in rule.ops:
                    self._err.setdefault(i, rule)
            elif f.type == "database_down":
                for i in rule.leaves:
                    self._down.setdefault(i, rule)
            else:
                add = int(f.add_ms * 1e6)
                for i in rule.ops:
                    self._lat[i] = (self._lat.get(i, (0, ""))[0] + add, rule.label)
                for i in rule.leaves:
                    self._lat_leaf[i] = (self._lat_leaf.get(i, (0, ""))[0] + add, rule.label)

    def _span_id(self) -> bytes:
        n = self._n + 1
        v = (self._sid_base + n * _ID_STEP) & _MASK64
        if not v:  # never an all-zero id: skip this slot
            n += 1
            v = (self._sid_base + n * _ID_STEP) & _MASK64
        self._n = n
        return v.to_bytes(8, "big")

    def _emit(self, res: int, site: Site, sid: bytes, parent: bytes | None, start: int, end: int,
              tail: bytes) -> None:
        if parent is None:
            n = site.fixed_len + len(tail)
            entry = b"".join((b"\x12", _VARINT[n] if n < 16384 else encode_varint(n), self._tid_field, sid,
                              site.mid, _TIMES.pack(0x39, start, 0x41, end), tail))
        else:
            n = site.fixed_len + 10 + len(tail)
            entry = b"".join((b"\x12", _VARINT[n] if n < 16384 else encode_varint(n), self._tid_field, sid,
                              b'"\x08', parent, site.mid, _TIMES.pack(0x39, start, 0x41, end), tail))
        out = self._out
        if res in out:
            out[res].append(entry)
        else:
            out[res] = [entry]

    def _tail(self, res: int, site: Site, in_error: bool, origin: _FaultRule | None, casc: Fault | None,
              start: int, end: int) -> bytes:
        """The attributes/event/status part of a span (its ids and times are added by ``_emit``)."""
        if origin is not None:
            f = origin.fault
            self._hit.add(origin.label)
            attrs, ev_head, ev_rest, status = site.origin_parts(f.error_type, f.message, f.via == "attribute")
            t = start + (end - start) * 9 // 10
            return b"".join((attrs, ev_head, _FIXED64.pack(t), ev_rest, status))
        if in_error and casc is not None:
            return site.tail("cascade", via_attribute=casc.via == "attribute")
        noise = self._noise
        if noise is not None:
            rate = noise[self._res_service[res]]
            if rate > 0 and self._rng.random() < rate:
                self._hit.update(self._noise_labels)
                return site.tail("noise")
        return site.ok_tail

    def _op(self, op: _OpPlan, parent: bytes | None, start: int, depth: int, res: int) -> Result:
        """Emit ``op``'s span and everything under it; return (end, in error, cascading fault, root causes)."""
        rng = self._rng
        sid = self._span_id()
        own = op.sample()
        extra = self._lat.get(op.index) if self._lat else None
        if extra is not None:
            own += extra[0]
            self._hit.add(extra[1])
        origin = self._err.get(op.index) if self._err else None
        pre = own // 4
        t = start + pre
        casc: Fault | None = origin.fault if origin is not None and origin.fault.cascade else None
        failed_call = False
        causes: list[RootCauseTuple] | None = None
        child_depth = depth + 1
        for group in op.groups:
            group_end = t
            for call in group:
                if call.probability < 1.0 and rng.random() >= call.probability:
                    continue
                cstart = t + int(rng.random() * 40_000) if len(group) > 1 else t
                cend, cerr, ccasc, ccauses = self._call(call, sid, cstart, child_depth, res)
                if cend > group_end:
                    group_end = cend
                if cerr and ccauses:
                    if causes is None:
                        causes = list(ccauses)
                    else:
                        causes.extend(ccauses)
                if ccasc is not None:
                    failed_call = True
                    if casc is None:
                        casc = ccasc
            t = group_end + 20_000 + int(rng.random() * 60_000)
            if failed_call:
                break  # a failed call aborts the remaining sequential calls
        end = t + own - pre
        if extra is not None and not self._async:
            self._slow.append((own, depth, start, sid, op.site.blame, op.site.span_name, end))
        in_error = origin is not None or casc is not None
        self._emit(res, op.site, sid, parent, start, end,
                   self._tail(res, op.site, in_error, origin, casc, start, end))
        if not in_error:
            return end, False, None, None
        if causes is None:
            causes = [(end, depth, sid, op.site.blame, op.site.span_name)]
        return end, True, casc, causes

    def _call(self, call: _CallPlan, parent: bytes, start: int, depth: int, res: int) -> Result:
        mode = call.mode
        if mode == 0:
            assert call.target is not None
            return self._op(call.target, parent, start, depth, res)
        rng = self._rng
        site = call.site
        assert site is not None
        sid = self._span_id()
        if mode == 3:
            leaf = call.leaf
            assert leaf is not None
            dur = leaf.sample() + 150_000 + int(rng.random() * 250_000)
            extra = self._lat_leaf.get(leaf.index) if self._lat_leaf else None
            if extra is not None:
                dur += extra[0]
                self._hit.add(extra[1])
            down = self._down.get(leaf.index) if self._down else None
            end = start + dur
            if extra is not None and not self._async:
                self._slow.append((dur, depth, start, sid, site.blame, site.span_name, end))
            self._emit(res, site, sid, parent, start, end,
                       self._tail(res, site, down is not None, down, None, start, end))
            if down is None:
                return end, False, None, None
            return end, True, down.fault if down.fault.cascade else None, [(end, depth, sid, site.blame,
                                                                              site.span_name)]
        target = call.target
        assert target is not None
        tres = target.res_base + (int(rng.random() * target.n_instances) if target.n_instances > 1 else 0)
        if mode == 2:  # PRODUCER, then the CONSUMER later (asynchronous: its failure stays its own)
            end = start + 200_000 + int(rng.random() * 800_000)
            self._emit(res, site, sid, parent, start, end, self._tail(res, site, False, None, None, start, end))
            self._async += 1
            self._op(target, sid, end + 1_000_000 + int(rng.random() * 20_000_000), depth + 1, tres)
            self._async -= 1
            return end, False, None, None
        net = 100_000 + int(rng.random() * 300_000)
        send, serr, scasc, scauses = self._op(target, sid, start + net, depth + 1, tres)
        end = send + 100_000 + int(rng.random() * 300_000)
        cerr = scasc is not None
        self._emit(res, site, sid, parent, start, end, self._tail(res, site, cerr, None, scasc, start, end))
        if not cerr:
            return end, False, None, None
        return end, True, scasc, scauses if serr and scauses else [(end, depth, sid, site.blame, site.span_name)]
