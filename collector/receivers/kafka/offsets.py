"""Which offsets of a partition may be committed, when the records' batches finish out of order.

Each batch fed to the pipeline covers a range of offsets ``[start, end)`` of one partition, added in
fetch order. A range is done when every holder of its batch has released it (its
:class:`~collector.model.Ack` fired). The committable offset is one past the last record of the
longest run of done ranges from the oldest: a range done early waits for the older ones.
"""

from __future__ import annotations

import collections


class OffsetRange:
    __slots__ = ("done", "end", "start", "tracker")

    def __init__(self, tracker: PartitionTracker, start: int, end: int) -> None:
        self.tracker = tracker
        self.start = start
        self.end = end
        self.done = False

    def mark_done(self) -> None:
        """Idempotent. A range of a partition that was revoked meanwhile changes nothing."""
        if not self.done:
            self.done = True
            self.tracker._advance()


class PartitionTracker:
    """Ranges of one partition, for as long as this instance owns the partition."""

    __slots__ = ("_last_end", "_ranges", "committable", "committed", "revoked")

    def __init__(self, position: int | None = None) -> None:
        self._ranges: collections.deque[OffsetRange] = collections.deque()
        self._last_end = -1
        self.committable: int | None = position  # next offset to commit (None: nothing done yet)
        self.committed: int | None = None  # last offset committed to Kafka
        self.revoked = False

    def add(self, start: int, end: int) -> OffsetRange:
        """Track offsets ``[start, end)`` (``end`` one past the last record)."""
        if end <= start:
            raise ValueError(f"empty offset range [{start}, {end})")
        if start < self._last_end:
            raise ValueError(f"offset range [{start}, {end}) starts before the end of the previous one "
                             f"({self._last_end})")
        self._last_end = end
        r = OffsetRange(self, start, end)
        self._ranges.append(r)
        return r

    def _advance(self) -> None:
        if self.revoked:
            return
        ranges = self._ranges
        while ranges and ranges[0].done:
            self.committable = ranges.popleft().end

    @property
    def outstanding(self) -> int:
        """Ranges not yet done (or waiting behind one that is not)."""
        return len(self._ranges)

    def to_commit(self) -> int | None:
        """The offset to commit now, or None if it is already committed."""
        if self.committable is None or self.committable == self.committed:
            return None
        return self.committable


__all__ = ["OffsetRange", "PartitionTracker"]
