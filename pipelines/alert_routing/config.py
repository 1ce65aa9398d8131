"""Config of the ``alert_routing`` processor.

```yaml
alert_routing:
  ownership: ownership       # an ownership extension's id; or inline: {catalog: [...], default_team: sre}
  group_by: [team, service, span_name]
  group_wait: 10s
  group_interval: 5m
  repeat_interval: 4h
  resolve_timeout: 5m
  trace_url: "https://grafana.example/explore?traceId={trace_id}"
  route:
    receiver: default
    routes:
      - {matchers: ['team="payments"'], receiver: payments-pager}
  receivers:
    - {name: payments-pager, pagerduty: {routing_key: "${env:PD_PAYMENTS_KEY}"}}
    - {name: default, webhook: {url: "http://alerts.internal/hook"}, auth: {authenticator: bearertokenauth/alerts}}
  trigger: root_cause       # what pages: root_cause (every failure), slo (burning objectives), both,
                            # trace_tests (failing trace tests), or a list of root_cause, slo, trace_tests
  slo: slo                  # with trigger slo or both: the slo processor whose burns page
  inhibit_rules:
    - {source_matchers: ['service="postgres"'], target_matchers: ['service!="postgres"'], equal: [team]}
  silences: {file: configs/silences.yaml, reload_interval: 30s}
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from collector.auth import AuthConfig, auth_ref
from collector.component import ExtensionRef
from collector.config import NO_SECRET, Duration, Opaque, SecretPathURL, SecretURL, field
from collector.config.opaque import has_userinfo
from collector.exporters.circuit_breaker import CircuitBreakerConfig
from collector.exporters.helper import RetryConfig
from pipelines.alert_routing.matchers import MatcherError, parse_matcher
from pipelines.alert_routing.silences import SilencesError, read_silences
from pipelines.ownership import OwnershipConfig, OwnershipSetting, ownership_refs

DEFAULT_PAGERDUTY_URL = SecretURL("https://events.pagerduty.com/v2/enqueue")
DEFAULT_GROUP_BY = ("team", "service", "span_name")
RECEIVER_KINDS = ("webhook", "pagerduty", "slack")
_LABEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class NotifierRetryConfig(RetryConfig):
    """``retry``: backoff for 429, 5xx, timeouts and connection errors (a server's Retry-After wins when
    longer); a notification is given up (``status="failed"``) after ``max_elapsed_time`` (0: never)."""

    initial_interval: Duration = field(Duration(1.0), ge=0)
    max_interval: Duration = field(Duration(30.0), ge=0)
    max_elapsed_time: Duration = field(Duration(120.0), ge=0)


@dataclass(frozen=True)
class RateLimitConfig:
    """``rate_limit``: at most ``rate`` requests per ``period`` to one receiver."""

    rate: int = field(10, ge=1)
    period: Duration = field(Duration(1.0), gt=0)


@dataclass(frozen=True)
class WebhookConfig:
    """Alertmanager webhook v4 JSON POSTed to ``url``; ``max_alerts`` (0: all) truncates ``alerts``.
    The URL prints with its password and path redacted, the header values as ``[REDACTED]``."""

    url: SecretPathURL = field(min_len=1)
    max_alerts: int = field(0, ge=0)
    headers: dict[str, Opaque] = field(default_factory=dict)

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _url_issues("url", self.url)
        if has_userinfo(self.url.reveal()) and any(k.lower() == "authorization" for k in self.headers):
            yield "headers.Authorization", "the url already carries credentials (user:password@): give one or the other"


@dataclass(frozen=True)
class PagerDutyConfig:
    """Events API v2. Without ``routing_key`` each alert's team is paged with the team's key from the
    ownership catalog; a team without one goes to ``fallback_receiver`` (or is counted undeliverable)."""

    routing_key: Opaque = NO_SECRET
    url: SecretURL = DEFAULT_PAGERDUTY_URL
    fallback_receiver: str = ""
    client: str = "tracetriage"
    insecure: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _url_issues("url", self.url, self.insecure, "the routing key")


@dataclass(frozen=True)
class SlackConfig:
    """Slack incoming webhook; ``channel`` overrides the webhook's default channel when set."""

    webhook_url: SecretPathURL = field(min_len=1)
    channel: str = ""
    insecure: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _url_issues("webhook_url", self.webhook_url, self.insecure, "the webhook's token")


