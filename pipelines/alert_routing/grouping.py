"""Aggregation groups and their timers, after Alertmanager's dispatcher.

Every route that takes an alert puts it in the group keyed by the route and the alert's ``group_by``
label values. A group is flushed ``group_wait`` after it was created and then every ``group_interval``
(one scheduler task and a heap of deadlines serve every group, no task per group). A flush notifies
the route's receiver when

* it is the group's first flush, or alerts have joined since the last notification,
* alerts have resolved (no failure with their labels for ``resolve_timeout``; an alert resolves only
  after it was notified as firing, so every failure is paged once; a held alert, an objective's burn,
  resolves when it is released, and one released before it was ever notified is dropped unpaged), or
* the group still fires and ``repeat_interval`` has passed since the last notification.

Muting (``inhibit_rules``, silences) is decided at each flush: a firing alert that an inhibit rule or an
active silence covers is left out of the notification, and the decision above is taken on the alerts
left, so a muted alert is paged when its muting ends (at the group's next flush, if it still fires and
the receiver was not told of it) and a muted group sends nothing. Resolves are never muted: an alert
the receiver was told fires is always resolved. An alert never paged that goes quiet while muted (or
right after) is dropped without a page.

A group whose alerts have all resolved is removed after its resolved notification. Groups are bounded
by ``max_groups`` and alerts per group by ``max_alerts_per_group``; failures over the bounds are
counted in ``tracetriage_alert_overflow_total`` and dropped.

:meth:`GroupingEngine.add` runs on the span path: dictionary lookups and counters, no formatting, no
awaiting. The scheduler builds notifications and hands them to ``notify``, which must not block.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import operator
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from pipelines.alert_routing.alerts import LABEL_NAMES, Alert, Example, LabelValues, Notification, full_values
from pipelines.alert_routing.inhibit import Inhibitor
from pipelines.alert_routing.metrics import AlertMetrics
from pipelines.alert_routing.route import Route
from pipelines.alert_routing.silences import Silences

ROUTE_CACHE_SIZE = 4096
_LABELS = len(LABEL_NAMES)

NotifyFunc = Callable[["AggregationGroup", Notification], None]
GroupID = tuple[str, tuple[str, ...]]  # route key, group_by values
KeyFunc = Callable[[LabelValues], tuple[str, ...]]  # label values -> group_by values


class AggregationGroup:
    """The alerts one route holds for one set of ``group_by`` values."""

    __slots__ = (
        "alerts", "binding", "count", "dedup_key", "due", "gid", "group_labels", "key", "last_firing",
        "last_muted", "last_notified", "route", "unmuted_firing", "unmuted_notified",
    )

    def __init__(self, gid: GroupID, key: str, route: Route, group_labels: dict[str, str]) -> None:
        self.gid = gid
        self.key = key
        self.dedup_key = hashlib.sha256(key.encode()).hexdigest()
        self.route = route
        self.group_labels = group_labels
        self.alerts: dict[LabelValues, Alert] = {}
        self.count = 0  # failures since the group started
        self.due = 0.0  # monotonic time of the next flush
        self.last_notified: float | None = None
        self.last_firing: frozenset[str] = frozenset()  # fingerprints of the firing alerts last notified
        self.last_muted: frozenset[str] = frozenset()  # fingerprints muted at the last flush
        # What the group would have notified with no muting: counts the alerts muting held back.
        self.unmuted_notified: float | None = None
        self.unmuted_firing: frozenset[str] = frozenset()
        self.binding: object | None = None  # where the router sent the first firing notification

    def __repr__(self) -> str:
        return f"AggregationGroup({self.key!r}, alerts={len(self.alerts)}, count={self.count})"


class GroupingEngine:
    """Holds the groups, runs their timers and turns flushes into :class:`Notification` s."""

    def __init__(
        self,
        root: Route,
        notify: NotifyFunc,
        *,
        resolve_timeout: float,
        max_groups: int,
        max_alerts_per_group: int,
        trace_url: str,
        external_url: str,
        metrics: AlertMetrics,
        label: str,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        inhibitor: Inhibitor | None = None,
        silences: Silences | None = None,
    ) -> None:
        self._root = root
        self._notify = notify
        self._resolve_timeout = resolve_timeout
        self._max_groups = max_groups
        self._max_alerts = max_alerts_per_group
        self._trace_url = trace_url
        self._external_url = external_url
        self._label = label
        self._logger = logger
        self._clock = clock
        self._wall = wall_clock
        self._inhibitor = inhibitor
        self._silences = silences
        self._groups: dict[GroupID, AggregationGroup] = {}
        self._heap: list[tuple[float, int, AggregationGroup]] = []
        self._seq = itertools.count()
        self._route_cache: dict[LabelValues, tuple[tuple[Route, KeyFunc], ...]] = {}
        self._group_index: dict[str, tuple[int, ...]] = {}
        self._key_of: dict[str, KeyFunc] = {}
        for r in root.walk():
            idx = tuple(LABEL_NAMES.index(n) for n in r.group_by if n in LABEL_NAMES)
            self._group_index[r.key] = idx
            self._key_of[r.key] = _key_function(tuple(range(len(LABEL_NAMES))) if r.group_by_all else idx)
        self._failures_uncounted = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._m_groups: Gauge = metrics.groups.labels(label)
        self._m_failures: Counter = metrics.failures.labels(label)
        self._m_overflow_groups: Counter = metrics.overflow.labels(label, "max_groups")
        self._m_overflow_alerts: Counter = metrics.overflow.labels(label, "max_alerts_per_group")
        self._m_suppressed: dict[str, Counter] = {
            reason: metrics.suppressed.labels(label, reason) for reason in ("inhibited", "silenced")
        }
        self._m_groups.set(0)

    @property
    def groups(self) -> list[AggregationGroup]:
        return list(self._groups.values())

    def snapshot(self, limit: int) -> dict[str, Any]:
        """For the status page: how many groups are open, alerts, firing, muted, and the ``limit`` groups with
        the most failures, each with its team, receiver, last page, next repeat and when it resolves if quiet
        (seconds from now; None where it does not apply). One pass over the groups, no per-alert formatting
        except for the groups shown."""
        now = self._clock()
        groups = self._groups.values()
        shown = heapq.nlargest(limit, groups, key=operator.attrgetter("count")) if limit > 0 else []
        rows = []
        for g in shown:
            timing = g.route.timing
            held = any(a.held for a in g.alerts.values())
            quiet = [a.last_seen for a in g.alerts.values() if not a.held]
            first = next(iter(g.alerts.values()), None)
            labels = first.labels if first is not None else {}
            rows.append({
                "group": g.key, "team": g.group_labels.get("team") or labels.get("team", ""),
                "service": g.group_labels.get("service") or labels.get("service", ""),
                "slo": labels.get("slo", ""), "receiver": g.route.receiver, "alerts": len(g.alerts),
                "failures": g.count, "muted": len(g.last_muted),
                "last_page_ago": None if g.last_notified is None else now - g.last_notified,
                "next_repeat_in": (g.last_notified + timing.repeat_interval - now)
                if g.last_notified is not None and g.last_firing else None,
                "next_flush_in": g.due - now,
                "resolves_in": None if held or not quiet else max(quiet) + self._resolve_timeout - now,
                "held": held,
            })
        return {
            "open_groups": len(self._groups), "max_groups": self._max_groups,
            "alerts": sum(len(g.alerts) for g in groups),
            "paged_groups": sum(1 for g in groups if g.last_firing),
            "muted_alerts": sum(len(g.last_muted) for g in groups),
            "inhibit_rules": [str(r) for r in self._inhibitor.rules] if self._inhibitor is not None else [],
            "groups": rows,
        }

    # -- span path -----------------------------------------------------------------------------------

    def add(self, values: LabelValues, failure: Example, held: bool = False) -> list[str]:
        """Count one failure (or an objective's burn, ``held``) with these label values into every group its
        routes give it; the keys of those groups."""
        keys: list[str] = []
        if self._closed:
            return keys
        if len(values) != _LABELS:
            values = full_values(values)
        self._failures_uncounted += 1
        routes = self._route_cache.get(values)
        if routes is None:
            routes = self._routes_for(values)
        now = self._clock()
        for route, key_of in routes:
            gid = (route.key, key_of(values))
            group = self._groups.get(gid)
            if group is None:
                if len(self._groups) >= self._max_groups:
                    self._m_overflow_groups.inc()
                    continue
                group = self._new_group(route, gid, now)
            alert = group.alerts.get(values)
            if alert is None:
                if len(group.alerts) >= self._max_alerts:
                    self._m_overflow_alerts.inc()
                    continue
                alert = group.alerts[values] = Alert(values, failure, now, self._wall(), held)
                if self._inhibitor is not None:
                    self._inhibitor.track(alert)
            else:
                alert.seen(failure, now)
            group.count += 1
            keys.append(group.key)
        return keys

    def release(self, values: LabelValues) -> None:
        """The held alert with these label values is over: it resolves at its groups' next flush."""
        values = full_values(values)
        routes = self._route_cache.get(values) or self._routes_for(values)
        now = self._clock()
        for route, key_of in routes:
            group = self._groups.get((route.key, key_of(values)))
            alert = group.alerts.get(values) if group is not None else None
            if alert is not None:
                alert.release(now)

    def count_failures(self) -> None:
        """Publish the failures taken in since the last call (the metric moves per batch, not per failure)."""
        if self._failures_uncounted:
            self._m_failures.inc(self._failures_uncounted)
            self._failures_uncounted = 0

    def _routes_for(self, values: LabelValues) -> tuple[tuple[Route, KeyFunc], ...]:
        labels = dict(zip(LABEL_NAMES, values, strict=True))
        routes = tuple((r, self._key_of[r.key]) for r in self._root.match(labels))
        if len(self._route_cache) >= ROUTE_CACHE_SIZE:
            self._route_cache.clear()
        self._route_cache[values] = routes
        return routes

    def _new_group(self, route: Route, gid: GroupID, now: float) -> AggregationGroup:
        if route.group_by_all:
            names: tuple[str, ...] = LABEL_NAMES
        else:
            names = tuple(LABEL_NAMES[i] for i in self._group_index[route.key])
        glabels = {k: v for k, v in zip(names, gid[1], strict=True) if v}
        label_text = ",".join(f'{k}="{v}"' for k, v in sorted(glabels.items()))
        group = AggregationGroup(gid, f"{route.key}:{{{label_text}}}", route, glabels)
        self._groups[gid] = group
        self._m_groups.set(len(self._groups))
        self._schedule(group, now + route.timing.group_wait)
        return group

    def _schedule(self, group: AggregationGroup, due: float) -> None:
        group.due = due
        heapq.heappush(self._heap, (due, next(self._seq), group))
        if self._heap[0][2] is group:
            self._wake.set()

    # -- scheduler -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"alert_routing-groups {self._label}")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def _run(self) -> None:
        while True:
            now = self._clock()
            self.flush_due(now)
            self._wake.clear()
            timeout = (self._heap[0][0] - now) if self._heap else None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def flush_due(self, now: float) -> int:
        """Flush every group whose time has come; returns how many were flushed."""
        flushed = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, group = heapq.heappop(heap)
            if due != group.due or self._groups.get(group.gid) is not group:
                continue  # stale entry
            flushed += 1
            try:
                self.flush(group, now)
            except Exception:
                # A bug in building or routing one group's notification must not stop every other group.
                self._logger.exception("alert_routing %s: flushing group %s failed; the group is dropped",
                                       self._label, group.key)
                self._remove(group)
        return flushed

    def flush(self, group: AggregationGroup, now: float) -> Notification | None:
        """One tick of ``group``: resolve stale alerts, leave muted ones out, notify if due, reschedule or
        remove the group."""
        timing = group.route.timing
        wall = self._wall()
        muting = self._inhibitor is not None or self._silences is not None
        firing: list[Alert] = []
        resolved: list[Alert] = []
        muted: list[tuple[Alert, str]] = []
        dropped: list[Alert] = []
        for alert in group.alerts.values():
            if alert.held:  # an objective's burn: fires until released
                if alert.released is None:
                    stale_since, stale = now, False
                else:
                    stale_since, stale = alert.released, alert.released <= now
            else:
                stale_since = alert.last_seen + self._resolve_timeout
                stale = stale_since <= now
            if stale and alert.fingerprint in group.last_firing:
                alert.ends_at = wall - (now - stale_since)
                resolved.append(alert)  # never muted: the receiver was told it fires
                continue
            reason = self._muted_by(alert, now, wall) if muting else None
            if reason is not None:
                if stale:
                    dropped.append(alert)  # never paged, quiet now
                else:
                    muted.append((alert, reason))
            elif stale and (alert.held or alert.fingerprint in group.last_muted):
                dropped.append(alert)  # over (or failed while muted and quiet since) before it was paged
            else:
                firing.append(alert)
        firing_fps = frozenset(a.fingerprint for a in firing)
        repeat = timing.repeat_interval
        notify = _due(group.last_notified, group.last_firing, firing_fps, bool(resolved), now, repeat)
        muted_fps = frozenset(a.fingerprint for a, _ in muted)
        if muting:
            self._count_muted(group, firing_fps | muted_fps, muted, bool(resolved), now, repeat)
            group.last_muted = muted_fps
        notification = None
        if notify and (firing or resolved):
            notification = self._notification(group, firing, resolved)
            group.last_notified = now
            # Muted alerts the receiver was told fire stay open there while the group fires (they resolve
            # as usual later); a resolved notification closes the group at the receiver.
            group.last_firing = (firing_fps | (muted_fps & group.last_firing)) if firing else frozenset()
            self._notify(group, notification)
        for alert in (*resolved, *dropped):
            del group.alerts[alert.values]
            if self._inhibitor is not None:
                self._inhibitor.forget(alert)
        if group.alerts:
            self._schedule(group, now + timing.group_interval)
        else:
            self._remove(group)
        return notification

    def _muted_by(self, alert: Alert, now: float, wall: float) -> str | None:
        """Why ``alert`` is muted now (``inhibited`` is checked first, as in Alertmanager), else None."""
        labels = alert.labels
        if self._inhibitor is not None and self._inhibitor.inhibiting(labels, now) is not None:
            return "inhibited"
        if self._silences is not None and self._silences.silencing(labels, wall) is not None:
            return "silenced"
        return None

    def _count_muted(self, group: AggregationGroup, unmuted_fps: frozenset[str], muted: list[tuple[Alert, str]],
                     any_resolved: bool, now: float, repeat: float) -> None:
        """Count the muted alerts a notification would have carried with no muting: once when first held
        back, again each repeat_interval they stay muted and firing (not at every flush)."""
        if not _due(group.unmuted_notified, group.unmuted_firing, unmuted_fps, any_resolved, now, repeat):
            return
        if not (unmuted_fps or any_resolved):
            return
        group.unmuted_notified = now
        group.unmuted_firing = unmuted_fps
        for _, reason in muted:
            self._m_suppressed[reason].inc()

    def _notification(self, group: AggregationGroup, firing: list[Alert], resolved: list[Alert]) -> Notification:
        firing.sort(key=lambda a: (-a.count, a.starts_at))
        resolved.sort(key=lambda a: (-a.count, a.starts_at))
        url = self._trace_url
        return Notification(
            receiver=group.route.receiver,
            group_key=group.key,
            dedup_key=group.dedup_key,
            group_labels=dict(group.group_labels),
            status="firing" if firing else "resolved",
            alerts=tuple(a.snapshot(url) for a in firing) + tuple(a.snapshot(url) for a in resolved),
            count=group.count,
            external_url=self._external_url,
        )

    def _remove(self, group: AggregationGroup) -> None:
        if self._groups.get(group.gid) is group:
            del self._groups[group.gid]
        self._m_groups.set(len(self._groups))

    # -- shutdown ------------------------------------------------------------------------------------

    async def close(self) -> tuple[int, int]:
        """Stop the scheduler and take no more failures; flush the groups whose alerts were never notified
        (a page waiting out its group_wait is sent now rather than lost). Returns (flushed, discarded):
        the groups flushed now, and the groups still firing whose next notification will not happen."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        now = self._clock()
        flushed = discarded = 0
        for group in list(self._groups.values()):
            if any(a.fingerprint not in group.last_firing for a in group.alerts.values()):
                try:
                    self.flush(group, now)
                except Exception:
                    self._logger.exception("alert_routing %s: flushing group %s at shutdown failed",
                                           self._label, group.key)
                flushed += 1
            elif group.alerts:
                discarded += 1
        self._groups.clear()
        self._heap.clear()
        if self._inhibitor is not None:
            self._inhibitor.clear()
        self._m_groups.set(0)
        return flushed, discarded


def _due(last_notified: float | None, last_firing: frozenset[str], firing: frozenset[str], any_resolved: bool,
         now: float, repeat_interval: float) -> bool:
    """Whether a group notifies: first flush, alerts resolved, new firing alerts, or the repeat is due."""
    return (
        last_notified is None
        or any_resolved
        or not firing <= last_firing
        or (bool(firing) and now - last_notified >= repeat_interval)
    )


def _key_function(indices: tuple[int, ...]) -> KeyFunc:
    """A fast ``values -> tuple(values[i] for i in indices)``."""
    if not indices:
        return lambda _values: ()
    if len(indices) == 1:
        i = indices[0]
        return lambda values: (values[i],)
    getter = operator.itemgetter(*indices)
    return getter  # itemgetter of 2+ indices returns a tuple
