"""The allocator settings of collector.memory, in a child process (mallopt changes the process for good)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from collector import memory

CHECK = """
from collector import memory
print(memory.tune_malloc())
memory.release_memory()
"""


def run(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return out.stdout.strip()


@pytest.mark.skipif(memory._glibc() is None, reason="glibc only")
def test_tuning_applies_on_glibc_and_can_be_turned_off() -> None:
    assert run({}) == "True"
    assert run({"TRACETRIAGE_MALLOC_TUNING": "0"}) == "False"


def test_memory_limiter_gives_memory_back_when_it_collects() -> None:
    from collector import Telemetry
    from collector.config import decode
    from pipelines.memory_limiter import Config, MemoryLimiter
    from tests.pipelines import RecordingConsumer, make_settings

    config = decode(Config, {"check_interval": "1s", "limit_mib": 100})
    limiter = MemoryLimiter(make_settings("memory_limiter", Telemetry()), config, RecordingConsumer())
    assert limiter.collect_garbage is memory.release_memory
    memory.release_memory()  # safe to call anywhere, with or without glibc


def test_huge_pages_environ_decides_from_tuning_glibc_and_the_kernel() -> None:
    on = memory.huge_pages_environ({"PATH": "/bin"}, version=(2, 36), thp=True)
    assert on == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    # the user's own tunables are kept, and one that names the setting already wins (no start-again loop)
    kept = memory.huge_pages_environ({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}, version=(2, 36), thp=True)
    assert kept == {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1"}
    assert memory.huge_pages_environ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, version=(2, 36), thp=True) is None
    assert memory.huge_pages_environ({"TRACETRIAGE_MALLOC_TUNING": "off"}, version=(2, 36), thp=True) is None
    assert memory.huge_pages_environ({}, version=(2, 34), thp=True) is None  # the tunable came in glibc 2.35
    assert memory.huge_pages_environ({}, version=(2, 36), thp=False) is None  # transparent huge pages: never


def test_glibc_version_reads_the_c_library() -> None:
    version = memory.glibc_version()
    if memory._glibc() is None:
        assert version is None
    else:
        assert version is not None and version >= (2, 17)
