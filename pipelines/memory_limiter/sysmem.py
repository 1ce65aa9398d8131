"""Total memory available to this process: the cgroup limit if one is set, else the machine's memory."""

from __future__ import annotations

import os

_CGROUP_LIMIT_FILES = (
    "/sys/fs/cgroup/memory.max",  # cgroup v2
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # cgroup v1
)
# cgroup v1 reports "no limit" as a huge number near 2**63.
_NO_LIMIT = 1 << 60


def machine_memory() -> int | None:
    """MemTotal from /proc/meminfo, else pages x page size from sysconf; None if neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def cgroup_memory_limit() -> int | None:
    for path in _CGROUP_LIMIT_FILES:
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < _NO_LIMIT:
            return int(text)
        return None
    return None


def total_memory() -> int | None:
    """The smaller of the machine's memory and the cgroup memory limit, in bytes."""
    known = [m for m in (machine_memory(), cgroup_memory_limit()) if m]
    return min(known) if known else None
