"""Inhibition rules (``inhibit_rules``), with Alertmanager's semantics.

A rule mutes a *target* alert while a *source* alert fires:

* the target matches every ``target_matchers`` and the source every ``source_matchers`` (the matcher
  syntax of the route tree: a label an alert does not carry matches as the empty string);
* the two have equal values for every label named in ``equal``; a label missing on both (or missing
  on one and empty on the other) counts as equal, as in Alertmanager;
* the source fires: the engine holds it and it has failed within ``resolve_timeout``. Whether the source
  is itself silenced, inhibited or already notified does not matter (as in Alertmanager);
* an alert that matches both sides of a rule is not muted by sources that also match both sides (itself
  included): only a source that is not also a target of that rule can mute it.

Sources are indexed by rule and by their ``equal`` values when the engine creates an alert (once per
label set and group, not per failure) and dropped when the engine lets the alert go, so a check at flush
time looks at the few sources with the target's ``equal`` values, not at every alert held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from pipelines.alert_routing.matchers import Matcher, parse_matcher

if TYPE_CHECKING:
    from pipelines.alert_routing.config import InhibitRuleConfig

EqualKey = tuple[str, ...]


class Source(Protocol):
    """What the inhibitor needs of an alert (:class:`~pipelines.alert_routing.alerts.Alert` is one)."""

    last_seen: float  # monotonic time of its latest failure
    ends_at: float | None  # set once resolved

    @property
    def labels(self) -> Mapping[str, str]: ...


class InhibitRule:
    """One rule, with its index of the source alerts it currently knows."""

    __slots__ = ("equal", "name", "source", "sources", "target")

    def __init__(self, source: Iterable[Matcher], target: Iterable[Matcher], equal: Iterable[str],
                 name: str = "") -> None:
        self.name = name
        self.source = tuple(source)
        self.target = tuple(target)
        self.equal = tuple(dict.fromkeys(equal))
        # equal values -> source alert -> whether that source also matches the target side
        self.sources: dict[EqualKey, dict[Source, bool]] = {}

    @classmethod
    def from_config(cls, config: InhibitRuleConfig) -> InhibitRule:
        """From a validated config (its matchers parse)."""
        return cls([parse_matcher(t) for t in config.source_matchers],
                   [parse_matcher(t) for t in config.target_matchers], config.equal, config.name)

    def matches_source(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.source)

    def matches_target(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.target)

    def key(self, labels: Mapping[str, str]) -> EqualKey:
        return tuple(labels.get(name, "") for name in self.equal)

    def __str__(self) -> str:
        src = ",".join(str(m) for m in self.source)
        tgt = ",".join(str(m) for m in self.target)
        text = f"{{{src}}} inhibits {{{tgt}}} on equal [{','.join(self.equal)}]"
        return f"{self.name}: {text}" if self.name else text

    def __repr__(self) -> str:
        return f"InhibitRule({self})"


class Inhibitor:
    """Decides whether an alert is inhibited. Used from the engine's scheduler task only (no locking)."""

    __slots__ = ("_resolve_timeout", "_rules", "_where")

    def __init__(self, rules: Iterable[InhibitRule], resolve_timeout: float) -> None:
        self._rules = tuple(rules)
        self._resolve_timeout = resolve_timeout
        self._where: dict[Source, list[tuple[InhibitRule, EqualKey]]] = {}  # where each source is indexed

    @classmethod
    def from_config(cls, configs: Iterable[InhibitRuleConfig], resolve_timeout: float) -> Inhibitor:
        return cls([InhibitRule.from_config(c) for c in configs], resolve_timeout)

    @property
    def rules(self) -> tuple[InhibitRule, ...]:
        return self._rules

    def __len__(self) -> int:
        """How many alerts are indexed as sources of at least one rule."""
        return len(self._where)

    def track(self, alert: Source) -> None:
        """Index a new alert under every rule whose source side it matches."""
        if alert in self._where:
            return
        labels = alert.labels
        places: list[tuple[InhibitRule, EqualKey]] = []
        for rule in self._rules:
            if rule.matches_source(labels):
                key = rule.key(labels)
                rule.sources.setdefault(key, {})[alert] = rule.matches_target(labels)
                places.append((rule, key))
        if places:
            self._where[alert] = places

    def forget(self, alert: Source) -> None:
        """Drop an alert the engine no longer holds."""
        for rule, key in self._where.pop(alert, ()):
            bucket = rule.sources.get(key)
            if bucket is not None:
                bucket.pop(alert, None)
                if not bucket:
                    del rule.sources[key]

    def clear(self) -> None:
        for rule in self._rules:
            rule.sources.clear()
        self._where.clear()

    def inhibiting(self, labels: Mapping[str, str], now: float) -> InhibitRule | None:
        """The first rule under which a firing source mutes an alert with ``labels`` at ``now`` (monotonic),
        else None."""
        timeout = self._resolve_timeout
        for rule in self._rules:
            if not rule.sources or not rule.matches_target(labels):
                continue
            bucket = rule.sources.get(rule.key(labels))
            if not bucket:
                continue
            both_sides = rule.matches_source(labels)
            for source, source_both_sides in bucket.items():
                if both_sides and source_both_sides:
                    continue  # an alert on both sides is not muted by another such alert, nor by itself
                if source.ends_at is None and source.last_seen + timeout > now:
                    return rule
        return None
