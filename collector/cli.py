"""``tracetriage``: run, validate, components, and the commands installed packages add (collector/commands.py).

Exit codes: 0 clean stop, 1 a component failed to start or failed while running, 2 bad config or usage (or a
command that cannot be loaded here). Commands from other packages choose their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint
from pathlib import Path

from collector import __version__, commands
from collector.component import Kind
from collector.config.features import GATES, FeatureGates
from collector.config.loader import set_source
from collector.config.schema import ConfigError, ConfigIssue
from collector.config.service import CollectorConfig, load_config
from collector.errors import ComponentStartError
from collector.eventloop import install_uvloop
from collector.memory import huge_pages_on, reexec_with_huge_pages, tune_malloc
from collector.registry import Registry
from collector.service import Service
from collector.telemetry.logs import setup_logging

log = logging.getLogger("tracetriage")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
# The runtime's own commands: each has a parser in _parser and a branch in main. Installed packages add more
# (collector/commands.py); a built-in name always wins over theirs.
BUILTIN_COMMANDS = ("run", "validate", "components", "slo", "status", "catalog")
HELP_OPTIONS = ("-h", "--help")


def _parser(installed: Mapping[str, EntryPoint], *, describe: bool = False) -> argparse.ArgumentParser:
    """The built-in commands' parser. ``installed`` commands are only listed (each parses its own options),
    with their help lines when ``describe`` (loading them: only when the help is shown)."""
    p = argparse.ArgumentParser(
        prog="tracetriage",
        description="Streaming trace processor: tail sampling, root cause, alert routing (OTel Collector style).",
    )
    p.add_argument("--version", action="version", version=f"tracetriage {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_ in (("run", "run the collector"), ("validate", "check config files and exit")):
        _config_arguments(sub.add_parser(name, help=help_))
    sub.add_parser("components", help="list every receiver, processor, exporter and extension type")
    status = sub.add_parser("status", help="the status page's summary of a running collector (service.telemetry.ui)")
    status.add_argument("--endpoint", default="localhost:55679", metavar="URL",
                        help="the status page: host:port or URL (default localhost:55679)")
    status.add_argument("--limit", type=int, default=10, help="rows per list (default 10)")
    status.add_argument("--json", action="store_true", help="print /api/v1/status as it is")
    status.add_argument("--token-file", metavar="FILE",
                        help="a bearer token for a page behind bearertokenauth (first line of FILE; never printed)")
    status.add_argument("--ca-file", metavar="FILE",
                        help="the CA that signed an https page's certificate (default: the system's CAs)")
    for name, ep in installed.items():
        sub.add_parser(name, help=_summary(ep) if describe else "", add_help=False)
    slo = sub.add_parser("slo", help="SLO tools").add_subparsers(dest="slo_command", metavar="SUBCOMMAND",
                                                                 required=True)
    rules = slo.add_parser("rules", help="Prometheus recording and alerting rules (a PrometheusRule manifest) for "
                                         "the objectives of the config's slo processors")
    _config_arguments(rules)
    rules.add_argument("--processor", action="append", metavar="ID", help="only this slo processor (repeatable)")
    rules.add_argument("--name", default="tracetriage-slos", help="metadata.name of the PrometheusRule")
    rules.add_argument("--namespace", default="", help="metadata.namespace of the PrometheusRule")
    rules.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    catalog = sub.add_parser("catalog", help="ownership catalog tools").add_subparsers(
        dest="catalog_command", metavar="SUBCOMMAND", required=True)
    drift = catalog.add_parser("diff", help="dependencies seen in traces by the running collector of the config "
                                            "against the catalog files: undeclared, stale, unowned services "
                                            "(exit 1 when there is drift)")
    _config_arguments(drift)
    drift.add_argument("--catalog", action="append", required=True, metavar="GLOB",
                       help="Backstage catalog files (repeatable)")
    drift.add_argument("--stale-after", default="7d", metavar="DURATION",
                       help="a declared dependency not seen for this long is stale (default 7d; e.g. 36h)")
    drift.add_argument("--url", default="", help="the collector's /catalog/dependencies URL (default: from the "
                                                 "config's service.telemetry.metrics address)")
    return p


def _config_arguments(sp: argparse.ArgumentParser) -> None:
    """The options that say which config to read (run, validate, slo rules)."""
    sp.add_argument("--config", "-c", action="append", required=True, metavar="URI",
                    help="config file (PATH or file:PATH), env:NAME (YAML in an environment variable) or "
                         "yaml:key::path: value; repeat to merge later sources over earlier ones")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="set one option, merged over every --config (e.g. processors.batch.timeout=2s)")
    sp.add_argument("--feature-gates", action="append", default=[], metavar="GATES",
                    help="comma-separated feature gate ids; prefix '-' to disable (see 'components')")


def _summary(ep: EntryPoint) -> str:
    try:
        return commands.load(ep).help
    except commands.CommandUnavailable as e:
        return f"(not available here: {e.reason})"


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:  # argparse keeps its subcommands there
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return list(BUILTIN_COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = args_list[0] if args_list else None
    installed = commands.discover(reserved=BUILTIN_COMMANDS)
    if first in installed:
        return run_installed(installed[first], args_list[1:])
    parser = _parser(installed, describe=first is None or first in HELP_OPTIONS)
    known = _commands(parser)
    if first is not None and not first.startswith("-") and first not in known:
        print(f"tracetriage: unknown command {first!r}; the commands are: {', '.join(known)} "
              "(tracetriage --help says more)", file=sys.stderr)
        return EXIT_CONFIG
    if first is not None and first.startswith("-") and first not in (*HELP_OPTIONS, "--version"):
        args_list.insert(0, "run")  # `tracetriage --config FILE` means run
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.command == "components":
        return cmd_components()
    if args.command == "status":
        return cmd_status(args)
    try:
        gates = FeatureGates.parse(args.feature_gates)
        sources = [*args.config, *(set_source(s) for s in args.set)]
    except ValueError as e:
        print(f"tracetriage: {e}", file=sys.stderr)
        return EXIT_CONFIG
    registry = Registry.default()
    try:
        config = load_config(sources, registry, gates=gates)
    except ConfigError as e:
        _print_warnings(e.warnings)
        print(f"tracetriage: invalid configuration ({len(e.issues)} error{'s' if len(e.issues) != 1 else ''}):",
              file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "validate":
        _print_warnings(config.warnings)
        print(f"configuration is valid: {', '.join(config.files)}")
        return EXIT_OK
    if args.command == "slo":
        return cmd_slo_rules(args, config)
    if args.command == "catalog":
        return cmd_catalog_diff(args, config)
    if argv is None:  # the command itself (not a call from Python): start again with huge pages if due
        reexec_with_huge_pages()
    tel = config.service.telemetry.logs
    setup_logging(tel.level, tel.encoding)
    for warning in config.warnings:
        log.warning("config: %s", warning)
    if huge_pages_on():
        logging.getLogger("tracetriage").info("malloc: transparent huge pages requested (GLIBC_TUNABLES=%s)",
                                              os.environ.get("GLIBC_TUNABLES", ""))
    return run(config)


def run_installed(ep: EntryPoint, argv: Sequence[str]) -> int:
    """``tracetriage NAME ...`` for a command an installed package adds: load it, parse its options, run it."""
    prog = f"tracetriage {ep.name}"
    try:
        command, parser = commands.parser_for(ep, prog)
    except commands.CommandUnavailable as e:
        print(f"{prog}: not available: {e}", file=sys.stderr)
        return EXIT_CONFIG
    return command.run(parser.parse_args(argv))


def _print_warnings(warnings: Sequence[ConfigIssue]) -> None:
    for warning in warnings:
        print(f"tracetriage: warning: {warning}", file=sys.stderr)


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


def cmd_status(args: argparse.Namespace) -> int:
    from collector.ui.text import StatusError, fetch, summary

    try:
        token = None
        if args.token_file:
            try:
                lines = Path(args.token_file).read_text().splitlines()
            except OSError as e:
                raise StatusError(f"--token-file {args.token_file}: {e.strerror or e}") from None
            token = lines[0].strip() if lines else ""
            if not token:
                raise StatusError(f"--token-file {args.token_file}: the file is empty")
        data = fetch(args.endpoint, args.limit, token=token, ca_file=args.ca_file)
    except StatusError as e:
        print(f"tracetriage status: {e}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(data, indent=2) if args.json else summary(data))
    return EXIT_OK


def cmd_catalog_diff(args: argparse.Namespace, config: CollectorConfig) -> int:
    from collector.config.schema import Duration
    from collector.registry import catalog_diff

    text = args.stale_after.strip()
    try:
        stale_after = float(Duration.parse(text[:-1] + "h" if text.endswith("d") else text)) * (
            24 if text.endswith("d") else 1)
        report, code = catalog_diff(config.service.telemetry.metrics.endpoints, args.catalog, stale_after, args.url)
    except ValueError as e:
        print(f"tracetriage catalog diff: {e}", file=sys.stderr)
        return EXIT_CONFIG
    sys.stdout.write(report)
    return code


def cmd_components() -> int:
    registry = Registry.default()
    for kind in Kind:
        print(f"{kind.section}:")
        for entry in registry.entries():
            if entry.factory.kind is kind:
                desc = f"  {entry.factory.description}" if entry.factory.description else ""
                aliases = getattr(entry.factory, "aliases", ())
                also = f"  (also: {', '.join(aliases)})" if aliases else ""
                print(f"  {entry.factory.type:<20} {entry.factory.stability:<12} {entry.source}{desc}{also}")
    print("feature gates (--feature-gates):")
    for gate in GATES:
        print(f"  {gate.id:<34} {gate.stage:<6} {'on' if gate.default else 'off':<4} {gate.description}")
    for err in registry.load_errors:
        print(f"warning: {err}", file=sys.stderr)
    return EXIT_OK


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
    install_uvloop()
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
