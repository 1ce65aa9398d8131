"""Where objectives come from: OpenSLO files (paths, globs, directories) and documents inline in the config,
checked for changes as the ownership catalog is.

:meth:`ObjectiveSource.load` reads everything and raises :class:`~pipelines.slo.openslo.ObjectiveError`
with every problem: at startup an invalid document stops the collector. :meth:`ObjectiveSource.check`
(called every ``reload_interval``, in a worker thread) looks at each file's (mtime, size, inode) and the
globs' matches; when something changed it reads the whole set again. A set with problems is refused as
a whole (each problem logged once and counted) and the objectives in use stay, as Prometheus does with
rule files: a half-applied change would measure some objectives under new rules and some under old.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from pipelines.slo import openslo
from pipelines.slo.model import Objective

StatKey = tuple[tuple[str, int, int, int], ...]


class ObjectiveSource:
    """See the module docstring."""

    def __init__(self, patterns: Sequence[str], inline: Sequence[Any], default_window: float, max_objectives: int,
                 logger: logging.Logger, bucket_width: float = 60.0) -> None:
        self.patterns = tuple(patterns)
        self.bucket_width = bucket_width
        self.inline = tuple(inline)
        self.default_window = default_window
        self.max_objectives = max_objectives
        self._log = logger
        self._stat: StatKey | None = None
        self._reported: tuple[str, ...] = ()
        self.problems: list[openslo.Problem] = []  # of the last set refused

    def load(self) -> list[Objective]:
        """Read the files and inline documents now; raises ObjectiveError."""
        self._stat = self._stat_key()
        objectives, problems = self._read()
        if problems:
            raise openslo.ObjectiveError(problems)
        if not objectives:
            where = f"files {list(self.patterns)}" if self.patterns else "slos"
            raise openslo.ObjectiveError([openslo.Problem("", 0, "", f"no objective found in {where}")])
        return objectives

    def check(self) -> list[Objective] | None:
        """A new set of objectives when the files changed and the new set is valid, else None (blocking I/O)."""
        key = self._stat_key()
        if key == self._stat:
            return None
        self._stat = key
        objectives, problems = self._read()
        if problems:
            self.problems = problems
            text = tuple(str(p) for p in problems)
            if text != self._reported:
                self._reported = text
                self._log.error("slo: objective files changed but are refused (the objectives in use stay):\n  %s",
                                "\n  ".join(text))
            return None
        self.problems, self._reported = [], ()
        return objectives

    def _read(self) -> tuple[list[Objective], list[openslo.Problem]]:
        objectives, problems, _ = openslo.load(self.patterns, self.inline, default_window=self.default_window)
        if len(objectives) > self.max_objectives:
            problems.append(openslo.Problem("", 0, "", f"{len(objectives)} objectives: more than max_objectives "
                                                       f"({self.max_objectives})"))
        width = self.bucket_width
        for o in objectives:
            for a in o.alerts or ():
                bad = [w for w in (a.long_window, a.short_window) if w % width]
                if bad:
                    problems.append(openslo.Problem(
                        o.source, 0, f"metadata.annotations.{openslo.ALERTS_ANNOTATION}",
                        f"{a}: windows must be whole numbers of the processor's bucket_width ({width:g}s)"))
        return objectives, problems

    def _stat_key(self) -> StatKey:
        files, _ = openslo.expand(self.patterns)
        out = []
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                out.append((path, -1, -1, -1))
                continue
            out.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)
