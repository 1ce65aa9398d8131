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



BOUND = """
import os, sys
from collector import memory

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20

print(memory.bound_free_heap(8 << 20))  # before tune_malloc: the allocator's defaults apply
print(memory.tune_malloc())
if sys.argv[1] == "bounded":
    print(memory.bound_free_heap(8 << 20) == 8 << 20, memory.bound_free_heap(64 << 20) == 8 << 20)
base = rss()
blocks = [None] * 150  # (the list first: nothing small above the blocks keeps the heap top in use)
for i in range(150):
    blocks[i] = b"x" * (1 << 20)  # 150 MiB of heap blocks, below the mmap threshold
del blocks
print(rss() - base)
"""


@pytest.mark.skipif(memory._glibc() is None, reason="glibc only")
def test_bound_free_heap_gives_a_burst_back_at_once() -> None:
    def run_bound(mode: str) -> list[str]:
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        out = subprocess.run([sys.executable, "-c", BOUND, mode], capture_output=True, text=True, check=True,
                             env=env)
        return out.stdout.split()

    tuned = run_bound("tuned")
    assert tuned[:2] == ["None", "True"]
    assert int(tuned[2]) > 100  # up to 256 MiB of free heap stays with the process
    bounded = run_bound("bounded")
    assert bounded[:4] == ["None", "True", "True", "True"]  # the smallest bound asked for stays
    assert int(bounded[4]) < 50  # freed memory above 8 MiB went back at once
