"""``tracetriage``: run, validate, components.

Exit codes: 0 clean stop, 1 a component failed to start or failed while running, 2 bad config or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence

from collector import __version__
from collector.component import Kind
from collector.config.schema import ConfigError
from collector.config.service import CollectorConfig, load_config
from collector.errors import ComponentStartError
from collector.memory import huge_pages_on, reexec_with_huge_pages, tune_malloc
from collector.registry import Registry
from collector.service import Service
from collector.telemetry.logs import setup_logging

log = logging.getLogger("tracetriage")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
COMMANDS = ("run", "validate", "components", "loadgen", "demo", "slo")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tracetriage",
        description="Streaming trace processor: tail sampling, root cause, alert routing (OTel Collector style).",
    )
    p.add_argument("--version", action="version", version=f"tracetriage {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_ in (("run", "run the collector"), ("validate", "check config files and exit")):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", "-c", action="append", required=True, metavar="FILE",
                        help="config file; repeat to merge later files over earlier ones")
    sub.add_parser("components", help="list every receiver, processor, exporter and extension type")
    from collector.demo.run import add_parser as add_demo
    from collector.loadgen.cli import add_parser as add_loadgen

    add_loadgen(sub)
    add_demo(sub)
    slo = sub.add_parser("slo", help="SLO tools").add_subparsers(dest="slo_command", metavar="SUBCOMMAND",
                                                                 required=True)
    rules = slo.add_parser("rules", help="Prometheus recording and alerting rules (a PrometheusRule manifest) for "
                                         "the objectives of the config's slo processors")
    rules.add_argument("--config", "-c", action="append", required=True, metavar="FILE")
    rules.add_argument("--processor", action="append", metavar="ID", help="only this slo processor (repeatable)")
    rules.add_argument("--name", default="tracetriage-slos", help="metadata.name of the PrometheusRule")
    rules.add_argument("--namespace", default="", help="metadata.namespace of the PrometheusRule")
    rules.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version"):
        args_list.insert(0, "run")  # `tracetriage --config FILE` means run
    parser = _parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.command == "components":
        return cmd_components()
    if args.command == "demo":
        from collector.demo.run import main as demo_main

        return demo_main(args)
    if args.command == "loadgen":
        from collector.loadgen.cli import main as loadgen_main

        return loadgen_main(args)
    registry = Registry.default()
    try:
        config = load_config(args.config, registry)
    except ConfigError as e:
        print(f"tracetriage: invalid configuration ({len(e.issues)} error{'s' if len(e.issues) != 1 else ''}):",
              file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "validate":
        print(f"configuration is valid: {', '.join(args.config)}")
        return EXIT_OK
    if args.command == "slo":
        return cmd_slo_rules(args, config)
    if argv is None:  # the command itself (not a call from Python): start again with huge pages if due
        reexec_with_huge_pages()
    tel = config.service.telemetry.logs
    setup_logging(tel.level, tel.encoding)
    if huge_pages_on():
        logging.getLogger("tracetriage").info("malloc: transparent huge pages requested (GLIBC_TUNABLES=%s)",
                                              os.environ.get("GLIBC_TUNABLES", ""))
    return run(config)


def cmd_slo_rules(args: argparse.Namespace, config: CollectorConfig) -> int:
    from collector.registry import slo_rules

    slos = {str(cid): cc.config for cid, cc in config.processors.items() if cc.factory.type == "slo"}
    chosen = args.processor or list(slos)
    missing = [p for p in chosen if p not in slos]  # (named, but not an slo processor of this config)
    if not chosen or missing:
        which = f"processor {', '.join(missing)}" if missing else "slo processor"
        print(f"tracetriage: no {which} in {', '.join(args.config)}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        text = slo_rules([slos[p] for p in chosen], args.name, args.namespace)
    except ValueError as e:
        print(f"tracetriage: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_components() -> int:
    registry = Registry.default()
    for kind in Kind:
        print(f"{kind.section}:")
        for entry in registry.entries():
            if entry.factory.kind is kind:
                desc = f"  {entry.factory.description}" if entry.factory.description else ""
                print(f"  {entry.factory.type:<20} {entry.factory.stability:<12} {entry.source}{desc}")
    for err in registry.load_errors:
        print(f"warning: {err}", file=sys.stderr)
    return EXIT_OK


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# The trace buffer keeps tens of thousands of trace objects alive and creates more per request; with the
# interpreter's default thresholds (700, 10, 10) the cyclic collector runs every few requests and walks
# them all again and again. Fewer young collections, and objects made at start-up frozen out of the
# collector's view, halve the buffer's intake cost (BENCHMARKS.md). Memory is reference counted as before;
# only reference cycles wait a little longer.
GC_THRESHOLDS = (20_000, 50, 100)


def _tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(config: CollectorConfig) -> int:
    tune_malloc()
    _install_uvloop()
    return asyncio.run(_run(config))


async def _run(config: CollectorConfig) -> int:
    service = Service(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("Received signal %s, shutting down (timeout %.0fs)", signal.Signals(signum).name,
                     config.service.shutdown_timeout)
            stop.set()
        else:
            log.error("Received a second signal during shutdown: exiting now")
            os._exit(EXIT_FAILURE)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        log.info("Starting tracetriage %s (config: %s)", __version__, ", ".join(config.files))
        try:
            service.build()
            await service.start()
        except ComponentStartError as e:
            log.error("Failed to start: %s", e)
            await service.shutdown(limit=5.0)
            return EXIT_FAILURE
        if stop.is_set():
            await service.shutdown()
            return EXIT_OK
        _tune_gc()
        stop_task = asyncio.create_task(stop.wait())
        fatal_task = asyncio.create_task(service.host.wait_fatal())
        await asyncio.wait({stop_task, fatal_task}, return_when=asyncio.FIRST_COMPLETED)
        for t in (stop_task, fatal_task):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        fatal = service.host.fatal_error
        if fatal is not None:
            log.error("Fatal error, shutting down: %s", fatal)
            await service.shutdown(limit=min(10.0, config.service.shutdown_timeout))
            return EXIT_FAILURE
        await service.shutdown()
        return EXIT_OK
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


if __name__ == "__main__":
    raise SystemExit(main())