@dataclass(frozen=True)
class ReceiverConfig:
    """A named destination: exactly one of ``webhook``, ``pagerduty``, ``slack``, plus delivery settings."""

    name: str = field(min_len=1)
    webhook: WebhookConfig | None = None
    pagerduty: PagerDutyConfig | None = field(None, present_enables=True)
    slack: SlackConfig | None = None
    timeout: Duration = field(Duration(10.0), gt=0)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    retry: NotifierRetryConfig = field(default_factory=NotifierRetryConfig)
    outbox_size: int = field(1000, ge=1)
    auth: AuthConfig | None = None  # an authenticator extension whose credentials every request carries
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)

    @property
    def kind(self) -> str:
        return next((k for k in RECEIVER_KINDS if getattr(self, k) is not None), "")

    def validate(self) -> Iterator[tuple[str, str]]:
        given = [k for k in RECEIVER_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            has = ", ".join(given) if given else "none"
            yield "", f"receiver {self.name!r} needs exactly one of webhook, pagerduty, slack (has {has})"


@dataclass(frozen=True)
class RouteConfig:
    """A node of the route tree; unset settings are inherited from the parent (the root: from the
    processor's top-level settings)."""

    receiver: str = ""
    group_by: tuple[str, ...] | None = None
    group_wait: Duration | None = field(None, ge=0)
    group_interval: Duration | None = field(None, gt=0)
    repeat_interval: Duration | None = field(None, gt=0)
    matchers: tuple[str, ...] = ()
    continue_: bool = field(False, alias="continue")
    routes: tuple[RouteConfig, ...] = ()


@dataclass(frozen=True)
class InhibitRuleConfig:
    """An Alertmanager inhibit rule: while an alert matching ``source_matchers`` fires, alerts matching
    ``target_matchers`` with the same values of the ``equal`` labels are not notified (see inhibit.py)."""

    source_matchers: tuple[str, ...] = ()
    target_matchers: tuple[str, ...] = ()
    equal: tuple[str, ...] = ()
    name: str = ""

    def validate(self) -> Iterator[tuple[str, str]]:
        for side in ("source_matchers", "target_matchers"):
            for j, text in enumerate(getattr(self, side)):
                try:
                    parse_matcher(text)
                except MatcherError as e:
                    yield f"{side}[{j}]", str(e)
        for j, name in enumerate(self.equal):
            if not _LABEL_NAME_RE.match(name):
                yield f"equal[{j}]", f"must be a label name ([A-Za-z_][A-Za-z0-9_]*), got {name!r}"


@dataclass(frozen=True)
class SilencesConfig:
    """Silences in a YAML file (see silences.py for its format), checked for changes every
    ``reload_interval`` (0: read once at start). No ``file``: no silences."""

    file: str = ""
    reload_interval: Duration = field(Duration(30.0), ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.file or not os.path.isfile(self.file):
            return  # a file that does not exist yet is allowed: no silences until it appears
        try:
            read_silences(self.file)
        except SilencesError as e:
            for where, message in e.problems:
                yield "file", f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}"
        except OSError as e:
            yield "file", f"cannot read {self.file}: {e}"


@dataclass(frozen=True)
class Config:
    """``alert_routing`` processor settings (see the module docstring, and
    docs/components/processors/alert_routing.md for every key)."""

    route: RouteConfig
    receivers: tuple[ReceiverConfig, ...] = field(min_len=1)
    decision_wait: Duration = field(Duration(10.0), gt=0)
    ownership: OwnershipSetting = field(default_factory=OwnershipConfig)  # an extension id, or inline
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    group_wait: Duration = field(Duration(10.0), ge=0)
    group_interval: Duration = field(Duration(300.0), gt=0)
    repeat_interval: Duration = field(Duration(4 * 3600.0), gt=0)
    resolve_timeout: Duration = field(Duration(300.0), gt=0)
    severity: str = field("page", min_len=1)
    trace_url: str = ""
    external_url: str = ""
    max_groups: int = field(10000, ge=1)
    max_alerts_per_group: int = field(1000, ge=1)
    shutdown_timeout: Duration = field(Duration(5.0), ge=0)
    trigger: Literal["root_cause", "slo", "both", "trace_tests"] | tuple[Literal["root_cause", "slo", "trace_tests"],
                                                                           ...] = "root_cause"
    slo: str = "slo"
    inhibit_rules: tuple[InhibitRuleConfig, ...] = ()
    silences: SilencesConfig = field(default_factory=SilencesConfig)

    def extension_refs(self) -> list[ExtensionRef]:
        refs = ownership_refs("ownership", self.ownership)
        for i, r in enumerate(self.receivers):
            refs += auth_ref(f"receivers[{i}].auth", r.auth)
        return refs

    @property
    def triggers(self) -> frozenset[str]:
        """What pages, as a set of root_cause, slo, trace_tests (``both``: root_cause and slo)."""
        if isinstance(self.trigger, tuple):
            return frozenset(self.trigger)
        return frozenset(("root_cause", "slo")) if self.trigger == "both" else frozenset((self.trigger,))

    def validate(self) -> Iterator[tuple[str, str]]:
        if isinstance(self.trigger, tuple) and not self.trigger:
            yield "trigger", "must name at least one of root_cause, slo, trace_tests"
        if "slo" in self.triggers:
            from collector.component import ComponentID

            try:
                if ComponentID.parse(self.slo).type != "slo":
                    yield "slo", f"must name an slo processor (slo or slo/<name>), got {self.slo!r}"
            except ValueError as e:
                yield "slo", str(e)
        if getattr(self, "route", None) is None or getattr(self, "receivers", None) is None:
            return  # missing: the decoder has reported it
        if self.trace_url:
            try:
                self.trace_url.format(trace_id="0" * 32)
            except (KeyError, IndexError, ValueError) as e:
                yield "trace_url", f"must be a template whose only placeholder is {{trace_id}} ({e!r})"
        names: dict[str, int] = {}
        for i, r in enumerate(self.receivers):
            if r.name in names:
                yield f"receivers[{i}].name", f"receiver {r.name!r} is already defined at receivers[{names[r.name]}]"
            else:
                names[r.name] = i
        defined = ", ".join(sorted(names)) or "none"
        for i, r in enumerate(self.receivers):
            fb = r.pagerduty.fallback_receiver if r.pagerduty is not None else ""
            if not fb:
                continue
            where = f"receivers[{i}].pagerduty.fallback_receiver"
            if fb == r.name:
                yield where, f"receiver {r.name!r} cannot be its own fallback"
            elif fb not in names:
                yield where, f"unknown receiver {fb!r} (defined: {defined})"
        if not self.route.receiver:
            yield "route.receiver", "is required on the root route"
        if self.route.matchers:
            yield "route.matchers", "the root route matches every alert and must not have matchers"
        if self.route.continue_:
            yield "route.continue", "cannot be set on the root route"
        stack: list[tuple[str, RouteConfig]] = [("route", self.route)]
        while stack:
            path, rc = stack.pop()
            if rc.receiver and rc.receiver not in names:
                yield f"{path}.receiver", f"unknown receiver {rc.receiver!r} (defined: {defined})"
            for j, text in enumerate(rc.matchers):
                try:
                    parse_matcher(text)
                except MatcherError as e:
                    yield f"{path}.matchers[{j}]", str(e)
            stack.extend((f"{path}.routes[{k}]", child) for k, child in enumerate(rc.routes))


def _url_issues(key: str, url: SecretURL, insecure: bool = True, secret: str = "") -> Iterator[tuple[str, str]]:
    """An http(s) URL; without ``insecure: true`` only https (``secret`` names what http would expose).
    The URL is quoted redacted: a config error is printed and logged."""
    if not url:
        return
    if url.scheme not in ("http", "https"):
        yield key, f"must be an http:// or https:// URL, got {url!r}"
    elif url.scheme == "http" and not insecure:
        yield key, (f"an http:// URL sends {secret} in clear text: use https://, or set insecure: true on this "
                    f"receiver to allow it (got {url!r})")
