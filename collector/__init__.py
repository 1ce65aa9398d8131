"""tracetriage runtime: config, component model, pipelines, receivers, exporters, self-telemetry.

The public API that processors in ``pipelines`` may use is re-exported here.
"""

from collector.component import ComponentID, Factory, Host, Kind, Settings, TraceStage
from collector.consumer import Capabilities, FanOutConsumer, TraceBufferSettings, TracesConsumer
from collector.errors import ConsumerError, PermanentError, RefusedError, TraceTriageError
from collector.model import SpanBatch, count_spans
from collector.telemetry import Telemetry

__version__ = "0.1.0"

__all__ = [
    "Capabilities",
    "ComponentID",
    "ConsumerError",
    "Factory",
    "FanOutConsumer",
    "Host",
    "Kind",
    "PermanentError",
    "RefusedError",
    "Settings",
    "SpanBatch",
    "Telemetry",
    "TraceBufferSettings",
    "TraceStage",
    "TraceTriageError",
    "TracesConsumer",
    "count_spans",
]
