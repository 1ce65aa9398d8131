"""Config of the ``trace_tests`` processor.

```yaml
processors:
  trace_tests:
    definitions: configs/trace-tests     # a directory of Tracetest definitions (*.yaml, *.yml), or one file
    reload_interval: 30s                 # checked for changes this often (0: read once)
    decision_wait: 10s                   # the trace buffer's wait when no tail_sampling sets it
    annotate: true                       # tracetest.failed on the root span of a failing trace
    ownership: ownership                 # who owns a spec without spec.owner: the selected span's service's team
    alerting:                            # when failures become alerts (alert_routing trigger: trace_tests)
      window: 5m
      min_failures: 5
      failure_rate: 0.05
    max_results: 10000                   # last results kept for GET /api/trace-tests/{trace_id} (debug)
    max_spans: 10000                     # traces with more spans are not tested (counted)
```
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from collector.component import ExtensionRef
from collector.config import Duration, field
from pipelines.ownership import OwnershipSetting, ownership_refs


@dataclass(frozen=True)
class AlertingConfig:
    """A failing spec pages once, within ``window``, at least ``min_failures`` traces failed it and they are at
    least ``failure_rate`` of the traces it ran on (0: any rate)."""

    window: Duration = field(Duration(300.0), gt=0)
    min_failures: int = field(1, ge=1)
    failure_rate: float = field(0.0, ge=0.0, le=1.0)


@dataclass(frozen=True)
class Config:
    definitions: str = field(min_len=1)
    reload_interval: Duration = field(Duration(30.0), ge=0)
    decision_wait: Duration = field(Duration(10.0), gt=0)
    annotate: bool = True
    ownership: OwnershipSetting | None = None
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    max_results: int = field(10000, ge=1)
    max_spans: int = field(10000, ge=1)

    def extension_refs(self) -> list[ExtensionRef]:
        return ownership_refs("ownership", self.ownership)

    def validate(self) -> Iterator[tuple[str, str]]:
        from pipelines.trace_tests.library import LibraryError, load_library

        if not os.path.exists(self.definitions):
            yield "definitions", f"{self.definitions}: no such file or directory"
            return
        try:
            load_library(self.definitions)
        except LibraryError as e:
            for problem in e.problems:
                yield "definitions", problem
