"""alert_routing config: defaults, the docs/design.md example, and every error named by its key path."""

from __future__ import annotations

from typing import Any

import pytest

from collector.config import ConfigError, decode
from pipelines.alert_routing import Config
from pipelines.alert_routing.config import DEFAULT_PAGERDUTY_URL

PATH = "processors.alert_routing"

MINIMAL: dict[str, Any] = {
    "route": {"receiver": "default"},
    "receivers": [{"name": "default", "webhook": {"url": "http://alerts.internal/hook"}}],
}


def test_defaults() -> None:
    cfg = decode(Config, MINIMAL)
    assert cfg.decision_wait == 10.0
    assert cfg.group_by == ("team", "service", "span_name")
    timers = (cfg.group_wait, cfg.group_interval, cfg.repeat_interval, cfg.resolve_timeout)
    assert timers == (10.0, 300.0, 14400.0, 300.0)
    assert cfg.severity == "page"
    assert (cfg.max_groups, cfg.max_alerts_per_group) == (10000, 1000)
    assert cfg.ownership.default_team == "sre"
    r = cfg.receivers[0]
    assert r.kind == "webhook"
    assert (r.timeout, r.outbox_size, r.rate_limit.rate, r.rate_limit.period) == (10.0, 1000, 10, 1.0)
    assert (r.retry.initial_interval, r.retry.max_interval, r.retry.max_elapsed_time) == (1.0, 30.0, 120.0)


def test_design_example_decodes() -> None:
    raw = {
        "ownership": {"catalog": ["configs/catalog/*.yaml"], "resource_attribute": "service.owner",
                      "default_team": "sre"},
        "group_by": ["team", "service", "span_name"],
        "group_wait": "10s",
        "repeat_interval": "4h",
        "resolve_timeout": "5m",
        "route": {"receiver": "default",
                  "routes": [{"matchers": ['team="payments"'], "receiver": "payments-pager"}]},
        "receivers": [
            {"name": "payments-pager", "pagerduty": {"routing_key": "KEY"}},
            {"name": "default", "webhook": {"url": "http://alerts.internal/hook"}},
            {"name": "by-team", "pagerduty": None},
            {"name": "chat", "slack": {"webhook_url": "https://hooks.slack.com/services/T/B/X", "channel": "#ops"},
             "rate_limit": {"rate": 1, "period": "1s"}, "retry": {"max_elapsed_time": "1m"}, "outbox_size": 5},
        ],
    }
    cfg = decode(Config, raw, PATH)
    assert cfg.route.routes[0].matchers == ('team="payments"',)
    assert cfg.receivers[0].pagerduty is not None and cfg.receivers[0].pagerduty.url == DEFAULT_PAGERDUTY_URL
    assert cfg.receivers[2].pagerduty is not None and cfg.receivers[2].pagerduty.routing_key == ""
    assert cfg.receivers[3].slack is not None and cfg.receivers[3].slack.channel == "#ops"


@pytest.mark.parametrize("raw", [{}, {"receivers": MINIMAL["receivers"]}, {"route": MINIMAL["route"]}])
def test_missing_sections_are_reported(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, raw, PATH)
    assert {i.path for i in info.value.issues} <= {f"{PATH}.route", f"{PATH}.receivers"}
    assert all("required" in i.message for i in info.value.issues)


def test_continue_key() -> None:
    cfg = decode(Config, {**MINIMAL, "route": {"receiver": "default", "routes": [
        {"matchers": ["team=a"], "continue": True}]}})
    assert cfg.route.routes[0].continue_ is True


