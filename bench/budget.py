"""The sampling-budget benchmark: ``python -m bench.budget [--short] [--seed N]``.

Drives the real ``tail_sampling`` stage (one ``ema_throughput`` policy keyed by service and root span name,
``goal_throughput_per_sec`` 100 spans, ``adjustment_interval`` 15 s) with simulated traffic on a simulated
clock, in 100 ms steps: four keys whose trace rates stand 1000 : 100 : 10 : 1 (100 traces/s of 5 spans for
the frequent key, one trace every 10 s for the rare one), and a 5x surge of the frequent key for 2 minutes
(minutes 4 to 6 of the 10 measured). Measuring starts after two adjustment intervals and lasts 10 minutes.

Prints one JSON object: the kept span rate of every 1-minute window against the goal (``worst_window_error``:
the largest relative miss), the fewest traces a key with traffic kept in one adjustment interval
(``min_kept_per_key_interval``), and for each key the true span count against the estimate from the kept
spans (the sum of 1/p, p read back from the ``th`` each kept span carries: ``worst_estimate_error``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import defaultdict
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.component import ComponentID, Kind, Settings
from collector.config import decode
from collector.model import Origin, Trace, make_origin, make_trace
from collector.telemetry import Telemetry
from pipelines.tail_sampling import Config, TailSamplingProcessor
from pipelines.tail_sampling.sample_rate import decode_threshold, ot_fields, threshold_to_probability

GOAL = 100.0  # spans per second
INTERVAL = 15.0
STEP = 0.1
SPANS = 5
# key -> traces per second (1000 : 100 : 10 : 1)
KEYS = {("shop", "checkout"): 100.0, ("shop", "search"): 10.0, ("accounts", "profile"): 1.0,
        ("admin", "audit"): 0.1}
SURGE_KEY = ("shop", "checkout")
SURGE = 5.0


def _config() -> Config:
    return decode(Config, {
        "decision_wait": "1s",
        "policies": [{"name": "budget", "type": "ema_throughput", "ema_throughput": {
            "goal_throughput_per_sec": GOAL, "adjustment_interval": f"{INTERVAL:g}s",
            "field_list": ["service.name", "root.name"]}}],
    })


def _trace(origin: Origin, name: str, rng: random.Random) -> Trace:
    tid = rng.getrandbits(128).to_bytes(16, "big")
    root_id = rng.getrandbits(64).to_bytes(8, "big")
    spans = [Span(trace_id=tid, span_id=root_id, name=name, start_time_unix_nano=1, end_time_unix_nano=2)]
    spans += [Span(trace_id=tid, span_id=rng.getrandbits(64).to_bytes(8, "big"), parent_span_id=root_id,
                   name="child", start_time_unix_nano=1, end_time_unix_nano=2) for _ in range(SPANS - 1)]
    return make_trace([(origin, spans)])


def _weight(trace: Trace) -> tuple[int, float]:
    """Spans of a kept trace and the sum of 1/p over them (p from each span's th; none: 1)."""
    total = 0.0
    n = 0
    for _, span in trace.iter_spans():
        th = ot_fields(span.trace_state).get("th") if span.trace_state else None
        p = 1.0 if th is None else threshold_to_probability(decode_threshold(th))
        total += 1.0 / p
        n += 1
    return n, total


def run(minutes: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now = [0.0]
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, Telemetry(), logging.getLogger("bench"))
    proc = TailSamplingProcessor(settings, _config(), None, clock=lambda: now[0])
    origins = {k: make_origin(Resource(attributes=[KeyValue(key="service.name",
                                                            value=AnyValue(string_value=k[0]))])) for k in KEYS}
    warmup = 2 * INTERVAL
    end = warmup + minutes * 60
    surge = (warmup + minutes * 60 * 0.4, warmup + minutes * 60 * 0.4 + 120.0)
    carry = dict.fromkeys(KEYS, 0.0)
    windows: dict[int, int] = defaultdict(int)  # minute -> kept spans
    per_interval: dict[tuple[int, tuple[str, str]], int] = defaultdict(int)  # (interval, key) -> kept traces
    traffic_intervals: set[tuple[int, tuple[str, str]]] = set()
    true_spans: dict[tuple[str, str], int] = defaultdict(int)
    estimate: dict[tuple[str, str], float] = defaultdict(float)
    steps = round(end / STEP)
    started = time.process_time()
    for i in range(steps):
        now[0] = t = i * STEP
        batch: list[tuple[tuple[str, str], Trace]] = []
        for key, rate in KEYS.items():
            r = rate * (SURGE if key == SURGE_KEY and surge[0] <= t < surge[1] else 1.0)
            carry[key] += r * STEP
            while carry[key] >= 1.0:
                carry[key] -= 1.0
                batch.append((key, _trace(origins[key], key[1], rng)))
        rng.shuffle(batch)
        kept = {id(tr) for tr in proc.process_traces([tr for _, tr in batch])}
        measuring = t >= warmup
        interval = int(t // INTERVAL)
        for key, tr in batch:
            if measuring:
                true_spans[key] += SPANS
                traffic_intervals.add((interval, key))
            if id(tr) not in kept:
                continue
            n, weight = _weight(tr)
            if measuring:
                windows[int((t - warmup) // 60)] += n
                per_interval[(interval, key)] += 1
                estimate[key] += weight
    cpu = time.process_time() - started
    rates = {m: windows.get(m, 0) / 60.0 for m in range(int(minutes))}
    window_errors = {m: (r - GOAL) / GOAL for m, r in rates.items()}
    min_kept = min(per_interval.get(ik, 0) for ik in traffic_intervals) if traffic_intervals else 0
    keys = {"/".join(k): {"true_spans": true_spans[k], "estimate": round(estimate[k], 1),
                          "error": round((estimate[k] - true_spans[k]) / true_spans[k], 4)} for k in KEYS}
    return {
        "bench": "budget", "goal_spans_per_sec": GOAL, "adjustment_interval_s": INTERVAL, "minutes": minutes,
        "seed": seed, "surge": {"key": "/".join(SURGE_KEY), "factor": SURGE, "from_s": surge[0] - warmup,
                                "to_s": surge[1] - warmup},
        "kept_spans_per_sec_by_minute": {m: round(r, 1) for m, r in rates.items()},
        "worst_window_error": round(max(abs(e) for e in window_errors.values()), 4),
        "min_kept_per_key_interval": min_kept,
        "keys": keys, "worst_estimate_error": round(max(abs(v["error"]) for v in keys.values()), 4),
        "cpu_s": round(cpu, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="2 measured minutes instead of 10")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(2.0 if args.short else 10.0, args.seed)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
