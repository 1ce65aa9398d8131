"""Silences from a YAML file (``silences: {file, reload_interval}``), with Alertmanager's fields.

The file is a list of silences::

    - id: db-maintenance                 # optional; when absent one is derived from the content
      matchers: ['team="payments"', 'service=~"postgres.*"']
      starts_at: 2025-06-01T22:00:00Z    # RFC 3339 with a time zone
      ends_at: 2025-06-02T02:00:00+02:00
      created_by: alice
      comment: failover drill, CHG-1234

A silence is **active** while ``starts_at <= now < ends_at``, **pending** before, **expired** after. An
alert matched by every matcher of an active silence is not notified. Checks as Alertmanager's API:
at least one matcher, at least one that does not match the empty string (a silence must not mute
everything), both times with a zone, ``ends_at`` not before ``starts_at``, ``created_by`` and ``comment``
given; explicit ids unique. An empty file holds no silences.

The file is checked every ``reload_interval`` (mtime, size, inode; as the ownership catalog) in a worker
thread and parsed again when it changed. A file that is invalid, unreadable or gone at a reload is logged
(once per change) and counted, and the silences last loaded stay in force. At start an invalid file is
refused; a missing one is not (no silences until it appears).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import yaml
from prometheus_client import Counter

from collector.config import Decoder, field
from collector.errors import TraceTriageError
from pipelines.alert_routing.matchers import Matcher, MatcherError, parse_matcher
from pipelines.alert_routing.metrics import AlertMetrics

MAX_FILE_BYTES = 4 * 1024 * 1024  # a silences file larger than this is refused, not read

State = Literal["active", "pending", "expired"]
STATES: tuple[State, ...] = ("active", "pending", "expired")

_RFC3339_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


class _Loader(yaml.SafeLoader):
    """Safe YAML that keeps timestamps as the text written, so they are checked (and quoted) as given."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class SilencesError(TraceTriageError, ValueError):
    """A silences file that cannot be used; ``problems`` are ``(field path, message)`` pairs."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        text = "; ".join(f"{where}: {message}" if where else message for where, message in problems)
        super().__init__(f"silences file {file}: {text}")


@dataclass(frozen=True)
class SilenceSpec:
    """One entry of the file, as written (decoded with the config decoder: unknown keys are errors)."""

    matchers: tuple[str, ...] = field(min_len=1)
    starts_at: str = field(min_len=1)
    ends_at: str = field(min_len=1)
    created_by: str = field(min_len=1)
    comment: str = field(min_len=1)
    id: str = ""

    def validate(self) -> Iterator[tuple[str, str]]:
        parsed: list[Matcher] = []
        for i, text in enumerate(self.matchers or ()):  # None when missing (reported by the decoder)
            try:
                parsed.append(parse_matcher(text))
            except MatcherError as e:
                yield f"matchers[{i}]", str(e)
        if parsed and len(parsed) == len(self.matchers or ()) and all(m.matches({}) for m in parsed):
            yield "matchers", ("at least one matcher must not match the empty string (this silence would mute "
                               "every alert)")
        times: dict[str, float] = {}
        for key in ("starts_at", "ends_at"):
            text = getattr(self, key)
            if not isinstance(text, str) or not text:
                continue  # reported as empty by the decoder
            try:
                times[key] = parse_time(text)
            except ValueError as e:
                yield key, str(e)
        if len(times) == 2 and times["ends_at"] < times["starts_at"]:
            yield "ends_at", f"must not be before starts_at ({self.ends_at} < {self.starts_at})"


def parse_time(text: str) -> float:
    """RFC 3339 (``2025-06-01T22:00:00Z``, ``...+02:00``, fractions allowed) -> unix seconds."""
    m = _RFC3339_RE.match(text.strip())
    if m is None:
        raise ValueError(f"must be an RFC 3339 time with a zone, e.g. 2025-06-01T22:00:00Z, got {text!r}")
    date, clock, fraction, zone = m.groups()
    fraction = (fraction or "")[:7]  # datetime takes microseconds; Alertmanager's nanoseconds are cut
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{date}T{clock}{fraction}{zone}").timestamp()
    except ValueError as e:
        raise ValueError(f"invalid time {text!r}: {e}") from None


class Silence:
    """One silence as used for matching (immutable once built)."""

    __slots__ = ("comment", "created_by", "ends_at", "id", "matchers", "starts_at")

    def __init__(self, id: str, matchers: tuple[Matcher, ...], starts_at: float, ends_at: float,
                 created_by: str, comment: str) -> None:
        self.id = id
        self.matchers = matchers
        self.starts_at = starts_at  # unix seconds
        self.ends_at = ends_at
        self.created_by = created_by
        self.comment = comment

    def state(self, wall: float) -> State:
        if wall < self.starts_at:
            return "pending"
        if wall >= self.ends_at:
            return "expired"
        return "active"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def __repr__(self) -> str:
        return f"Silence({self.id!r}, {{{','.join(str(m) for m in self.matchers)}}}, by {self.created_by!r})"


def parse_silences(text: str, file: str) -> tuple[Silence, ...]:
    """The silences in ``text`` (the content of ``file``); raises :class:`SilencesError` naming every
    problem by its field path (``[2].ends_at``)."""
    try:
        data: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.YAMLError as e:
        raise SilencesError(file, [("", f"not valid YAML: {e}")]) from None
    if data is not None and not isinstance(data, list):
        kind = "a mapping" if isinstance(data, dict) else type(data).__name__
        raise SilencesError(file, [("", f"must be a list of silences, got {kind}")])
    decoder = Decoder()
    specs: tuple[SilenceSpec, ...] = decoder.decode(tuple[SilenceSpec, ...], data, "")
    problems = [(issue.path, issue.message) for issue in decoder.issues]
    ids: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if not spec.id:
            continue
        if spec.id in ids:
            problems.append((f"[{i}].id", f"id {spec.id!r} is already used by [{ids[spec.id]}]"))
        else:
            ids[spec.id] = i
    if problems:
        raise SilencesError(file, problems)
    return tuple(_build(spec) for spec in specs)


def read_silences(file: str) -> tuple[Silence, ...]:
    """Read and parse ``file``; raises ``OSError`` (unreadable, too large) or :class:`SilencesError`."""
    with open(file, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"{file}: larger than {MAX_FILE_BYTES} bytes, not read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SilencesError(file, [("", f"not UTF-8 text ({e})")]) from None
    return parse_silences(text, file)


def _build(spec: SilenceSpec) -> Silence:
    sid = spec.id or _derived_id(spec)
    return Silence(sid, tuple(parse_matcher(t) for t in spec.matchers), parse_time(spec.starts_at),
                   parse_time(spec.ends_at), spec.created_by, spec.comment)


def _derived_id(spec: SilenceSpec) -> str:
    h = hashlib.sha256()
    for part in (*spec.matchers, spec.starts_at, spec.ends_at, spec.created_by, spec.comment):
        h.update(part.encode())
        h.update(b"\xff")
    return h.hexdigest()[:12]


class Silences:
    """The silences of one ``alert_routing`` processor: loaded from its file, reloaded when it changes.

    :meth:`silencing` is called from the engine's scheduler; reloads swap one tuple, so a reader never sees
    a half-loaded file.
    """

    def __init__(
        self,
        file: str,
        reload_interval: float,
        *,
        metrics: AlertMetrics,
        label: str,
        logger: logging.Logger,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.file = file
        self._interval = reload_interval
        self._log = logger
        self._wall = wall_clock
        self._silences: tuple[Silence, ...] = ()
        self._stat_key: tuple[int, int, int] | None = None
        self._loaded = False
        self._missing_reported = False
        self._last_problem: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._errors: Counter = metrics.silences_reload_errors.labels(label)
        for state in STATES:
            metrics.silences.labels(label, state).set_function(self._counter_of(state))

    def _counter_of(self, state: State) -> Callable[[], float]:
        return lambda: float(self.count(state))

    @property
    def silences(self) -> tuple[Silence, ...]:
        return self._silences

    def count(self, state: State, wall: float | None = None) -> int:
        at = self._wall() if wall is None else wall
        return sum(1 for s in self._silences if s.state(at) == state)

    def silencing(self, labels: Mapping[str, str], wall: float) -> Silence | None:
        """The first silence active at ``wall`` (unix seconds) that matches ``labels``, else None."""
        for s in self._silences:
            if s.starts_at <= wall < s.ends_at and s.matches(labels):
                return s
        return None

    # -- lifecycle -------------------------------------------------------------------------------------

    def load(self) -> None:
        """Initial, synchronous load: raises :class:`SilencesError` (or ``OSError``) when the file exists
        and cannot be used; a missing file is logged and means no silences until it appears."""
        try:
            st = os.stat(self.file)
        except FileNotFoundError:
            self._log.warning("silences file %s not found: no silences until it is created", self.file)
            self._missing_reported = True
        else:
            self._silences = read_silences(self.file)
            self._stat_key = _stat_key(st)
            self._report_loaded()
        self._loaded = True

    def start(self) -> asyncio.Task[None] | None:
        """Loads (if :meth:`load` was not called) and starts the reload task, which the caller keeps."""
        if not self._loaded:
            self.load()
        if self._task is None and not self._closed and self._interval > 0:
            self._task = asyncio.create_task(self._reload_loop(), name=f"alert_routing-silences {self.file}")
        return self._task

    async def shutdown(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await asyncio.to_thread(self.refresh)

    def refresh(self) -> bool:
        """Check the file now (blocking I/O); returns whether the silences in force changed."""
        try:
            st = os.stat(self.file)
        except FileNotFoundError:
            if not self._missing_reported:
                self._missing_reported = True
                if self._stat_key is not None:
                    self._problem(f"silences file {self.file} is gone; keeping the {len(self._silences)} "
                                  "silences last loaded")
            self._stat_key = None
            return False
        except OSError as e:
            self._problem(f"silences file {self.file}: cannot stat: {e}; keeping the silences last loaded")
            return False
        self._missing_reported = False
        key = _stat_key(st)
        if key == self._stat_key:
            return False
        self._stat_key = key  # a broken version is reported once; the next change is read again
        self._last_problem = None
        try:
            silences = read_silences(self.file)
        except (OSError, SilencesError) as e:
            self._problem(f"{e}; keeping the {len(self._silences)} silences last loaded")
            return False
        self._silences = silences
        self._report_loaded()
        return True

    def _problem(self, message: str) -> None:
        if message == self._last_problem:
            return  # already reported; it stays so until the file changes
        self._last_problem = message
        self._log.error("%s", message)
        self._errors.inc()

    def _report_loaded(self) -> None:
        wall = self._wall()
        counts = {state: self.count(state, wall) for state in STATES}
        self._log.info("silences file %s loaded: %d silences (%d active, %d pending, %d expired)", self.file,
                       len(self._silences), counts["active"], counts["pending"], counts["expired"])


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)
