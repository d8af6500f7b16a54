"""Buffers that request and reply bodies are read into."""

from __future__ import annotations

import mmap

import numpy as np

from ramnet.orchid._memory import freed_memory_kept

#: Bytes from which ``receive_buffer`` maps its buffer with its pages faulted in at once.
POPULATE_MIN = 1 << 20


def receive_buffer(size: int, *, populate: bool = True) -> memoryview:
    """A writable buffer of ``size`` bytes to read a wire body into.

    In a process that keeps freed memory (a mesh node: ``keep_freed_memory``) it is left
    uninitialised: it comes from malloc's heap, already mapped, and ``bytearray(size)`` would
    only add a pass zeroing it (about 0.1 ms per MiB of server CPU in
    ``bench/bench_transport.py``). Elsewhere (a download into memory, ``fetch_result``; the
    consumer's command streams C to its file instead) a large buffer is a fresh
    anonymous mapping whose pages the kernel faults in all at once (``MAP_POPULATE``, Linux),
    zeroed, in 4 KiB pages: a zeroed bytearray takes one page fault per page and a pass zeroing
    them again, and a fresh uninitialised numpy buffer that large is mapped with transparent huge
    pages, which on the reference VM fault in slower still. Filling 64 MiB, five fresh processes
    of each, alternated: 62-73 ms populated, 80-92 ms as a bytearray (a throwaway timing); a 64
    MiB download took 0.15 s into a numpy buffer against 0.05 s into a bytearray (session 6).

    A server reading a body a client only declared passes ``populate=False``: the mapping then
    takes memory page by page as the bytes arrive, so a request that declares 1 GiB and sends
    nothing costs nothing (a populated or zeroed buffer took the whole GiB at once, before the
    signature was even checked).
    """
    if freed_memory_kept():
        return np.empty(size, np.uint8).data
    flag = getattr(mmap, "MAP_POPULATE", 0) if populate else 0
    if size >= POPULATE_MIN and (flag or not populate):
        try:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flag
            return memoryview(mmap.mmap(-1, size, flags=flags))
        except (OSError, ValueError):  # no such mapping here: a bytearray serves
            pass
    return memoryview(bytearray(size))
