"""What the ``servicegraph`` and ``spanmetrics`` processors share: the Prometheus listener they serve their
series on (one per endpoint, shared by every processor that names it, separate from the collector's own
``/metrics``), exemplars held until tail sampling decides their trace, fixed-bucket histograms, and reading
the few span and resource fields they label series with, and the counter of their CPU time.
"""

from pipelines.exposition.cpu import span_stage_cpu_counter
from pipelines.exposition.exemplars import PendingExemplars
from pipelines.exposition.histogram import Histogram, bucket_labels
from pipelines.exposition.listener import MetricsListener, SeriesSource, serve, stop_serving
from pipelines.exposition.spans import KIND_NAMES, STATUS_NAMES, attribute_text, find_attribute, service_name

__all__ = [
    "KIND_NAMES",
    "STATUS_NAMES",
    "Histogram",
    "MetricsListener",
    "PendingExemplars",
    "SeriesSource",
    "attribute_text",
    "bucket_labels",
    "find_attribute",
    "serve",
    "service_name",
    "span_stage_cpu_counter",
    "stop_serving",
]
