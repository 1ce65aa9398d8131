"""Self-telemetry: metrics registry, logging set-up and the /metrics endpoint."""

from collector.telemetry.metrics import Telemetry, rss_bytes

__all__ = ["Telemetry", "rss_bytes"]
