"""Helpers for the Kafka e2e tests: the shipped agent/sampler configs run as CLI subprocesses, load, output."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.collector.kafka.broker import Broker
from tests.conftest import ROOT, CollectorProcess, free_port, wait_for

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
AGENT = ROOT / "configs" / "agent.yaml"
STARTED: list[CollectorProcess] = []  # stopped after each test by the autouse fixture in conftest


def _start(configs: list[Path], workdir: Path, metrics_port: int, env: dict[str, str]) -> CollectorProcess:
    proc = CollectorProcess(configs, workdir, metrics_port, env)
    STARTED.append(proc)
    return proc
SAMPLER = ROOT / "configs" / "sampler.yaml"


class Agent:
    def __init__(self, workdir: Path, broker: Broker, env: dict[str, str], topic: str,
                 storage: Path | None = None, encoding: str = "otlp_proto") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.storage = storage or workdir / "storage"
        self.env = {
            **env, "KAFKA_BROKERS": broker.address, "KAFKA_TOPIC": topic, "KAFKA_ENCODING": encoding,
            "TT_OTLP_GRPC": f"127.0.0.1:{self.grpc_port}", "TT_OTLP_HTTP": f"127.0.0.1:{free_port()}",
            "TT_METRICS": f"127.0.0.1:{self.metrics_port}", "TT_HEALTH": f"127.0.0.1:{free_port()}",
            "TT_STORAGE_DIR": str(self.storage), "TT_RETRY_INITIAL": "200ms",
        }
        self.proc = _start([AGENT], workdir, self.metrics_port, self.env)

    def restart(self) -> None:
        self.proc.stop()
        self.proc = _start([AGENT], self.workdir, self.metrics_port, self.env)


class Sampler:
    def __init__(self, workdir: Path, broker: Broker, env: dict[str, str], topic: str,
                 encoding: str = "otlp_proto", batch_timeout: str = "200ms", group: str = "samplers",
                 decision_wait: str = "1s", extra_configs: tuple[Path, ...] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.out = workdir / "out.bin"
        self.metrics_port = free_port()
        overlay = workdir / "overlay.yaml"
        overlay.write_text("exporters:\n  file: {append: true, flush_interval: 0s}\n"
                           "service:\n  pipelines:\n    traces:\n      exporters: [file]\n")
        self.configs = [SAMPLER, overlay, *extra_configs]
        self.env = {
            **env, "KAFKA_BROKERS": broker.address, "KAFKA_TOPIC": topic, "KAFKA_ENCODING": encoding,
            "KAFKA_GROUP_ID": group, "KAFKA_INITIAL_OFFSET": "earliest", "TT_BATCH_TIMEOUT": batch_timeout,
            "TT_FILE_OUT": str(self.out), "TT_FILE_FORMAT": "proto",
            # every trace kept, decided quickly: the tests count spans end to end through the trace stages
            "TT_SAMPLING_PERCENTAGE": "100", "TT_DECISION_WAIT": decision_wait,
            "TT_METRICS": f"127.0.0.1:{self.metrics_port}", "TT_HEALTH": f"127.0.0.1:{free_port()}",
        }
        self.proc = _start(self.configs, workdir, self.metrics_port, self.env)

    def restart(self) -> None:
        self.proc.stop()
        self.proc = _start(self.configs, self.workdir, self.metrics_port, self.env)

    def spans(self) -> list[tuple[bytes, bytes]]:
        return read_spans(self.out)


def read_requests(path: Path) -> list[ExportTraceServiceRequest]:
    """The requests of a ``file`` exporter output in ``format: proto`` (length-prefixed)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    out = []
    pos = 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        if pos + 4 + n > len(data):
            break  # a write in progress
        out.append(ExportTraceServiceRequest.FromString(data[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return out


def spans_of(request: ExportTraceServiceRequest) -> list[tuple[bytes, bytes]]:
    return [(s.trace_id, s.span_id) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def read_spans(path: Path) -> list[tuple[bytes, bytes]]:
    return [ids for r in read_requests(path) for ids in spans_of(r)]


def make_request(rnd: random.Random, traces: int, spans_per_trace: int,
                 service: str = "svc") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    ss = rs.scope_spans.add()
    ss.scope.name = "kafka-tests"
    for _ in range(traces):
        tid = rnd.randbytes(16)
        for i in range(spans_per_trace):
            span = ss.spans.add(trace_id=tid, span_id=rnd.randbytes(8), name=f"op-{i}", kind=2,
                                start_time_unix_nano=1_700_000_000_000_000_000,
                                end_time_unix_nano=1_700_000_000_100_000_000)
            span.attributes.add(key="i").value.int_value = i
    return req


class Loader:
    """Sends requests over OTLP/gRPC, retrying each until the collector accepts it; remembers what was
    acknowledged."""

    def __init__(self, port: int, seed: int = 7) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.call = self.channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        self.rnd = random.Random(seed)
        self.acked: set[tuple[bytes, bytes]] = set()

    def send(self, traces: int = 20, spans_per_trace: int = 5, timeout: float = 60.0) -> None:
        req = make_request(self.rnd, traces, spans_per_trace)
        payload = req.SerializeToString()

        def accepted() -> bool:
            try:
                self.call(payload, timeout=5)
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                grpc.StatusCode.DEADLINE_EXCEEDED):
                    return False
                raise
            return True

        wait_for(accepted, timeout=timeout, interval=0.2)
        self.acked.update(spans_of(req))

    def close(self) -> None:
        self.channel.close()


def traces_of(spans: list[tuple[bytes, bytes]]) -> dict[bytes, set[bytes]]:
    out: dict[bytes, set[bytes]] = {}
    for tid, sid in spans:
        out.setdefault(tid, set()).add(sid)
    return out
