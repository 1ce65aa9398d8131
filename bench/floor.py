"""What the transports alone cost per span of a shape: the floor under any collector pipeline here.

``python -m bench.floor --shape long_values --shape baseline --requests 50 --rounds 2`` measures, per shape:

* ``grpc``: a bare ``grpc.aio`` server on uvloop (as the collector runs it) whose Export handler takes each
  request's bytes and answers: no check, no split, nothing passed on. The load is ``bench.shapes``' sender
  (a separate process, 4 concurrent calls). Spans per CPU-second of the server process.
* ``kafka``: an aiokafka producer with the Kafka exporter's settings (max_message_bytes 1,000,000, linger
  10 ms, acks 1, the one-join produce encoding, the hardware-CRC record batches) sending every request's
  bytes, cut into records of at most 1,000,000 bytes, to a tansu broker. Spans per CPU-second of the
  producing process (its CPU time from the first send to the last acknowledgement).
  ``kafka_aiokafka_crc``: the same with aiokafka's own record batch builder (its table-driven CRC).

A pipeline that receives over gRPC and exports to Kafka pays both: 1 / (1/grpc + 1/kafka) spans per
CPU-second is the most any pass-through collector built on these libraries can do with the shape, before
it checks, splits or copies anything. One JSON object per line (``bench: floor``), then one per shape and
transport with the median of the rounds (``bench: floor_median``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from bench.harness import ROOT, cpu_seconds, emit, free_port, tansu
from bench.shapes import SHAPES, ShapeLoad, run_sender

RECORD_BYTES = 1_000_000 - 512  # the exporter's limit: max_message_bytes less its framing allowance


async def _serve(port: int) -> None:
    import grpc

    async def export(request: bytes, context: Any) -> bytes:
        return b""

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)})
    server = grpc.aio.server(handlers=[handler], options=[("grpc.max_receive_message_length", 64 << 20),
                                                          ("grpc.so_reuseport", 0)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


def grpc_floor(name: str, requests: int) -> tuple[int, float]:
    """(spans, server CPU seconds) for ``requests`` requests of shape ``name`` to a bare gRPC server."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor", "serve", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare gRPC server did not start")
        endpoint = f"127.0.0.1:{port}"
        run_sender(name, endpoint, 2)  # connections, the first large buffers
        time.sleep(0.5)
        cpu0 = cpu_seconds(proc.pid)
        stats = run_sender(name, endpoint, requests)
        return int(stats["spans"]), cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(10)


async def _produce(name: str, brokers: str, requests: int, crc: str) -> dict[str, float]:
    from aiokafka import AIOKafkaProducer

    from collector.exporters.kafka import produce_encoding, record_batch

    produce_encoding.install()
    if crc == "hardware":
        record_batch.install()
    else:
        record_batch.uninstall()  # (importing the exporter's package installed it)
    load = ShapeLoad(name)
    payloads = list(load.requests(requests + 2))
    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks=1, linger_ms=10, max_batch_size=1_000_000,
                                max_request_size=1_000_000, enable_idempotence=False)
    await producer.start()
    try:
        async def send(batch: list[bytes]) -> None:
            futures = [await producer.send("floor", payload[at:at + RECORD_BYTES], partition=0)
                       for payload in batch for at in range(0, len(payload), RECORD_BYTES)]
            await asyncio.gather(*futures)

        await send(payloads[:2])  # metadata, connections
        t0 = time.process_time()
        await send(payloads[2:])
        cpu = time.process_time() - t0
    finally:
        await producer.stop()
    return {"spans": requests * load.spans_per_request, "cpu_s": cpu}


def kafka_floor(name: str, brokers: str, requests: int, crc: str = "hardware") -> tuple[int, float]:
    """(spans, producer CPU seconds) for the bytes of ``requests`` requests of shape ``name``; ``crc``:
    "hardware" (the exporter's record batches) or "aiokafka" (aiokafka's own builder)."""
    out = subprocess.run([sys.executable, "-m", "bench.floor", "produce", "--shape", name, "--brokers", brokers,
                          "--requests", str(requests), "--crc", crc],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode:
        raise RuntimeError(f"producer failed: {out.stderr[-2000:]}")
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    return int(stats["spans"]), float(stats["cpu_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="(the bare gRPC server process)")
    s.add_argument("--port", type=int, required=True)
    k = sub.add_parser("produce", help="(the producing process)")
    k.add_argument("--shape", required=True, choices=list(SHAPES))
    k.add_argument("--brokers", required=True)
    k.add_argument("--requests", type=int, required=True)
    k.add_argument("--crc", choices=["hardware", "aiokafka"], default="hardware")
    p.add_argument("--shape", action="append", choices=[n for n, s in SHAPES.items() if not s.json])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--requests", type=int, default=50, help="requests of the shape a measurement (default 50)")
    a = p.parse_args()
    if a.command == "serve":
        from collector.eventloop import install_uvloop

        install_uvloop()
        asyncio.run(_serve(a.port))
        return
    if a.command == "produce":
        from collector.eventloop import install_uvloop

        install_uvloop()
        print(json.dumps(asyncio.run(_produce(a.shape, a.brokers, a.requests, a.crc))))
        return
    shapes = a.shape or ["baseline", "long_values"]
    rates: dict[tuple[str, str], list[float]] = {}
    with tansu() as brokers:
        for k_round in range(a.rounds):
            for name in shapes:
                for transport in ("grpc", "kafka", "kafka_aiokafka_crc"):
                    spans, cpu = (grpc_floor(name, a.requests) if transport == "grpc"
                                  else kafka_floor(name, brokers, a.requests,
                                                   "hardware" if transport == "kafka" else "aiokafka"))
                    rate = spans / max(cpu, 1e-9)
                    rates.setdefault((name, transport), []).append(rate)
                    emit({"bench": "floor", "shape": name, "transport": transport, "round": k_round + 1,
                          "spans": spans, "cpu_s": round(cpu, 3), "spans_per_cpu_s": round(rate)})
    for (name, transport), runs in rates.items():
        runs.sort()
        emit({"bench": "floor_median", "shape": name, "transport": transport, "runs": len(runs),
              "spans_per_cpu_s": round(runs[len(runs) // 2]), "min": round(runs[0]), "max": round(runs[-1])})


if __name__ == "__main__":
    main()
