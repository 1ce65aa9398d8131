"""Config of the ``batch`` processor: the OTel Collector's options and defaults, plus ``max_pending_spans``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from collector.config import Duration, field

DEFAULT_SEND_BATCH_SIZE = 8192
DEFAULT_TIMEOUT = Duration(0.2)


@dataclass(frozen=True)
class Config:
    """``batch`` processor settings.

    * ``send_batch_size``: spans that trigger a send (0: send right away, only ``send_batch_max_size``
      applies).
    * ``send_batch_max_size``: upper bound of a sent batch, larger merged batches are split (0: no bound).
    * ``timeout``: a batch is sent at the latest this long after its first span arrived (0: send right
      after each consume).
    * ``max_pending_spans``: spans held (buffered or being retried) above which new batches are refused
      with a retriable error. Default ``max(10 * send_batch_size, 2 * send_batch_max_size)``
      (``10 * 8192`` when both are 0).
    """

    timeout: Duration = field(DEFAULT_TIMEOUT, ge=0)
    send_batch_size: int = field(DEFAULT_SEND_BATCH_SIZE, ge=0)
    send_batch_max_size: int = field(0, ge=0)
    max_pending_spans: int | None = field(None, ge=1)

    def validate(self) -> Iterator[tuple[str, str]]:
        if 0 < self.send_batch_max_size < self.send_batch_size:
            yield "send_batch_max_size", "must be greater or equal to send_batch_size"
        if self.max_pending_spans is not None and self.max_pending_spans < self.send_batch_size:
            yield "max_pending_spans", "must be greater or equal to send_batch_size"

    @property
    def pending_limit(self) -> int:
        """The effective ``max_pending_spans``."""
        if self.max_pending_spans is not None:
            return self.max_pending_spans
        limit = max(10 * self.send_batch_size, 2 * self.send_batch_max_size)
        return limit or 10 * DEFAULT_SEND_BATCH_SIZE
