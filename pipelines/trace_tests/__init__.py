"""``trace_tests`` processor: Tracetest's trace-based tests, read from their YAML definitions, run on every live
trace; and the ``tracetriage test run`` command that runs the same definitions in CI.

A trace-level stage: each complete trace that a test's first selector matches gets the test's specs;
``tracetriage_trace_tests_total{test, spec, result}`` counts them, a failing trace gets ``tracetest.failed`` on
its root span, and failing specs over the ``alerting`` thresholds leave :class:`TestFailure` notes that
``alert_routing`` (``trigger: trace_tests``) pages to the spec's owner.
"""

from __future__ import annotations

from collector import Factory, Kind, Settings, TracesConsumer
from pipelines.trace_tests.config import AlertingConfig, Config
from pipelines.trace_tests.definition import DefinitionError, TestDefinition, load_definition
from pipelines.trace_tests.model import ALERTNAME, TEST_FAILURES, TestFailure
from pipelines.trace_tests.processor import FAILED_ATTRIBUTE, TraceTestsProcessor


def create(settings: Settings, config: Config, next_consumer: TracesConsumer | None = None) -> TraceTestsProcessor:
    """Trace-level stages are fed by the pipeline's trace buffer: ``next_consumer`` is not used."""
    return TraceTestsProcessor(settings, config)


factory = Factory(
    "trace_tests", Kind.PROCESSOR, Config, create,
    description="Runs Tracetest trace-based test definitions on every live trace; marks and pages failures.",
)

__all__ = [
    "ALERTNAME",
    "FAILED_ATTRIBUTE",
    "TEST_FAILURES",
    "AlertingConfig",
    "Config",
    "DefinitionError",
    "TestDefinition",
    "TestFailure",
    "TraceTestsProcessor",
    "create",
    "factory",
    "load_definition",
]
