"""The commands the tools add to ``tracetriage`` (entry points ``tracetriage.commands`` in pyproject.toml).

``tracetriage --help`` imports this module for the help lines, so it stays cheap: each command imports its
tool only when it is asked for.
"""

from __future__ import annotations

import argparse


class DemoCommand:
    name = "demo"
    help = "see it work: broker, collector, alert sink and load with a fault, in one command"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from bench.demo import run

        parser.description = run.__doc__
        run.configure(parser)

    def run(self, args: argparse.Namespace) -> int:
        from bench.demo.run import main

        return main(args)


class LoadgenCommand:
    name = "loadgen"
    help = "send realistic traces (with injected faults and ground truth) to an OTLP endpoint"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from bench.loadgen.cli import configure

        parser.description = "Generate traces of a microservice topology and send them over OTLP."
        configure(parser)

    def run(self, args: argparse.Namespace) -> int:
        from bench.loadgen.cli import main

        return main(args)


demo = DemoCommand()
loadgen = LoadgenCommand()
