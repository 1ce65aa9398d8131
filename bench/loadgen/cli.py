"""``tracetriage loadgen``: send generated traces to an OTLP endpoint.

Exit codes: 0 everything sent, 1 some requests failed, 2 bad options, topology or faults, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import IO, Any

from bench.loadgen.faults import FaultPlan, check_fault, check_plan, load_plan, parse_fault, plan_from_faults
from bench.loadgen.generate import Batch, Generator
from bench.loadgen.progress import Progress
from bench.loadgen.send import DEFAULT_ENDPOINTS, PROTOCOLS, SendOptions, SendStats, send
from bench.loadgen.topology import load_topology
from collector.config.schema import ConfigError, ConfigIssue, Duration

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_COUNT = 100

HELP_FAULT = ("inject a fault (repeatable): error:SERVICE[/OPERATION]:RATE[:nocascade][:attribute], "
              "latency:SERVICE[/OPERATION]:ADD_MS[:RATE], db:DATABASE:RATE, noise[:SERVICE]:RATE")


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            value = float(Duration.parse(text))
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def configure(p: argparse.ArgumentParser) -> None:
    dest = p.add_argument_group("destination")
    dest.add_argument("--endpoint", default="",
                      help=f"OTLP endpoint (default {DEFAULT_ENDPOINTS['grpc']} for grpc, "
                           f"{DEFAULT_ENDPOINTS['http/protobuf']} for http)")
    dest.add_argument("--protocol", choices=PROTOCOLS, default="grpc", help="OTLP transport (default grpc)")
    dest.add_argument("--header", action="append", default=[], metavar="KEY=VALUE",
                      help="request header / gRPC metadata (repeatable)")
    dest.add_argument("--timeout", type=_duration, default=10.0, metavar="S", help="per request (default 10s)")
    dest.add_argument("--max-retry-time", type=_duration, default=30.0, metavar="S",
                      help="give a batch up after retrying this long (default 30s)")
    pace = p.add_argument_group("how much, how fast")
    speed = pace.add_mutually_exclusive_group()
    speed.add_argument("--rate", type=_positive_float, metavar="SPANS_PER_S", help="target span rate")
    speed.add_argument("--max", action="store_true", help="as fast as possible (the default)")
    pace.add_argument("--count", type=int, metavar="TRACES",
                      help=f"traces to send (default {DEFAULT_COUNT} unless --duration is given)")
    pace.add_argument("--duration", type=_duration, metavar="S", help="stop after this long (e.g. 30, 30s, 2m)")
    pace.add_argument("--concurrency", type=_positive_int, default=4, help="requests in flight (default 4)")
    pace.add_argument("--batch-spans", type=_positive_int, default=500, help="spans per request (default 500)")
    what = p.add_argument_group("what")
    what.add_argument("--topology", metavar="FILE", help="topology YAML (default: the shipped shop.yaml)")
    what.add_argument("--fault", action="append", default=[], metavar="SPEC", help=HELP_FAULT)
    what.add_argument("--faults", metavar="FILE", help="fault scenarios YAML (instead of --fault)")
    what.add_argument("--seed", type=int, help="seed for repeatable traces")
    out = p.add_argument_group("output")
    out.add_argument("--truth", metavar="FILE", help="write the ground truth of every trace here (JSON lines)")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    out.add_argument("--dry-run", action="store_true", help="generate without sending; report the rate")


def _headers(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--header {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def build(args: argparse.Namespace) -> tuple[Generator, SendOptions]:
    """The generator and send options the arguments describe; raises ConfigError or ValueError."""
    topology = load_topology(args.topology)
    if args.faults and args.fault:
        raise ValueError("give --fault or --faults, not both")
    plan: FaultPlan
    if args.faults:
        plan = load_plan(args.faults)
        check_plan(plan, topology, args.faults)
    else:
        faults = [parse_fault(spec) for spec in args.fault]
        issues = [ConfigIssue("", problem, f"--fault {spec}")
                  for spec, fault in zip(args.fault, faults, strict=True) for problem in check_fault(fault, topology)]
        if issues:
            raise ConfigError(issues)
        plan = plan_from_faults(faults)
    count = args.count
    if count is None and args.duration is None:
        count = DEFAULT_COUNT
    if count is not None and count < 0:
        raise ValueError(f"--count must be >= 0, got {count}")
    options = SendOptions(endpoint=args.endpoint, protocol=args.protocol, rate=args.rate, count=count,
                          duration=args.duration, concurrency=args.concurrency, batch_spans=args.batch_spans,
                          timeout=args.timeout, max_retry_time=args.max_retry_time, headers=_headers(args.header))
    options.check()
    return Generator(topology, plan, seed=args.seed), options


def main(args: argparse.Namespace) -> int:
    try:
        generator, options = build(args)
    except ConfigError as e:
        print(f"tracetriage loadgen: {len(e.issues)} problem{'s' if len(e.issues) != 1 else ''}:", file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        print(f"tracetriage loadgen: {e}", file=sys.stderr)
        return EXIT_USAGE
    truth_file: IO[str] | None = None
    if args.truth:
        try:
            truth_file = open(args.truth, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
        except OSError as e:
            print(f"tracetriage loadgen: cannot write --truth {args.truth}: {e.strerror or e}", file=sys.stderr)
            return EXIT_USAGE
    try:
        if args.dry_run:
            return _dry_run(generator, options, truth_file)
        stats = SendStats()
        try:
            asyncio.run(_run(generator, options, stats, truth_file, quiet=args.quiet))
        except KeyboardInterrupt:
            print(file=sys.stderr)
            print(json.dumps(stats.to_dict()))
            return EXIT_INTERRUPTED
        print(json.dumps(stats.to_dict()))
        return EXIT_FAILED if stats.failed_requests else EXIT_OK
    finally:
        if truth_file is not None:
            truth_file.close()


def _writer(truth_file: IO[str] | None) -> Any:
    if truth_file is None:
        return None

    def write(batch: Batch) -> None:
        truth_file.write("".join(t.to_json() + "\n" for t in batch.truths))

    return write


async def _run(generator: Generator, options: SendOptions, stats: SendStats, truth_file: IO[str] | None,
               *, quiet: bool) -> None:
    progress = None if quiet else Progress(stats, sys.stderr)
    task = asyncio.create_task(progress.run()) if progress is not None else None
    try:
        await send(generator, options, stats=stats, on_batch=_writer(truth_file))
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if progress is not None:
            progress.finish()


def _dry_run(generator: Generator, options: SendOptions, truth_file: IO[str] | None) -> int:
    write = _writer(truth_file)
    traces = spans = size = 0
    start = time.monotonic()
    cpu = time.process_time()
    for batch in generator.batches(options.batch_spans, options.count):
        traces += batch.traces
        spans += batch.spans
        size += len(batch.payload)
        if write is not None:
            write(batch)
        if options.duration is not None and time.monotonic() - start >= options.duration:
            break
    cpu = time.process_time() - cpu
    print(json.dumps({"traces": traces, "spans": spans, "bytes": size,
                      "spans_per_cpu_s": round(spans / cpu, 1) if cpu > 0 else None,
                      "bytes_per_span": round(size / spans, 1) if spans else None}))
    return EXIT_OK
