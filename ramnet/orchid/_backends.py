"""Backends: who multiplies a block product, and on which code path.

A backend is chosen once per job. ``auto`` takes the C kernels when the extension is built, else the
numba kernels. Floating-point jobs always go through numpy's BLAS whatever the backend: no kernel
of ours would beat it, and its rounding is what users compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ramnet._errors import BackendUnavailableError, InvalidInputError
from ramnet.orchid import _bindings, _numba_shim

BackendName = Literal["auto", "c", "numba", "numpy"]
BACKENDS: tuple[str, ...] = ("auto", "c", "numba", "numpy")

INTEGER_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class Backend:
    """A resolved backend.

    Attributes:
        name: ``c``, ``numba`` or ``numpy``.
        code_path: What runs underneath: a C path (``avx512-vnni``, ...), ``numba-jit``, or
            ``blas`` / ``numpy-int`` for numpy.
        path_number: The ``RAMNET_PATH_*`` number for the C backend, else -1.
    """

    name: str
    code_path: str
    path_number: int = -1

    def gemm(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool) -> None:
        """Compute ``out = a @ b`` or ``out += a @ b`` for one block product.

        Raises:
            BackendUnavailableError, InvalidInputError, KernelError: As ``_bindings.gemm``.
        """
        if self.name == "c":
            if a.dtype == np.int8 and out.dtype == np.int64:
                self._gemm_s8_wide(a, b, out, accumulate)
            else:
                _bindings.gemm(self.path_number, a, b, out, accumulate)
        elif self.name == "numba":
            _numba_shim.kernels().gemm(a, b, out, accumulate)
        else:
            product = np.matmul(a, b, dtype=out.dtype)
            if accumulate:
                out += product
            else:
                out[...] = product

    def _gemm_s8_wide(
        self, a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool
    ) -> None:
        # The int8 kernel accumulates in int32, exact for K <= INT8_INT32_MAX_K: longer K is
        # cut into such chunks, each added into the int64 result.
        from ramnet.orchid._dtypes import INT8_INT32_MAX_K

        if not accumulate:
            out[...] = 0
        scratch = np.empty(out.shape, np.int32)
        for k0 in range(0, a.shape[1], INT8_INT32_MAX_K):
            k1 = min(a.shape[1], k0 + INT8_INT32_MAX_K)
            _bindings.gemm(self.path_number, a[:, k0:k1], b[k0:k1], scratch, False)
            out += scratch


def _family(dtype: np.dtype) -> str:
    return "gemm_s8" if dtype == np.int8 else "gemm_wide"


def resolve(name: str, dtype: np.dtype, path: str = "auto") -> Backend:
    """Resolve a backend name for a job of the given input dtype.

    Args:
        name: ``auto``, ``c``, ``numba`` or ``numpy``.
        dtype: The job's input dtype.
        path: For the C backend, a code path name to force (``auto`` picks the best).

    Returns:
        The backend to run the job with.

    Raises:
        InvalidInputError: An unknown backend name.
        BackendUnavailableError: The backend or path cannot run here.
    """
    if name not in BACKENDS:
        raise InvalidInputError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if dtype in FLOAT_DTYPES:
        return Backend("numpy", "blas")
    if name == "auto":
        name = "c" if _bindings.AVAILABLE else "numba"
    if name == "c":
        number = _bindings.path_number(path)
        family = _family(dtype)
        if number == _bindings.PATH_AUTO:
            chosen = _bindings.best_path(family)
        elif path in _bindings.supported_paths(family):
            chosen = path
        else:
            raise BackendUnavailableError(
                f"code path {path!r} cannot run {dtype} GEMM on this CPU; supported: "
                f"{', '.join(_bindings.supported_paths(family))}"
            )
        return Backend("c", chosen, _bindings.path_number(chosen))
    if name == "numba":
        if not _numba_shim.available():
            raise BackendUnavailableError("numba is not installed")
        return Backend("numba", "numba-jit")
    return Backend("numpy", "numpy-int")
