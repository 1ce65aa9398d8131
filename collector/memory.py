"""The process allocator: glibc malloc settings for a collector's allocation pattern, and giving memory back.

A collector allocates and frees large blocks all the time: every request's bytes (hundreds of KiB), the
decoded request's protobuf arena, the Kafka records built from it. glibc's defaults serve a block of
128 KiB or more with its own ``mmap`` and ``munmap`` it on free (the threshold adapts, but only up to the
largest block freed so far), and trim the heap's free top above 128 KiB: so the same memory goes back to
the kernel and is page-faulted in again, request after request. Measured with the tail-sampling
benchmark (interleaved A/B runs): about 100 page faults per 500-span request with the defaults, 10 % fewer
and a third less system time with the settings below, and 3 - 15 % more spans per CPU-second.

:func:`tune_malloc` raises the mmap threshold to 32 MiB (glibc's maximum), keeps up to
``TRIM_THRESHOLD`` of free heap top, and grows the heap ``TOP_PAD`` at a time. Memory freed after a burst
then stays with the process (RSS does not fall by itself); :func:`release_memory` gives it back, and the
memory limiter calls it when it forces a garbage collection. Up to 256 MiB of free heap is more than a
small memory limit leaves for data, so a memory limiter bounds it with :func:`bound_free_heap` (to half its
spike limit): freed memory above that goes back to the kernel at once, without waiting for a trim.
``TRACETRIAGE_MALLOC_TUNING=0`` in the environment leaves the allocator's defaults alone. Without glibc
(musl, macOS) these functions do nothing.

Transparent huge pages: :func:`reexec_with_huge_pages` starts the collector's process image again (same
pid, same arguments) with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, which glibc reads only at start-up:
malloc then asks the kernel for 2 MiB pages (``MADV_HUGEPAGE``) for its heap and its large blocks. The
request bytes, the protobuf arenas, the numpy arrays of the wire walk and the buffered traces' span bytes
all live there. The benchmark's full pipeline (three interleaved A/B pairs): 134 k / 133 k / 125 k →
154 k / 158 k / 173 k spans per CPU-second, page faults per 500-span request 78 → 20, memory per
buffered span 374 → 367 bytes. It applies on glibc 2.35 or newer when the kernel offers huge pages
(``/sys/kernel/mm/transparent_hugepage/enabled`` is not ``never``), unless ``GLIBC_TUNABLES`` already
names the tunable or ``TRACETRIAGE_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
TOP_PAD = 64 << 20

_libc: ctypes.CDLL | None = None
# The free heap top glibc may keep (M_TRIM_THRESHOLD) as tune_malloc or bound_free_heap last set it; None:
# the allocator's own default. The allocator is one per process, and so is this record of its setting.
_kept_free: int | None = None


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name or "libc.so.6")
        except OSError:
            return None
        if not (hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") and hasattr(lib, "gnu_get_libc_version")):
            return None
        _libc = lib
    return _libc


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb"
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"


def _tuning_off(environ: Mapping[str, str]) -> bool:
    return environ.get("TRACETRIAGE_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off")


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the C library when it is glibc, else None."""
    try:
        name = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    lib, _, version = name.partition(" ")
    parts = version.split(".")
    if lib != "glibc" or len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


def _thp_available(setting: str = THP_SETTING) -> bool:
    try:
        with open(setting) as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def huge_pages_environ(environ: Mapping[str, str], version: tuple[int, int] | None = None,
                       thp: bool | None = None) -> dict[str, str] | None:
    """The environment to start again with for huge pages (see the module docstring), or None when there is
    nothing to do: tuning turned off, not glibc 2.35+, no transparent huge pages, or ``GLIBC_TUNABLES``
    names the tunable already (set by the user, or by the start before this one)."""
    if _tuning_off(environ):
        return None
    version = glibc_version() if version is None else version
    if version is None or version < (2, 35):
        return None
    if not (_thp_available() if thp is None else thp):
        return None
    current = environ.get("GLIBC_TUNABLES", "")
    if HUGE_PAGES_TUNABLE in current:
        return None
    tunable = f"{HUGE_PAGES_TUNABLE}=1"
    return {**environ, "GLIBC_TUNABLES": f"{current}:{tunable}" if current else tunable}


def reexec_with_huge_pages() -> None:
    """Replace the process image with the same command under the huge-pages environment, when
    :func:`huge_pages_environ` says so (call it before anything starts: threads, sockets, files). Returns
    only when there is nothing to do or the re-execution failed (then the process goes on as it is)."""
    env = huge_pages_environ(os.environ)
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)  # noqa: S606 - this process, started again
    except OSError as e:
        log.warning("malloc tuning: cannot start again with %s: %s", env["GLIBC_TUNABLES"], e)


def huge_pages_on() -> bool:
    """Whether this process started with glibc's huge-pages tunable."""
    return HUGE_PAGES_TUNABLE in os.environ.get("GLIBC_TUNABLES", "") and glibc_version() is not None


def tune_malloc() -> bool:
    """Apply the settings of the module docstring; True if glibc took them."""
    if _tuning_off(os.environ):
        return False
    libc = _glibc()
    if libc is None:
        return False
    global _kept_free
    ok = all(libc.mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
    if not ok:
        log.warning("malloc tuning: glibc refused a setting; allocator defaults may apply")
    else:
        _kept_free = TRIM_THRESHOLD
    return ok


def bound_free_heap(limit: int) -> int | None:
    """Keep at most ``limit`` bytes of free heap top (``M_TRIM_THRESHOLD``, and ``M_TOP_PAD`` no larger),
    only ever lowering what :func:`tune_malloc` set: several callers leave the smallest bound. Returns the
    bound in force, or None when the allocator's defaults apply (no glibc, tuning off: glibc then keeps
    128 KiB, less than any bound asked for)."""
    global _kept_free
    libc = _glibc()
    if _kept_free is None or libc is None:
        return None
    limit = max(limit, 1 << 20)
    if limit < _kept_free and libc.mallopt(M_TRIM_THRESHOLD, limit) == 1:
        libc.mallopt(M_TOP_PAD, min(TOP_PAD, limit))
        _kept_free = limit
    return _kept_free


def release_memory() -> bool:
    """Collect garbage and hand the allocator's free memory back to the kernel (``malloc_trim``, which
    also returns whole free pages inside the heap, not only its top). True if the allocator trimmed."""
    gc.collect()
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


__all__ = ["bound_free_heap", "huge_pages_environ", "huge_pages_on", "reexec_with_huge_pages", "release_memory",
           "tune_malloc"]
