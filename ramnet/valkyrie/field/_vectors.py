"""F_{p^2} vector kernels for the sum-check protocol: eq tables, rounds, folds, inner products.

An F_{p^2} element a + b*i is stored as the pair (a, b) of canonical F_p elements, an array of
them has shape (n, 2) uint64. The kernels are scalar and linear-time, in C (csrc/field.c) or
numba, with the same bits from both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ramnet._errors import InvalidInputError, ShapeMismatchError
from ramnet.valkyrie.field import _binding
from ramnet.valkyrie.field._scalar import P61, Fp2
from ramnet.valkyrie.field._sums import field_array

_ptr = _binding.pointer


def _fp2_vector(values: Any, what: str) -> np.ndarray:
    a = field_array(values, what)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ShapeMismatchError(f"{what} must have shape (n, 2) (re, im), got {a.shape}")
    return a


def fp2_eq_table(r: Any, *, backend: str = "auto") -> np.ndarray:
    """The eq table of a point r in F_{p^2}^nvars.

    ``out[b] = prod_t (r_t if bit t of b else 1 - r_t)``, so that ``out @ f`` evaluates the
    multilinear extension of f (indexed with variable t as bit t) at r.

    Args:
        r: (nvars, 2) canonical F_{p^2} elements (nvars <= 40).
        backend: ``auto``, ``c`` or ``numba``.

    Returns:
        (2**nvars, 2) uint64 array.

    Raises:
        InvalidInputError: Bad shape or non-canonical values.
        BackendUnavailableError: The backend is not available here.
    """
    r = _fp2_vector(np.asarray(r).reshape(-1, 2) if np.size(r) == 0 else r, "r")
    if r.shape[0] > 40:
        raise InvalidInputError(f"eq table of {r.shape[0]} variables is too large")
    if _binding.backend(backend) == "numba":
        return np.asarray(_binding.numba_kernels().eq_table(r))
    out = np.empty((1 << r.shape[0], 2), np.uint64)
    code = _binding.lib().ramnet_p61x2_eq_table(r.shape[0], _ptr(r), _ptr(out))
    _binding.check(code, "ramnet_p61x2_eq_table")
    return out


def _pair(u: Any, v: Any) -> tuple[np.ndarray, np.ndarray]:
    u = _fp2_vector(u, "u")
    v = _fp2_vector(v, "v")
    if u.shape != v.shape:
        raise ShapeMismatchError(f"u and v differ in shape: {u.shape} vs {v.shape}")
    return u, v


def fp2_sumcheck_round(u: Any, v: Any, *, backend: str = "auto") -> np.ndarray:
    """One sum-check round over the lowest variable of ``g(X) = sum_b u(X, b) v(X, b)``.

    u and v are tables of multilinear functions whose lowest index bit is X: pair t is
    ``(u[2t], u[2t+1]) = (u(0, t), u(1, t))``.

    Args:
        u: (n, 2) canonical F_{p^2} elements, n even.
        v: (n, 2) likewise.
        backend: ``auto``, ``c`` or ``numba``.

    Returns:
        (3, 2) uint64 array: g(0), g(1), g(2). g(0) + g(1) equals ``fp2_dot(u, v)``.

    Raises:
        InvalidInputError: Bad shapes, odd n, or non-canonical values.
        BackendUnavailableError: The backend is not available here.
    """
    u, v = _pair(u, v)
    if u.shape[0] % 2:
        raise ShapeMismatchError(f"sum-check tables need an even length, got {u.shape[0]}")
    if _binding.backend(backend) == "numba":
        return np.asarray(_binding.numba_kernels().sumcheck_round(u, v))
    g = np.empty((3, 2), np.uint64)
    code = _binding.lib().ramnet_p61x2_sumcheck_round(u.shape[0], _ptr(u), _ptr(v), _ptr(g))
    _binding.check(code, "ramnet_p61x2_sumcheck_round")
    return g


def fp2_fold(u: Any, r: Any, *, backend: str = "auto") -> np.ndarray:
    """Fix the lowest variable of a table to r: ``out[t] = u[2t] + r (u[2t+1] - u[2t])``.

    The input is not modified; a new array is returned.

    Args:
        u: (n, 2) canonical F_{p^2} elements, n even.
        r: An F_{p^2} element: a (re, im) pair or a (2,) array.
        backend: ``auto``, ``c`` or ``numba``.

    Returns:
        (n/2, 2) uint64 array.

    Raises:
        InvalidInputError: Bad shapes, odd n, or non-canonical values.
        BackendUnavailableError: The backend is not available here.
    """
    u = _fp2_vector(u, "u")
    r = field_array(r, "r").reshape(-1)
    if r.shape != (2,):
        raise ShapeMismatchError(f"r must be one (re, im) pair, got shape {np.shape(r)}")
    if u.shape[0] % 2:
        raise ShapeMismatchError(f"fold needs an even length, got {u.shape[0]}")
    if _binding.backend(backend) == "numba":
        return np.asarray(_binding.numba_kernels().fold(u, r))
    work = u.copy()
    code = _binding.lib().ramnet_p61x2_fold(u.shape[0], _ptr(work), _ptr(r))
    _binding.check(code, "ramnet_p61x2_fold")
    half: np.ndarray = work[: u.shape[0] // 2].copy()
    return half


class SumcheckTables:
    """The prover's two tables for sum-check rounds, validated once and folded in place.

    ``fp2_sumcheck_round`` and ``fp2_fold`` check and copy their inputs on every call, which
    costs more than the arithmetic at small sizes; a prover runs log n rounds on the same
    tables, so this class checks them once and then calls the kernels directly.
    """

    def __init__(self, u: Any, v: Any, *, backend: str = "auto") -> None:
        """Args:
            u, v: (n, 2) canonical F_{p^2} tables of one power-of-two length n.
            backend: ``auto``, ``c`` or ``numba``.

        Raises:
            InvalidInputError: Bad shapes, a length that is not a power of two, or
                non-canonical values.
        """
        u, v = _pair(u, v)
        n = u.shape[0]
        if n == 0 or n & (n - 1):
            raise ShapeMismatchError(f"sum-check tables need a power-of-two length, got {n}")
        self._backend = _binding.backend(backend)
        self._u, self._v = u.copy(), v.copy()
        self._n = int(n)
        # The tables are folded in place, so their addresses (and those of the round's output
        # and the fold point) are cast once: a round's arithmetic at n = 2048 costs less than
        # the conversions would on every call.
        self._g = np.empty((3, 2), np.uint64)
        self._point = np.empty(2, np.uint64)
        if self._backend == "c":
            self._ptrs = tuple(_ptr(x) for x in (self._u, self._v, self._g, self._point))

    @property
    def length(self) -> int:
        """The current table length (halved by each fold)."""
        return self._n

    def round(self) -> np.ndarray:
        """g(0), g(1), g(2) of the round over the lowest variable, as a (3, 2) array."""
        if self._n < 2:
            raise ShapeMismatchError("no variable left to sum over")
        if self._backend == "numba":
            u, v = self._u[: self._n], self._v[: self._n]
            return np.asarray(_binding.numba_kernels().sumcheck_round(u, v))
        pu, pv, pg, _ = self._ptrs
        code = _binding.lib().ramnet_p61x2_sumcheck_round(self._n, pu, pv, pg)
        _binding.check(code, "ramnet_p61x2_sumcheck_round")
        return self._g.copy()

    def fold(self, r: Fp2) -> None:
        """Bind the lowest variable to r in both tables (halves their length).

        Raises:
            InvalidInputError: r is not a canonical F_{p^2} element.
        """
        if self._n < 2:
            raise ShapeMismatchError("no variable left to fold")
        if not (0 <= r[0] < P61 and 0 <= r[1] < P61):
            raise InvalidInputError("r must be a canonical F_{p^2} element")
        point = self._point
        point[0], point[1] = r
        if self._backend == "numba":
            for name in ("_u", "_v"):
                table = getattr(self, name)
                table[: self._n // 2] = _binding.numba_kernels().fold(table[: self._n], point)
        else:
            lib = _binding.lib()
            pu, pv, _, pr = self._ptrs
            for pointer in (pu, pv):
                code = lib.ramnet_p61x2_fold(self._n, pointer, pr)
                _binding.check(code, "ramnet_p61x2_fold")
        self._n //= 2

    def fold_and_round(self, r: Fp2) -> np.ndarray | None:
        """``fold(r)``, then ``round()`` of the folded tables: a prover's step in one kernel call.

        Returns:
            The next round's (3, 2) array, or None when the fold bound the last variable.

        Raises:
            InvalidInputError: r is not a canonical F_{p^2} element.
        """
        if self._backend == "numba" or self._n < 2:
            self.fold(r)
            return self.round() if self._n >= 2 else None
        if not (0 <= r[0] < P61 and 0 <= r[1] < P61):
            raise InvalidInputError("r must be a canonical F_{p^2} element")
        self._point[0], self._point[1] = r
        pu, pv, pg, pr = self._ptrs
        code = _binding.lib().ramnet_p61x2_fold_round(self._n, pu, pv, pr, pg)
        _binding.check(code, "ramnet_p61x2_fold_round")
        self._n //= 2
        return self._g.copy() if self._n >= 2 else None

    def values(self) -> tuple[Fp2, Fp2]:
        """(u[0], v[0]): the tables' values once every variable is bound."""
        return (int(self._u[0, 0]), int(self._u[0, 1])), (int(self._v[0, 0]), int(self._v[0, 1]))


def fp2_dot(u: Any, v: Any, *, backend: str = "auto") -> np.ndarray:
    """The inner product ``sum_t u[t] v[t]`` over F_{p^2} (no conjugation).

    Args:
        u: (n, 2) canonical F_{p^2} elements.
        v: (n, 2) likewise.
        backend: ``auto``, ``c`` or ``numba``.

    Returns:
        (2,) uint64 array (re, im).

    Raises:
        InvalidInputError: Bad shapes or non-canonical values.
        BackendUnavailableError: The backend is not available here.
    """
    u, v = _pair(u, v)
    if _binding.backend(backend) == "numba":
        return np.asarray(_binding.numba_kernels().dot(u, v))
    out = np.empty(2, np.uint64)
    code = _binding.lib().ramnet_p61x2_dot(u.shape[0], _ptr(u), _ptr(v), _ptr(out))
    _binding.check(code, "ramnet_p61x2_dot")
    return out
