"""Load process for the benchmarks: sends reference requests over OTLP gRPC (raw bytes, no re-encoding),
retrying UNAVAILABLE like an SDK would, and prints one JSON line of stats."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc

from bench.reference import SPANS_PER_REQUEST, ReferenceLoad

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def send(endpoint: str, requests: int, concurrency: int) -> dict[str, float]:
    load = ReferenceLoad()
    payloads = iter(load.requests(requests))
    retries = 0
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(METHOD)

        async def worker() -> None:
            nonlocal retries
            for payload in payloads:
                while True:
                    t0 = time.perf_counter()
                    try:
                        await call(payload, timeout=30)
                        latencies.append(time.perf_counter() - t0)
                        break
                    except grpc.aio.AioRpcError as e:
                        if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                            raise
                        retries += 1
                        await asyncio.sleep(0.05)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests": requests, "spans": requests * SPANS_PER_REQUEST, "wall_s": wall, "retries": retries,
            "p50_export_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
            "bytes_per_span": load.bytes_per_span}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=8)
    a = p.parse_args()
    print(json.dumps(asyncio.run(send(a.endpoint, a.requests, a.concurrency))))


if __name__ == "__main__":
    main()
