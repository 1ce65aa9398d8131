"""Config of the ``slo`` processor.

```yaml
processors:
  slo:
    files: [configs/slo/*.yaml]       # OpenSLO documents: paths, globs, directories
    reload_interval: 10s              # how often the files are checked for changes (0: never)
    slos:                             # OpenSLO SLO/SLI documents inline (apiVersion, kind may be left out)
      - metadata: {name: checkout-availability}
        spec: {...}
    burn_alerts:                      # default: the SRE Workbook's three
      - {severity: page, burn_rate: 14.4, long_window: 1h, short_window: 5m}
    min_cause_share: 0.5
    evaluation_interval: 30s
    bucket_width: 1m                  # buckets of windows up to 6 h; seconds for demos (minimum 1s)
    storage: file_storage             # keep the measured state across restarts
    checkpoint_interval: 1m
```
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from collector.component import ComponentID
from collector.config import Duration, field
from pipelines.slo import openslo
from pipelines.slo.model import SECONDS, SRE_WORKBOOK_ALERTS, BurnAlertSpec

_WINDOW_RE = re.compile(r"^([1-9][0-9]*)([mhdw])$")


@dataclass(frozen=True)
class BurnAlertConfig:
    """Alert with ``severity`` while the error rate over both windows exceeds ``burn_rate`` x (1 - target)."""

    severity: str = field(min_len=1)
    burn_rate: float = field(gt=0)
    long_window: Duration = field(gt=0)
    short_window: Duration = field(gt=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.short_window >= self.long_window:
            yield "short_window", f"must be shorter than long_window ({self.long_window:g}s)"

    def spec(self) -> BurnAlertSpec:
        return BurnAlertSpec(self.severity, self.burn_rate, float(self.long_window), float(self.short_window))


def _default_alerts() -> tuple[BurnAlertConfig, ...]:
    return tuple(BurnAlertConfig(a.severity, a.burn_rate, Duration(a.long_window), Duration(a.short_window))
                 for a in SRE_WORKBOOK_ALERTS)


@dataclass(frozen=True)
class Config:
    """``slo`` settings (see docs/components/processors/slo.md for every key)."""

    files: tuple[str, ...] = ()
    slos: tuple[Any, ...] = ()
    reload_interval: Duration = field(Duration(10.0), ge=0)
    default_time_window: str = "28d"
    burn_alerts: tuple[BurnAlertConfig, ...] = field(default_factory=_default_alerts, min_len=1)
    min_cause_share: float = field(0.5, gt=0, le=1)
    evaluation_interval: Duration = field(Duration(30.0), gt=0)
    bucket_width: Duration = field(Duration(60.0), ge=1, le=60)
    storage: str | None = None
    checkpoint_interval: Duration = field(Duration(60.0), gt=0)
    decision_wait: Duration = field(Duration(10.0), gt=0)
    max_objectives: int = field(100, ge=1)
    max_causes_per_bucket: int = field(10, ge=1)
    examples_per_cause: int = field(3, ge=0)
    max_signals_per_trace: int = field(100, ge=1)

    @property
    def default_window(self) -> float:
        m = _WINDOW_RE.match(self.default_time_window)
        return float(int(m.group(1)) * SECONDS[m.group(2)]) if m else 28 * 86400.0

    @property
    def alert_specs(self) -> tuple[BurnAlertSpec, ...]:
        return tuple(a.spec() for a in self.burn_alerts)

    def validate(self) -> Iterator[tuple[str, str]]:
        width = float(self.bucket_width)
        if width % 1 or 60 % width:
            yield "bucket_width", f"must be a whole number of seconds that divides a minute, got {width:g}s"
        else:
            for i, a in enumerate(self.burn_alerts):
                for key in ("long_window", "short_window"):
                    if float(getattr(a, key)) % width:
                        yield (f"burn_alerts[{i}].{key}", f"must be a whole number of bucket_width ({width:g}s): "
                                                          f"windows are read from buckets that wide")
        if not _WINDOW_RE.match(self.default_time_window):
            yield "default_time_window", (f"must be a duration shorthand such as 28d or 4w, got "
                                          f"{self.default_time_window!r}")
        if self.storage is not None:
            try:
                ComponentID.parse(self.storage)
            except ValueError as e:
                yield "storage", str(e)
        for i, pattern in enumerate(self.files):
            if not pattern.strip():
                yield f"files[{i}]", "must be a path, glob or directory, got an empty string"
        if not self.files and not self.slos:
            yield "", "needs objectives: files (OpenSLO documents) or slos (inline)"
        if self.slos and not self.files:
            # Inline documents alone can be checked now (with files, an indicatorRef may name an SLI there:
            # the whole set is checked when the processor is built).
            _, problems = openslo.build(openslo.inline_documents(self.slos), default_window=self.default_window)
            for p in problems:
                yield p.path, p.message
