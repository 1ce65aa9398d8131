"""Config of the ``root_cause`` processor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from collector.component import ExtensionRef
from collector.config import Duration, field
from pipelines.ownership import OwnershipSetting, ownership_refs


@dataclass(frozen=True)
class Signal:
    """Where walks start: spans matching every matcher given (at least one). The error walk starts at
    those in error; with ``latency_threshold`` (0: off) the latency walk starts at those longer than it
    and not in error.

    ``span_name_regex`` is searched anywhere in the name (as Go's ``MatchString`` in the OTel Collector);
    anchor it with ``^...$`` for a whole-name match.
    """

    name: str = field(min_len=1)
    service: str = ""
    span_name: str = ""
    span_name_regex: str = ""
    latency_threshold: Duration = field(Duration(0.0), ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if not (self.service or self.span_name or self.span_name_regex):
            yield "", "needs at least one of service, span_name, span_name_regex"
        if self.span_name and self.span_name_regex:
            yield "span_name_regex", "give span_name or span_name_regex, not both"
        if self.span_name_regex:
            try:
                re.compile(self.span_name_regex)
            except re.error as e:
                yield "span_name_regex", f"invalid regular expression: {e}"


@dataclass(frozen=True)
class Config:
    """``root_cause`` settings.

    * ``signals``: where walks start (default: every root span, i.e. a span with no parent or whose
      parent is not in the trace; signal name ``root``). A span matching several signals belongs to the
      first.
    * ``latency_threshold``: the default signal's (every root span's) latency threshold: a root span longer
      than it and not in error gets the latency walk (0: off). With ``signals``, each signal has its own
      ``latency_threshold`` instead.
    * ``annotate``: write ``rootcause.*`` attributes on each signal span in error (or too slow).
    * ``decision_wait``: how long the pipeline's trace buffer waits for a trace's spans (when no
      ``tail_sampling`` in the pipeline sets it).
    * ``ownership``: the id of an ``ownership`` extension (``ownership`` or ``ownership/<name>``), or an
      inline block with its keys (shorthand for a private one); used only for the ``team`` label of
      ``tracetriage_root_causes_total`` ("unknown" without it).
    * ``max_root_causes``: root causes kept per failure (the first by primary order; all are counted).
    * ``max_path_length``: elements of ``rootcause.path`` and ``RootCause.path``; longer paths keep the
      signal, a ``"... N spans ..."`` marker and the spans nearest the root cause.
    * ``max_signals_per_trace``: signal spans in error walked per trace, and as many slow ones; more are
      counted and skipped.
    """

    signals: tuple[Signal, ...] = ()
    latency_threshold: Duration = field(Duration(0.0), ge=0)
    annotate: bool = True
    decision_wait: Duration = field(Duration(10.0), gt=0)
    ownership: OwnershipSetting | None = None
    max_root_causes: int = field(100, ge=1)
    max_path_length: int = field(64, ge=3)
    max_signals_per_trace: int = field(100, ge=1)

    def extension_refs(self) -> list[ExtensionRef]:
        return ownership_refs("ownership", self.ownership)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.latency_threshold and self.signals:
            yield "latency_threshold", (
                "applies to the default signal (every root span) only: with signals, give each signal its own "
                "latency_threshold")
        seen: set[str] = set()
        for i, signal in enumerate(self.signals):
            if signal.name in seen:
                yield f"signals[{i}].name", f"{signal.name!r} is used by an earlier signal"
            seen.add(signal.name)
