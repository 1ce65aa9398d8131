"""``tracetriage slo rules``: the objectives of a config's slo processors as a PrometheusRule manifest whose
rules pass ``promtool check rules`` and, under ``promtool test rules``, page as the slo stage does."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.cli import main
from tests.pipelines.slo.helpers import slo_doc

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not found: install Debian's prometheus package (scripts/bootstrap does)")


def write_config(tmp_path: Path) -> Path:
    files = tmp_path / "slos"
    files.mkdir()
    latency = slo_doc("checkout-latency", sli="latency", threshold="300ms",
                      annotations={"tracetriage.io/owner": "group:web",
                                   "tracetriage.io/burn-alerts": "page 14.4x 1h/5m, ticket 3x 1d/2h"})
    (files / "latency.yaml").write_text(yaml.safe_dump(latency))
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(textwrap.dedent(f"""
        receivers:
          otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:0"}}}}}}
        processors:
          slo:
            files: ["{files}/*.yaml"]
            slos: [{yaml.safe_dump(slo_doc("checkout"), default_flow_style=True, width=10_000).strip()}]
          slo/other:
            slos: [{yaml.safe_dump(slo_doc("search", span_name="GET /search", target=0.99, window="7d"),
                                   default_flow_style=True, width=10_000).strip()}]
        exporters:
          debug: {{}}
        service:
          pipelines:
            traces: {{receivers: [otlp], processors: [slo, slo/other], exporters: [debug]}}
    """))
    return cfg


def rules(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "rules.yaml"
    assert main(["slo", "rules", "--config", str(write_config(tmp_path)), "--output", str(out), *args]) == 0
    manifest: dict[str, Any] = yaml.safe_load(out.read_text())
    return manifest


def test_the_manifest_has_sli_meta_and_alert_groups_per_objective(tmp_path: Path) -> None:
    manifest = rules(tmp_path, "--name", "shop-slos", "--namespace", "observability")
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1" and manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["name"] == "shop-slos" and manifest["metadata"]["namespace"] == "observability"
    groups = {g["name"]: g["rules"] for g in manifest["spec"]["groups"]}
    assert list(groups) == [f"tracetriage-slo-{n}-{kind}" for n in ("checkout-latency", "checkout", "search")
                            for kind in ("sli-recordings", "meta-recordings", "alerts")]
    records = [r["record"] for r in groups["tracetriage-slo-checkout-sli-recordings"]]
    assert records == [f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h", "3d", "28d")]
    assert [r["record"] for r in groups["tracetriage-slo-checkout-latency-sli-recordings"]] == [
        f"slo:sli_error:ratio_rate{w}" for w in ("5m", "1h", "2h", "1d", "28d")]
    page, slow, ticket = groups["tracetriage-slo-checkout-alerts"]
    assert page["alert"] == "SLOBurn" and page["labels"] == {
        "slo": "checkout", "severity": "page", "long_window": "1h", "short_window": "5m", "service": "frontend"}
    assert "> (14.4 * 0.001)" in page["expr"] and "ratio_rate5m" in page["expr"]
    assert (slow["labels"]["long_window"], ticket["labels"]["severity"]) == ("6h", "ticket")
    latency_page = groups["tracetriage-slo-checkout-latency-alerts"][0]
    assert latency_page["labels"]["team"] == "web"
    meta = {r["record"]: r["expr"] for r in groups["tracetriage-slo-search-meta-recordings"]}
    assert meta["slo:objective:ratio"] == "vector(0.99)" and meta["slo:time_period:days"] == "vector(7)"


def test_one_processor_only_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = rules(tmp_path, "--processor", "slo/other")
    assert [g["name"] for g in manifest["spec"]["groups"]] == [
        f"tracetriage-slo-search-{kind}" for kind in ("sli-recordings", "meta-recordings", "alerts")]
    cfg = tmp_path / "collector.yaml"
    assert main(["slo", "rules", "--config", str(cfg), "--processor", "slo/nope"]) == 2
    assert "no processor slo/nope in" in capsys.readouterr().err
    (tmp_path / "slos" / "latency.yaml").write_text("apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\n")
    assert main(["slo", "rules", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'slos' / 'latency.yaml'}: document 1: spec: is required" in err


@needs_promtool
def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    manifest = rules(tmp_path)
    spec.write_text(yaml.safe_dump(manifest["spec"]))
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(spec)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(len(g["rules"]) for g in manifest["spec"]["groups"])
    assert count == 15 + 13 + 15 and f"SUCCESS: {count} rules found" in done.stdout


@needs_promtool
def test_promtool_pages_when_the_slo_stage_would(tmp_path: Path) -> None:
    """Three clean days, then 2 % of checkouts fail: 25 minutes in, no page (the hour is at 0.8 %); 70
    minutes in, the 14.4x page and only it (the hour at 2 %, the 6 hours at 0.4 %). (At 70 minutes the last
    hour is all failing, so its ratio is the same whichever evaluation of the recording rule the alert
    sees: promtool does not order rule groups.)"""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(rules(tmp_path, "--processor", "slo")["spec"]))
    labels = {"slo": "checkout", "window": "1h", "severity": "page", "long_window": "1h", "short_window": "5m",
              "service": "frontend"}
    page = next(r for g in yaml.safe_load(spec.read_text())["groups"] for r in g["rules"]
                if r.get("alert") and r["labels"]["slo"] == "checkout" and r["labels"]["long_window"] == "1h")
    test = {
        "rule_files": [str(spec)],
        "evaluation_interval": "5m",  # (1m costs promtool 30 s here, for the same outcome)
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'tracetriage_slo_events_total{slo="checkout",outcome="good"}',
                 "values": "0+100x4320 432098+98x100"},
                {"series": 'tracetriage_slo_events_total{slo="checkout",outcome="bad"}',
                 "values": "0+0x4320 2+2x100"},
            ],
            "alert_rule_test": [
                {"eval_time": "4345m", "alertname": "SLOBurn", "exp_alerts": []},
                {"eval_time": "4390m", "alertname": "SLOBurn",
                 "exp_alerts": [{"exp_labels": labels, "exp_annotations": {
                     "summary": page["annotations"]["summary"],
                     "description": page["annotations"]["description"].replace(
                         "{{ $value | humanizePercentage }}", "2%")}}]},  # 120 bad of 6,000
            ],
        }],
    }
    test_file = tmp_path / "test.yaml"
    test_file.write_text(yaml.safe_dump(test))
    done = subprocess.run([str(PROMTOOL), "test", "rules", str(test_file)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
