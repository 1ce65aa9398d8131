"""``tracetriage test``: the trace-based test commands (an entry point of ``tracetriage.commands``).

Cheap to import (``tracetriage --help`` loads it for its help line): the runner is imported when asked for.
"""

from __future__ import annotations

import argparse


class TestCommand:
    name = "test"
    help = "run Tracetest trace-based tests: fire the trigger, collect the trace, check its spans (test run)"

    __test__ = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from pipelines.trace_tests import runner

        parser.description = "Trace-based tests in Tracetest's format, in CI."
        runner.configure(parser)

    def run(self, args: argparse.Namespace) -> int:
        from pipelines.trace_tests.runner import main

        return main(args)


test = TestCommand()
