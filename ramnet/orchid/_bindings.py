"""Thin bindings over the compiled cffi module ``ramnet.orchid.native``.

Every function here checks the C return code and converts types; nothing else. Arrays are passed by
address, so a 2-D operand may be any view whose rows are contiguous (a tile of a larger matrix, a
memory-mapped file); its leading dimension is taken from its row stride. cffi releases the GIL
around each call, so several threads can run kernels at once.

The extension also carries VALKYRIE's prime-field kernels (csrc/field.c); ORCHID does not use
them: ``ramnet.valkyrie.field`` binds them itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ramnet._errors import BackendUnavailableError, InvalidInputError, KernelError

native: Any
try:
    native = importlib.import_module("ramnet.orchid._native")
except ImportError as exc:  # no C compiler at install time, or a broken build
    native = None
    IMPORT_ERROR: str | None = str(exc)
else:
    IMPORT_ERROR = None

AVAILABLE = native is not None
"""Whether the C extension is built (``native`` is the compiled module, or None)."""

# Mirrors of csrc/ramnet.h, usable without the extension.
PATH_AUTO = -1
KERNEL_GEMM_S8 = 0
KERNEL_GEMM_WIDE = 1
KERNEL_STREAM = 2
PATH_NAMES = ("portable", "avx2", "avx-vnni", "avx512", "avx512-vnni", "neon", "avx512-ifma")
KERNEL_FAMILIES = {
    "gemm_s8": KERNEL_GEMM_S8,
    "gemm_wide": KERNEL_GEMM_WIDE,
    "stream": KERNEL_STREAM,
}

_ERRORS = {
    -1: "invalid argument",
    -2: "code path not supported on this CPU",
    -3: "out of memory for kernel scratch space",
}


def _lib() -> Any:
    if native is None:
        raise BackendUnavailableError(
            f"the C kernels are not built ({IMPORT_ERROR}); use --backend numba or reinstall "
            "with a C compiler"
        )
    return native.lib


def check(code: int, what: str) -> None:
    """Raise the error a C kernel's nonzero return code stands for (ORCHID's kernels and
    VALKYRIE's field kernels alike).

    Args:
        code: The kernel's return code (0, or a negative ``RAMNET_E*`` of csrc/ramnet.h).
        what: The kernel's name, for the message.

    Raises:
        InvalidInputError: ``RAMNET_EINVAL``.
        BackendUnavailableError: ``RAMNET_ENOTSUP`` (the code path does not run here).
        KernelError: Any other failure (scratch memory).
    """
    if code == 0:
        return
    message = f"{what}: {_ERRORS.get(code, f'error {code}')}"
    if code == -2:
        raise BackendUnavailableError(message)
    if code == -1:
        raise InvalidInputError(message)
    raise KernelError(message)


def path_number(name: str) -> int:
    """Return the ``RAMNET_PATH_*`` number of a path name (``"auto"`` is -1)."""
    if name == "auto":
        return PATH_AUTO
    try:
        return PATH_NAMES.index(name)
    except ValueError:
        raise InvalidInputError(
            f"unknown code path {name!r}; choose from auto, {', '.join(PATH_NAMES)}"
        ) from None


def path_name(path: int) -> str:
    """Return the name of a ``RAMNET_PATH_*`` number."""
    return str(native.ffi.string(_lib().ramnet_path_name(path)).decode())


def best_path(family: str) -> str:
    """Return the name of the code path ``auto`` picks for a kernel family on this CPU."""
    return path_name(_lib().ramnet_best_path(KERNEL_FAMILIES[family]))


def supported_paths(family: str) -> list[str]:
    """Return the names of every code path of a kernel family this CPU and build can run."""
    lib = _lib()
    family_id = KERNEL_FAMILIES[family]
    return [
        name for i, name in enumerate(PATH_NAMES) if lib.ramnet_path_supported(family_id, i) == 1
    ]


def cpu_features() -> list[str]:
    """Return the CPU features the C library detected."""
    return str(native.ffi.string(_lib().ramnet_cpu_features()).decode()).split()


def _address(array: np.ndarray, ctype: str) -> Any:
    return native.ffi.cast(ctype, array.__array_interface__["data"][0])


def _leading(array: np.ndarray) -> int:
    if array.ndim != 2:
        raise InvalidInputError("kernel operands must be 2-D")
    if array.size == 0 or array.shape[0] == 1:
        # numpy gives empty and single-row arrays arbitrary strides; their layout does not matter.
        return int(max(array.shape[1], 1))
    if array.shape[1] > 1 and array.strides[1] != array.itemsize:
        raise InvalidInputError("kernel operands need contiguous rows")
    stride = array.strides[0]
    if stride % array.itemsize or stride < array.shape[1] * array.itemsize:
        raise InvalidInputError("kernel operands need a positive row stride")
    return stride // array.itemsize


_GEMM = {
    np.dtype(np.int8): ("ramnet_gemm_s8s32", "int8_t *", np.dtype(np.int32), "int32_t *"),
    np.dtype(np.int16): ("ramnet_gemm_s16s64", "int16_t *", np.dtype(np.int64), "int64_t *"),
    np.dtype(np.int32): ("ramnet_gemm_s32s64", "int32_t *", np.dtype(np.int64), "int64_t *"),
}


def gemm(path: int, a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool) -> None:
    """Compute ``out = a @ b`` (or ``out += a @ b``) with an exact integer C kernel.

    Args:
        path: A ``RAMNET_PATH_*`` number, or -1 for the best one.
        a: (m, k) int8, int16 or int32 array with contiguous rows.
        b: (k, n) array of the same dtype with contiguous rows.
        out: (m, n) writable array with contiguous rows, int32 for int8 inputs, else int64.
        accumulate: Add to ``out`` instead of overwriting it.

    Raises:
        BackendUnavailableError: The extension is missing or the CPU lacks the path.
        InvalidInputError: Shapes, dtypes or layouts the kernel cannot take.
        KernelError: The kernel failed (scratch allocation).
    """
    lib = _lib()
    try:
        name, in_ctype, out_dtype, out_ctype = _GEMM[a.dtype]
    except KeyError:
        raise InvalidInputError(f"no C kernel for dtype {a.dtype}") from None
    if b.dtype != a.dtype or out.dtype != out_dtype:
        raise InvalidInputError(f"gemm dtypes {a.dtype} x {b.dtype} -> {out.dtype} do not match")
    m, k = a.shape
    k2, n = b.shape
    if k2 != k or out.shape != (m, n):
        raise InvalidInputError(f"gemm shapes {a.shape} x {b.shape} -> {out.shape} do not match")
    if not out.flags.writeable:
        raise InvalidInputError("gemm output is read-only")
    code = getattr(lib, name)(
        path,
        m,
        n,
        k,
        _address(a, in_ctype),
        _leading(a) if k else 1,
        _address(b, in_ctype),
        _leading(b),
        _address(out, out_ctype),
        _leading(out),
        1 if accumulate else 0,
    )
    check(code, name)


def gemm_s8_many(
    path: int,
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    products: Sequence[tuple[int, int]],
    out: Sequence[np.ndarray],
) -> None:
    """Compute ``out[t] = a[i] @ b[j]`` for each ``(i, j) = products[t]``, int8 -> int32, packing
    each operand once per panel rather than once per product.

    Args:
        path: A ``RAMNET_PATH_*`` number, or -1 for the best one.
        a: (m_i, k) int8 arrays with contiguous rows, all with the same k.
        b: (k, n_j) int8 arrays with contiguous rows.
        products: ``(i, j)`` index pairs into ``a`` and ``b``.
        out: One writable (m_i, n_j) int32 array with contiguous rows per product.

    Raises:
        BackendUnavailableError: The extension is missing or the CPU lacks the path.
        InvalidInputError: Shapes, dtypes, indices or layouts the kernel cannot take.
        KernelError: The kernel failed (scratch allocation).
    """
    lib = _lib()
    ffi = native.ffi
    if len(out) != len(products):
        raise InvalidInputError(f"{len(products)} products but {len(out)} outputs")
    k = a[0].shape[1] if a else (b[0].shape[0] if b else 0)
    for x in (*a, *b):
        if x.dtype != np.int8 or x.ndim != 2:
            raise InvalidInputError(f"gemm_s8_many takes 2-D int8 operands, not {x.dtype}")
    if any(x.shape[1] != k for x in a) or any(y.shape[0] != k for y in b):
        raise InvalidInputError("gemm_s8_many operands must share their inner dimension")
    for t, (i, j) in enumerate(products):
        if not (0 <= i < len(a) and 0 <= j < len(b)):
            raise InvalidInputError(f"product {t} names operands ({i}, {j}) that do not exist")
        o = out[t]
        if o.dtype != np.int32 or o.shape != (a[i].shape[0], b[j].shape[1]):
            raise InvalidInputError(
                f"output {t} must be int32 of shape {(a[i].shape[0], b[j].shape[1])},"
                f" not {o.dtype} {o.shape}"
            )
        if not o.flags.writeable:
            raise InvalidInputError(f"output {t} is read-only")
    code = lib.ramnet_gemm_s8s32_many(
        path,
        k,
        len(a),
        ffi.new("const int8_t *[]", [_address(x, "int8_t *") for x in a] or [ffi.NULL]),
        ffi.new("size_t[]", [x.shape[0] for x in a] or [0]),
        ffi.new("size_t[]", [_leading(x) if k else 1 for x in a] or [0]),
        len(b),
        ffi.new("const int8_t *[]", [_address(y, "int8_t *") for y in b] or [ffi.NULL]),
        ffi.new("size_t[]", [y.shape[1] for y in b] or [0]),
        ffi.new("size_t[]", [_leading(y) for y in b] or [0]),
        len(products),
        ffi.new("size_t[]", [i for i, _ in products] or [0]),
        ffi.new("size_t[]", [j for _, j in products] or [0]),
        ffi.new("int32_t *[]", [_address(o, "int32_t *") for o in out] or [ffi.NULL]),
        ffi.new("size_t[]", [_leading(o) for o in out] or [0]),
    )
    check(code, "ramnet_gemm_s8s32_many")


_STREAM_CTYPES = {
    np.dtype(np.float64): ("f64", "double *"),
    np.dtype(np.float32): ("f32", "float *"),
}


def stream(op: str, path: int, a: np.ndarray, *operands: np.ndarray, scalar: float = 0.0) -> None:
    """Run one STREAM kernel on contiguous 1-D float32 or float64 vectors.

    Args:
        op: ``copy``, ``scale``, ``add`` or ``triad``.
        path: A ``RAMNET_PATH_*`` number, or -1 for the best one.
        a: The destination.
        *operands: ``b`` (and ``c`` for add and triad), same dtype and length as ``a``.
        scalar: The multiplier of ``scale`` and ``triad``.

    Raises:
        BackendUnavailableError: The extension is missing or the CPU lacks the path.
        KernelError: The kernel rejected its arguments.
    """
    lib = _lib()
    suffix, ctype = _STREAM_CTYPES[a.dtype]
    func = getattr(lib, f"ramnet_stream_{op}_{suffix}")
    pointers = [_address(x, ctype) for x in (a, *operands)]
    if op in ("scale", "triad"):
        code = func(path, *pointers, scalar, a.size)
    else:
        code = func(path, *pointers, a.size)
    check(code, f"stream {op}")


def _tile_args(
    x: np.ndarray, tile: tuple[int, int], tile_row0: int, prefix: bytes, out: np.ndarray
) -> tuple[Any, ...]:
    # The arguments ramnet_pack_tiles and ramnet_hash_tiles share (csrc/ramnet.h, hash.h): the
    # matrix as rows of bytes, the tile shape in rows and bytes, the leaf prefix, the output.
    row_bytes = x.shape[1] * x.itemsize
    return (
        _address(x, "uint8_t *") if x.size else native.ffi.NULL,
        x.shape[0] if x.size else 0,
        row_bytes if x.size else 0,
        _leading(x) * x.itemsize if x.size else max(row_bytes, 1),
        tile[0],
        tile[1] * x.itemsize,
        tile_row0,
        prefix,
        len(prefix),
        _address(out, "uint8_t *") if out.size else native.ffi.NULL,
        out.size,
    )


def pack_tiles(
    x: np.ndarray, tile: tuple[int, int], tile_row0: int, prefix: bytes, out: np.ndarray
) -> None:
    """Pack ``x`` into Merkle leaves in ``out`` (see ``ramnet.orchid._tiles.pack_tiles``).

    Raises:
        BackendUnavailableError: The extension is missing.
        InvalidInputError: ``out`` is too small, or bad arguments.
    """
    code = _lib().ramnet_pack_tiles(*_tile_args(x, tile, tile_row0, prefix, out))
    check(code, "pack_tiles")


def hash_tiles(
    x: np.ndarray, tile: tuple[int, int], tile_row0: int, prefix: bytes, path: int, out: np.ndarray
) -> None:
    """Write the BLAKE3 digest of each leaf ``pack_tiles`` would pack into ``out`` (32 bytes
    each, see ``ramnet.orchid._tiles.tile_digests``).

    Raises:
        BackendUnavailableError: The extension is missing, or the path is not supported here.
        InvalidInputError: ``out`` is too small, or bad arguments.
        KernelError: Scratch memory could not be allocated.
    """
    code = _lib().ramnet_hash_tiles(path, *_tile_args(x, tile, tile_row0, prefix, out))
    check(code, "hash_tiles")


def hash_nodes(tag: bytes, children: bytes, path: int, out: np.ndarray) -> None:
    """Write BLAKE3(tag | children[64 i : 64 i + 64]) for each i into ``out`` (32 bytes each).

    Raises:
        BackendUnavailableError: The extension is missing, or the path is not supported here.
        InvalidInputError: A tag over 64 bytes, or ``out`` of the wrong size.
    """
    lib = _lib()
    count = len(children) // 64
    if len(children) % 64 or out.size != 32 * count:
        raise InvalidInputError("hash_nodes: children must be 64-byte pairs, out 32 per pair")
    code = lib.ramnet_hash_nodes(
        path,
        tag,
        len(tag),
        children,
        count,
        _address(out, "uint8_t *") if out.size else native.ffi.NULL,
    )
    check(code, "hash_nodes")
