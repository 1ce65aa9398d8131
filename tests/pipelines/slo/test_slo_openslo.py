"""Objectives as code: OpenSLO v1 documents from files (globs, directories, several documents per file, SLIs
referenced by name), inline in the config, the specification's own examples, and every kind of invalid
document refused with its file, document number and field."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector import ComponentID, Kind, Settings, Telemetry
from collector.config import ConfigError, decode
from pipelines.slo import Config, ObjectiveError, SloProcessor, factory
from pipelines.slo.model import SRE_WORKBOOK_ALERTS, BurnAlertSpec
from pipelines.slo.openslo import inline_documents, load, load_or_raise, parse_alerts
from tests.pipelines.slo.helpers import NullConsumer

DATA = Path(__file__).parent / "data"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def slo_doc(name: str = "checkout", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "frontend",
        "indicator": {"metadata": {"name": f"{name}-sli"}, "spec": {"ratioMetric": {
            "counter": True,
            "good": {"metricSource": {"type": "tracetriage", "spec": {"sli": "availability"}}},
            "total": {"metricSource": {"type": "tracetriage",
                                       "spec": {"service": "frontend", "span_name": "place_order"}}},
        }}},
        "timeWindow": [{"duration": "28d", "isRolling": True}],
        "budgetingMethod": "Occurrences",
        "objectives": [{"target": 0.999}],
    }
    body.update(spec)
    return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": name}, "spec": body}


def dump(path: Path, *docs: Any) -> Path:
    path.write_text("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs))
    return path


def problems_of(patterns: list[str], inline: tuple[Any, ...] = ()) -> list[str]:
    _, problems, _ = load(patterns, inline)
    return [str(p) for p in problems]


# -- the specification's own examples ---------------------------------------------------------------------


def test_the_specification_readme_example_loads_with_a_tracetriage_source() -> None:
    (o,) = load_or_raise([str(DATA / "openslo-readme-foo-slo.yaml")])
    assert o.name == "foo-slo" and o.display_name == "Foo SLO (Foo Total Errors)" and o.service == "foo"
    assert o.target == 0.98
    assert o.indicator.kind == "availability" and o.indicator.name == "foo-error"
    sel = o.indicator.selector
    assert (sel.service, sel.span_name, sel.span_name_regex) == ("foo", "", "^(GET|POST) ")
    # the README example gives neither timeWindow nor budgetingMethod: the default window, Occurrences
    assert o.window == 28 * 86400 and o.alerts is None


def test_the_specification_occurrences_example_is_a_latency_objective() -> None:
    (o,) = load_or_raise([str(DATA / "openslo-occurrences-slo.yaml")])
    assert o.name == "search-slo" and o.service == "web-shop" and o.window == 14 * 86400
    assert o.indicator.kind == "latency" and o.indicator.threshold_ms == 500 and o.indicator.inclusive is False
    assert o.indicator.selector.span_name == "GET /search" and o.target == 0.99
    assert "duration < 500 ms" in o.indicator.describe()


# -- files, references, inline ----------------------------------------------------------------------------


def test_slis_are_referenced_by_name_across_files_and_other_kinds_are_ignored(tmp_path: Path) -> None:
    sli = {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": "checkout-latency"},
           "spec": {"thresholdMetric": {"metricSource": {"type": "tracetriage", "spec": {
               "service": "frontend", "span_name": "place_order",
               "attributes": {"app.tier": "gold", "retry": False}}}}}}
    service = {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": "shop"}, "spec": {}}
    dump(tmp_path / "a-slis.yaml", service, sli)
    slo = {"apiVersion": "openslo/v1", "kind": "SLO",
           "metadata": {"name": "checkout-fast", "annotations": {
               "tracetriage.io/owner": "group:web", "tracetriage.io/burn-alerts": "page 10x 2h/10m, ticket 2x 1d/2h",
               "tracetriage.io/min-cause-share": "0.6"}},
           "spec": {"service": "shop", "indicatorRef": "checkout-latency", "budgetingMethod": "Occurrences",
                    "timeWindow": [{"duration": "4w", "isRolling": True}],
                    "objectives": [{"displayName": "fast", "op": "lte", "value": 300, "targetPercent": 99.5}]}}
    dump(tmp_path / "b-slos.yaml", slo)
    (o,) = load_or_raise([str(tmp_path)])  # a directory: its *.yaml files
    assert o.name == "checkout-fast" and o.owner == "group:web" and o.service == "shop"
    assert o.target == pytest.approx(0.995) and o.window == 28 * 86400 and o.min_cause_share == 0.6
    assert o.alerts == (BurnAlertSpec("page", 10, 7200, 600), BurnAlertSpec("ticket", 2, 86400, 7200))
    ind = o.indicator
    assert ind.kind == "latency" and ind.threshold_ms == 300 and ind.inclusive
    assert ind.selector.attributes == (("app.tier", "gold"), ("retry", "false"))
    assert o.source == f"{tmp_path / 'b-slos.yaml'}: document 1"


def test_several_objectives_and_latency_ratio(tmp_path: Path) -> None:
    doc = slo_doc("checkout", objectives=[{"target": 0.99}, {"target": 0.999, "displayName": "strict"}])
    doc["spec"]["indicator"]["spec"]["ratioMetric"]["good"]["metricSource"]["spec"] = {
        "sli": "latency", "latency_threshold": "250ms"}
    dump(tmp_path / "slo.yml", doc)
    a, b = load_or_raise([str(tmp_path / "*.yml")])
    assert (a.name, b.name) == ("checkout-1", "checkout-2")
    assert a.indicator.kind == "latency" and a.indicator.threshold_ms == 250 and a.indicator.inclusive
    assert b.display_name == "checkout (strict)" and b.target == 0.999
    assert a.fingerprint() == b.fingerprint()  # the same spans, counted the same way


def test_inline_objectives_in_the_processor_config() -> None:
    doc = slo_doc("inline-checkout")
    del doc["apiVersion"], doc["kind"]  # optional inline
    config = decode(Config, {"slos": [doc], "burn_alerts": [
        {"severity": "page", "burn_rate": 14.4, "long_window": "1h", "short_window": "5m"}]}, "processors.slo")
    settings = Settings(ComponentID("slo"), Kind.PROCESSOR, Telemetry(), logging.getLogger("test.slo"))
    proc = factory.create(settings, config, NullConsumer())
    assert isinstance(proc, SloProcessor)
    assert [o.name for o in proc.objectives] == ["inline-checkout"]
    assert proc.alerts_of(proc.objectives[0]) == (SRE_WORKBOOK_ALERTS[0],)


def test_processor_defaults_are_the_sre_workbook_alerts() -> None:
    config = decode(Config, {"slos": [slo_doc()]})
    assert config.alert_specs == SRE_WORKBOOK_ALERTS
    assert [str(a) for a in SRE_WORKBOOK_ALERTS] == ["page 14.4x 1h/5m", "page 6x 6h/30m", "ticket 1x 3d/6h"]
    assert parse_alerts("page 14.4x 1h/5m, page 6x 6h/30m, ticket 1x 3d/6h") == SRE_WORKBOOK_ALERTS


# -- invalid documents ------------------------------------------------------------------------------------

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("target", {"objectives": [{"target": 1.5}]},
     "spec.objectives[0].target: must be a number with 0 < target < 1, got 1.5"),
    ("timeslices", {"budgetingMethod": "Timeslices"}, "spec.budgetingMethod: only Occurrences is supported"),
    ("calendar", {"timeWindow": [{"duration": "1M", "calendar": {"startTime": "2022-01-01 00:00:00",
                                                                 "timeZone": "UTC"}}]},
     "spec.timeWindow[0]: only rolling windows are supported"),
    ("months", {"timeWindow": [{"duration": "1M", "isRolling": True}]},
     "spec.timeWindow[0].duration: unit 'M' (months, quarters, years) has no fixed length"),
    ("no objectives", {"objectives": []}, "spec.objectives: must be a non-empty list"),
    ("unknown key", {"objectivs": [{"target": 0.9}]}, "spec.objectivs: unknown key"),
    ("both refs", {"indicatorRef": "x"}, "spec: give indicator or indicatorRef, not both"),
    ("threshold op", {"indicator": {"spec": {"thresholdMetric": {"metricSource": {
        "type": "tracetriage", "spec": {"span_name": "a"}}}}}, "objectives": [{"op": "gt", "value": 3, "target": 0.9}]},
     "spec.objectives[0].op: a latency objective is met below its threshold: use lt or lte, got 'gt'"),
    ("datadog", {"indicator": {"spec": {"ratioMetric": {
        "good": {"metricSource": {"type": "Datadog", "spec": {"query": "x"}}},
        "total": {"metricSource": {"type": "tracetriage", "spec": {"span_name": "a"}}}}}}},
     "spec.indicator.spec.ratioMetric.good.metricSource.type: must be tracetriage"),
    ("no span name", {"indicator": {"spec": {"ratioMetric": {
        "good": {"metricSource": {"type": "tracetriage", "spec": {}}},
        "total": {"metricSource": {"type": "tracetriage", "spec": {"service": "frontend"}}}}}}},
     "spec.indicator.spec.ratioMetric.good.metricSource.spec.span_name: is required (or span_name_regex)"),
    ("bad regex", {"indicator": {"spec": {"ratioMetric": {
        "good": {"metricSource": {"type": "tracetriage", "spec": {}}},
        "total": {"metricSource": {"type": "tracetriage", "spec": {"span_name_regex": "(["}}}}}}},
     "spec.indicator.spec.ratioMetric.total.metricSource.spec.span_name_regex: invalid regular expression"),
    ("conflict", {"indicator": {"spec": {"ratioMetric": {
        "good": {"metricSource": {"type": "tracetriage", "spec": {"span_name": "b"}}},
        "total": {"metricSource": {"type": "tracetriage", "spec": {"span_name": "a"}}}}}}},
     "spec.indicator.spec.ratioMetric.total.metricSource.spec.span_name: differs from "
     "spec.indicator.spec.ratioMetric.good.metricSource.spec.span_name ('b')"),
    ("latency without threshold", {"indicator": {"spec": {"ratioMetric": {
        "good": {"metricSource": {"type": "tracetriage", "spec": {"sli": "latency"}}},
        "total": {"metricSource": {"type": "tracetriage", "spec": {"span_name": "a"}}}}}}},
     "spec.indicator.spec.ratioMetric.good.metricSource.spec.latency_threshold: is required with sli: latency"),
    ("burn alerts", {"service": "frontend"},
     "metadata.annotations.tracetriage.io/burn-alerts: 'page 5m/1h' is not '<severity> <rate>x <long>/<short>'"),
]


@pytest.mark.parametrize(("case", "spec", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_documents_name_file_document_and_field(tmp_path: Path, case: str, spec: dict[str, Any],
                                                        expected: str) -> None:
    good = slo_doc("fine")
    bad = slo_doc("broken", **spec)
    if case == "burn alerts":
        bad["metadata"]["annotations"] = {"tracetriage.io/burn-alerts": "page 5m/1h"}
    path = dump(tmp_path / "objectives.yaml", good, bad)
    problems = problems_of([str(path)])
    assert problems, case
    assert problems[0].startswith(f"{path}: document 2: {expected}"), problems
    with pytest.raises(ObjectiveError) as info:
        load_or_raise([str(path)])
    assert f"{path}: document 2: " in str(info.value)


def test_yaml_errors_unknown_references_and_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "slo.yaml", """
        apiVersion: openslo/v1
        kind: SLO
        metadata: {name: a}
        spec: {service: x, indicatorRef: nowhere, objectives: [{target: 0.9}]}
        ---
        apiVersion: openslo/v1
        kind: SLO
        metadata: {name: [oops
    """)
    yaml_problem, ref_problem = problems_of([str(path)])
    assert yaml_problem.startswith(f"{path}: document 2: invalid YAML at line ")  # (the parser's wording varies)
    assert ref_problem == f"{path}: document 1: spec.indicatorRef: no SLI named 'nowhere' (defined: none)"
    dump(tmp_path / "dup.yaml", slo_doc("same"), slo_doc("same"))
    assert problems_of([str(tmp_path / "dup.yaml")]) == [
        f"{tmp_path / 'dup.yaml'}: document 2: metadata.name: SLO 'same' is already defined in "
        f"{tmp_path / 'dup.yaml'}: document 1"]
    assert problems_of([str(tmp_path / "missing.yaml")]) == [f"{tmp_path / 'missing.yaml'}: not found"]
    dump(tmp_path / "v2.yaml", {**slo_doc("v2"), "apiVersion": "openslo.com/v2alpha"})
    assert problems_of([str(tmp_path / "v2.yaml")]) == [
        f"{tmp_path / 'v2.yaml'}: document 1: apiVersion: must be openslo/v1, got 'openslo.com/v2alpha'"]


def test_inline_problems_are_config_errors_with_the_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, {"slos": [slo_doc("x", objectives=[{"targetPercent": 120}])]}, "processors.slo")
    assert str(info.value) == ("processors.slo.slos[0].spec.objectives[0].targetPercent: must be a number with "
                               "0 < targetPercent < 100, got 120")
    with pytest.raises(ConfigError) as info:
        decode(Config, {}, "processors.slo")
    assert "processors.slo: needs objectives" in str(info.value)
    docs = inline_documents([{"metadata": {"name": "y"}}])
    assert docs[0].body["kind"] == "SLO" and docs[0].where == "slos[0]"


# -- reloading --------------------------------------------------------------------------------------------


def _processor(config: Config) -> SloProcessor:
    settings = Settings(ComponentID("slo"), Kind.PROCESSOR, Telemetry(), logging.getLogger("test.slo"))
    return SloProcessor(settings, config, clock=lambda: 1_700_000_000.0)


def test_changed_files_are_reloaded_and_an_invalid_change_is_refused_whole(tmp_path: Path) -> None:
    path = dump(tmp_path / "slo.yaml", slo_doc("a"), slo_doc("b"))
    proc = _processor(decode(Config, {"files": [str(tmp_path / "*.yaml")], "reload_interval": "1s"}))
    assert [o.name for o in proc.objectives] == ["a", "b"]
    proc.record("a", good=90, bad=10)
    series_a = proc.series("a")
    assert proc.reload() is False  # nothing changed

    dump(path, slo_doc("a"), slo_doc("c", objectives=[{"target": 0.95}]))
    os.utime(path, ns=(1, 1))  # a change of mtime even within the filesystem's timestamp resolution
    assert proc.reload() is True
    assert [o.name for o in proc.objectives] == ["a", "c"]
    assert proc.series("a") is series_a  # unchanged objective: its measured state stays

    dump(path, slo_doc("a"), slo_doc("d", objectives=[{"target": 2}]))
    os.utime(path, ns=(2, 2))
    assert proc.reload() is False  # refused: the objectives in use stay
    assert [o.name for o in proc.objectives] == ["a", "c"]

    doc = slo_doc("a")
    doc["spec"]["indicator"]["spec"]["ratioMetric"]["total"]["metricSource"]["spec"]["span_name"] = "other"
    dump(path, doc)
    os.utime(path, ns=(3, 3))
    assert proc.reload() is True
    assert proc.series("a") is not series_a  # what is counted changed: measured afresh
    assert proc.series("a").sums(1_700_000_000.0, 3600) == (0, 0)


def test_no_objective_at_all_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ObjectiveError, match="no objective found in files"):
        _processor(decode(Config, {"files": [str(tmp_path / "*.yaml")]}))
