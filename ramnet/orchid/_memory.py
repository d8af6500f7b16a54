"""Allocator tuning for long-running processes (mesh nodes, the sidecar daemon).

A node receives, packs and sends tens of MiB per request. glibc's malloc serves blocks above its
mmap threshold (dynamic, at most 32 MiB) with fresh mappings and unmaps them on free, so every
such buffer pays a page fault per 4 KiB page when first written. On this project's reference
machine (a Firecracker VM without transparent huge pages) that is about 2.2 ms per MiB: more than
copying the bytes. Raising the mmap and trim thresholds keeps large blocks in malloc's heap and
freed ones mapped, so the next request reuses them: joining a 64 MiB body drops from about 80 ms to
10 ms, a zeroed 64 MiB array from about 140 ms to 5 ms. The cost is that the process keeps its
peak heap mapped, which is what a node that serves one job after another wants.

Threads matter too: glibc gives each new thread its own arena, and a thread arena grows in heaps of
at most 64 MiB, so a 64 MiB block requested from a server's worker thread (C assembled, a body
packed) is mapped afresh and unmapped on free whatever the thresholds say. One arena for the whole
process keeps those blocks in the main heap as well: in a thread, a 68 MiB buffer plus a 64 MiB
array went from about 18,500 page faults and 50 ms each time to none and 5 ms. Python's small
objects do not use malloc, so the shared arena's lock is rarely contended.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["freed_memory_kept", "keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: Blocks up to this size come from malloc's heap, and this much free heap is kept mapped.
KEEP_BYTES = 1 << 30

_kept = False


def keep_freed_memory(limit: int = KEEP_BYTES) -> bool:
    """Make glibc's malloc serve blocks up to ``limit`` bytes from its heap and keep freed memory.

    Process-wide and lasting: meant for the start of a long-running node, before it starts
    threads (every thread then allocates from the main heap). A no-op outside Linux or without
    glibc's ``mallopt``.

    Args:
        limit: The new mmap threshold and trim threshold, in bytes.

    Returns:
        True when glibc accepted all three settings (thresholds and a single arena).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    trim = mallopt(_M_TRIM_THRESHOLD, limit)
    mmap = mallopt(_M_MMAP_THRESHOLD, limit)
    arenas = mallopt(_M_ARENA_MAX, 1)
    global _kept
    _kept = bool(trim) and bool(mmap) and bool(arenas)
    return _kept


def freed_memory_kept() -> bool:
    """Whether ``keep_freed_memory`` took effect in this process: large blocks then come from
    malloc's heap, already mapped, and a buffer need not be zeroed to be cheap to fill."""
    return _kept
