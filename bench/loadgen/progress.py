"""The progress line on stderr: refreshed in place on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import asyncio
import shutil
from typing import TextIO

from bench.loadgen.send import SendStats


def progress_line(stats: SendStats) -> str:
    line = (f"traces {stats.traces:,}  spans {stats.spans:,}  {stats.span_rate:,.0f} spans/s  "
            f"requests {stats.requests:,}  retries {stats.retries:,}  failed {stats.failed_requests:,}")
    if stats.rejected_spans:
        line += f"  rejected spans {stats.rejected_spans:,}"
    if stats.failed_requests and stats.last_error:
        line += f"  (last error: {stats.last_error[:120]})"
    return line


class Progress:
    """Prints ``stats`` every ``interval`` seconds until cancelled; ``finish()`` prints the last line."""

    __slots__ = ("_interval", "_stats", "_stream", "_tty")

    def __init__(self, stats: SendStats, stream: TextIO, interval: float | None = None) -> None:
        self._stats = stats
        self._stream = stream
        self._tty = stream.isatty()
        self._interval = interval if interval is not None else (0.5 if self._tty else 5.0)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._print()

    def _print(self, final: bool = False) -> None:
        line = progress_line(self._stats)
        if self._tty:
            line = line[:max(shutil.get_terminal_size().columns - 1, 20)]  # one row, or \r cannot redraw it
            self._stream.write(f"\r\x1b[K{line}" + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def finish(self) -> None:
        self._print(final=True)
