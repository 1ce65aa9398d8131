"""The /metrics exposition: the OTel Collector's, without prometheus_client's ``_created`` series (for this
service's registry only), with a ``target_info`` series carrying the service's resource."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from collector.telemetry import Telemetry


def test_no_created_series_and_the_rest_intact() -> None:
    tel = Telemetry()
    tel.receiver_accepted_spans.labels(receiver="otlp", transport="grpc").inc(3)
    tel.histogram("tracetriage_test_seconds", "A histogram.", buckets=(1.0,)).observe(0.5)
    text = tel.exposition().decode()
    assert "_created" not in text
    assert 'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 3.0' in text
    assert "tracetriage_test_seconds_bucket" in text and "tracetriage_test_seconds_count 1.0" in text


def test_another_registry_in_the_process_is_not_affected() -> None:
    Telemetry().exposition()
    other = CollectorRegistry()
    Counter("other_total", "Another library's counter.", registry=other).inc()
    assert b"other_created" in generate_latest(other)


def test_target_info_carries_the_resource() -> None:
    tel = Telemetry()
    tel.set_resource({"service.name": "tracetriage", "k8s.node.name": "node-a"})
    assert 'target_info{k8s_node_name="node-a",service_name="tracetriage"} 1.0' in tel.exposition().decode()