@pytest.mark.parametrize(
    ("patch", "where", "words"),
    [
        ({"route": {"receiver": "nope"}}, "route.receiver", "unknown receiver 'nope'"),
        ({"route": {}}, "route.receiver", "required"),
        ({"route": {"receiver": "default", "routes": [{"receiver": "x"}]}}, "route.routes[0].receiver",
         "unknown receiver 'x'"),
        ({"route": {"receiver": "default", "routes": [{"routes": [{"matchers": ["team~x"]}]}]}},
         "route.routes[0].routes[0].matchers[0]", "invalid matcher"),
        ({"route": {"receiver": "default", "routes": [{"matchers": ['service=~"(unclosed"']}]}},
         "route.routes[0].matchers[0]", "does not compile"),
        ({"route": {"receiver": "default", "matchers": ["team=a"]}}, "route.matchers", "root route"),
        ({"route": {"receiver": "default", "continue": True}}, "route.continue", "root route"),
        ({"receivers": [{"name": "default"}]}, "receivers[0]", "exactly one of webhook, pagerduty, slack (has none)"),
        ({"receivers": [{"name": "default", "webhook": {"url": "http://a"}, "slack": {"webhook_url": "http://b"}}]},
         "receivers[0]", "has webhook, slack"),
        ({"receivers": [{"name": "default", "pagerduty": {"fallback_receiver": "ghost"}}]},
         "receivers[0].pagerduty.fallback_receiver", "unknown receiver 'ghost'"),
        ({"receivers": [{"name": "default", "pagerduty": {"fallback_receiver": "default"}}]},
         "receivers[0].pagerduty.fallback_receiver", "its own fallback"),
        ({"receivers": [{"name": "default", "webhook": {"url": "http://a"}},
                        {"name": "default", "webhook": {"url": "http://b"}}]}, "receivers[1].name", "already defined"),
        ({"receivers": [{"name": "default", "webhook": {}}]}, "receivers[0].webhook.url", "required"),
        ({"receivers": [{"name": "default", "webhook": {"url": "ftp://x"}}]}, "receivers[0].webhook.url", "http"),
        ({"receivers": [{"name": "default", "webhook": {"url": "http://x"}, "outbox_size": 0}]},
         "receivers[0].outbox_size", ">= 1"),
        ({"receivers": [{"name": "default", "webhook": {"url": "http://x"}, "rate_limit": {"rate": 0}}]},
         "receivers[0].rate_limit.rate", ">= 1"),
        ({"receivers": []}, "receivers", "must not be empty"),
        ({"trace_url": "https://grafana/{traceId}"}, "trace_url", "{trace_id}"),
        ({"group_interval": "0s"}, "group_interval", "> 0"),
        ({"max_groups": 0}, "max_groups", ">= 1"),
        ({"ownership": {"default_team": ""}}, "ownership.default_team", "must not be empty"),
        ({"bogus": 1}, "bogus", "unknown key"),
        ({"receivers": [{"name": "default", "webhook": {"url": "https://u:p@x/h", "headers": {"authorization": "t"}}}]},
         "receivers[0].webhook.headers.Authorization", "already carries credentials"),
        ({"receivers": [{"name": "default", "pagerduty": {"url": "http://pd.internal/v2/enqueue"}}]},
         "receivers[0].pagerduty.url", "an http:// URL sends the routing key in clear text"),
        ({"receivers": [{"name": "default", "slack": {"webhook_url": "http://hooks.example/services/T/B/X"}}]},
         "receivers[0].slack.webhook_url", "set insecure: true"),
    ],
)
def test_errors_name_the_key_path(patch: dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, {**MINIMAL, **patch}, PATH)
    matching = [i for i in info.value.issues if i.path == f"{PATH}.{where}"]
    assert matching, info.value
    assert any(words in i.message for i in matching), info.value


def test_http_pagerduty_and_slack_need_insecure() -> None:
    cfg = decode(Config, {**MINIMAL, "receivers": [
        {"name": "default", "pagerduty": {"url": "http://pd.internal/v2/enqueue", "insecure": True}},
        {"name": "chat", "slack": {"webhook_url": "http://hooks.example/services/T/B/X", "insecure": True}},
    ]})
    assert cfg.receivers[0].pagerduty is not None and cfg.receivers[0].pagerduty.insecure
    assert cfg.receivers[1].slack is not None and cfg.receivers[1].slack.insecure
    https = decode(Config, {**MINIMAL, "receivers": [{"name": "default", "pagerduty": {"routing_key": "K"}}]})
    assert https.receivers[0].pagerduty is not None and not https.receivers[0].pagerduty.insecure


def test_secrets_are_opaque_and_errors_do_not_echo_them() -> None:
    cfg = decode(Config, {**MINIMAL, "receivers": [
        {"name": "default", "pagerduty": {"routing_key": "PD-KEY-42"}},
        {"name": "chat", "slack": {"webhook_url": "https://hooks.slack.com/services/T1/B1/slack-token-77"}},
        {"name": "hook", "webhook": {"url": "https://bot:hook-pass@alerts.example/t/hook-token-88",
                                    "headers": {"X-Api-Key": "api-key-99"}}},
    ]})
    text = repr(cfg)
    for secret in ("PD-KEY-42", "slack-token-77", "hook-pass", "hook-token-88", "api-key-99"):
        assert secret not in text
    assert "https://hooks.slack.com/[REDACTED]" in text and "https://bot:[REDACTED]@alerts.example/[REDACTED]" in text
    with pytest.raises(ConfigError) as info:
        decode(Config, {**MINIMAL, "receivers": [
            {"name": "default", "slack": {"webhook_url": "http://hooks.slack.com/services/T1/B1/slack-token-77"}},
            {"name": "hook", "webhook": {"url": "ftp://bot:hook-pass@alerts.example/hook-token-88"}},
        ]}, PATH)
    text = str(info.value)
    assert f"{PATH}.receivers[0].slack.webhook_url" in text and f"{PATH}.receivers[1].webhook.url" in text
    for secret in ("slack-token-77", "hook-pass", "hook-token-88"):
        assert secret not in text
