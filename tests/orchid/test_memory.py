"""keep_freed_memory: large blocks come from malloc's heap and stay there once freed."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

# Both probes start by asking for the setting (or not) and reading glibc's counters.
_PRELUDE = """
import ctypes, sys
from ramnet.orchid._memory import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
"""

_PROBE = (
    _PRELUDE
    + """
block = bytearray(64 << 20)
during = mallinfo2()
del block
after = mallinfo2()
print(kept, during.hblkhd >> 20, after.fordblks >> 20)
"""
)


def _glibc_mallinfo2() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc_mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)")
@pytest.mark.parametrize("mode", ["keep", "default"])
def test_freed_large_blocks_stay_in_the_heap_only_when_asked(mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    mapped_mib, free_heap_mib = int(out[1]), int(out[2])
    if mode == "keep":
        assert out[0] == "True"
        assert mapped_mib == 0  # served from the heap, not a private mapping
        assert free_heap_mib >= 64  # and kept there for the next request
    else:
        assert mapped_mib >= 64  # glibc's default: a fresh mapping, unmapped on free
        assert free_heap_mib < 64


_THREAD_PROBE = (
    _PRELUDE
    + """
import threading
seen = []

def serve():
    # What a server's worker thread does: a block bigger than a thread arena's 64 MiB heap.
    block = bytearray(96 << 20)
    seen.append(mallinfo2().hblkhd >> 20)
    del block

thread = threading.Thread(target=serve)
thread.start()
thread.join()
print(kept, seen[0])
"""
)


@pytest.mark.skipif(not _glibc_mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)")
@pytest.mark.parametrize("mode", ["keep", "default"])
def test_large_blocks_from_threads_come_from_the_heap_only_when_asked(mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _THREAD_PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    mapped_mib = int(out[1])
    if mode == "keep":
        assert out[0] == "True"
        assert mapped_mib == 0  # one arena: the main heap serves threads too
    else:
        assert mapped_mib >= 96  # a thread arena cannot hold it: a private mapping
