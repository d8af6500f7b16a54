"""cffi build script for RAMNET's C kernels (out-of-line API mode), one extension module.

The module holds ORCHID's kernels (GEMM, STREAM, tile packing and leaf hashing: ``csrc/ramnet.h``,
``csrc/hash.h``), bound in ``ramnet/orchid/_bindings.py``, and VALKYRIE's prime-field kernels
(``csrc/field.h``), bound in ``ramnet/valkyrie/field/_binding.py``. It is named
``ramnet.orchid._native`` because ORCHID is the lowest layer that loads it. The C declarations live
in those headers; this script hands cffi the part of each between its ``cdef-begin`` and
``cdef-end`` markers, so the interface is written once, in C.

``python build_ext.py`` compiles the module in place, for development; ``pip install .`` builds it
through ``setup.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import cffi

ROOT = Path(__file__).resolve().parent
CSRC = "csrc"
SOURCES = ["cpu.c", "gemm_s8.c", "gemm_wide.c", "stream.c", "tiles.c", "field.c", "hash.c"]
MODULE = "ramnet.orchid._native"

# One portable build: no -march=native. Vector code paths carry per-function target attributes and
# are chosen at run time (csrc/cpu.c). C11 without GNU extensions also keeps the compiler from
# fusing multiplies and adds, so every path rounds like numpy does.
COMPILE_ARGS = ["-O3", "-std=c11", "-fno-math-errno"]


def read_cdef(*headers: Path) -> str:
    """Return the declarations between the cdef markers of each header, concatenated.

    Args:
        *headers: Paths of the C headers, in order.

    Returns:
        The text cffi's ``cdef`` accepts.

    Raises:
        ValueError: If a header lacks the markers.
    """
    parts = []
    for header in headers:
        text = header.read_text(encoding="utf-8")
        match = re.search(r"/\* cdef-begin \*/(.*)/\* cdef-end \*/", text, re.S)
        if match is None:
            raise ValueError(f"{header}: no cdef-begin/cdef-end markers")
        parts.append(match.group(1))
    return "\n".join(parts)


ffibuilder = cffi.FFI()
ffibuilder.cdef(read_cdef(*(ROOT / CSRC / name for name in ("ramnet.h", "field.h", "hash.h"))))
ffibuilder.set_source(
    MODULE,
    '#include "ramnet.h"\n#include "field.h"\n#include "hash.h"',
    sources=[f"{CSRC}/{name}" for name in SOURCES],
    include_dirs=[CSRC],
    extra_compile_args=COMPILE_ARGS,
)

if __name__ == "__main__":
    import os

    os.chdir(ROOT)
    ffibuilder.compile(tmpdir=".", verbose=True)
