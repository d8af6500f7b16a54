"""numba versions of the prime-field kernels of csrc/field.c: the same results, bit for bit.

Loaded only through ``_binding.numba_kernels()``: importing this module imports numba. numba has
no 128-bit integers, so products modulo p = 2^61 - 1 are formed from 31-bit halves, and the
weighted sums split each weight into limbs (31 + 30 bits for int8/int16 entries, 21 + 21 + 19 bits
for int32) whose products accumulate exactly in int64 for a chunk of rows or columns before one
reduction, as in C. int64 entries are reduced mod p and multiplied element by element. All field
values are held as int64 in [0, p) (p < 2^63) and returned as uint64.
"""

from __future__ import annotations

import numba
import numpy as np

from ramnet.valkyrie.field._scalar import P61

_jit = numba.njit(nogil=True, cache=True, fastmath=False, boundscheck=False)

P = np.int64(P61)
_NB = 2048  # columns per chunk in the row sums, as in csrc/field.c


@_jit
def _mod_s64(s):  # type: ignore[no-untyped-def]
    # s mod p in [0, p) for any int64 s (s = hi * 2^61 + lo and 2^61 = 1 mod p).
    r = (s & P) + (s >> 61)
    if r < 0:
        r += P
    if r >= P:
        r -= P
    return r


@_jit
def _rot61(r, k):  # type: ignore[no-untyped-def]
    # r * 2^k mod p for r in [0, p), 0 <= k < 61.
    if k == 0:
        return r
    return ((r << k) | (r >> (61 - k))) & P


@_jit
def _add(a, b):  # type: ignore[no-untyped-def]
    s = a + b
    return s - P if s >= P else s


@_jit
def _sub(a, b):  # type: ignore[no-untyped-def]
    return a - b if a >= b else a + P - b


@_jit
def _mul(a, b):  # type: ignore[no-untyped-def]
    # a * b mod p for a, b in [0, p), from 31-bit halves: 2^62 = 2 and 2^61 = 1 (mod p).
    mask31 = np.int64((1 << 31) - 1)
    a0 = a & mask31
    a1 = a >> 31
    b0 = b & mask31
    b1 = b >> 31
    low = a0 * b0
    low = (low & P) + (low >> 61)
    mid = a1 * b0 + a0 * b1
    mid_part = (mid >> 30) + ((mid & np.int64((1 << 30) - 1)) << 31)
    s = low + 2 * (a1 * b1) + mid_part
    r = (s & P) + (s >> 61)
    return r - P if r >= P else r


@_jit
def _vecmat_limbs(x, limbs, shifts, rows_per_flush, out):  # type: ignore[no-untyped-def]
    # out[g, j] = sum_i w[g, i] x[i, j] mod p, with limbs[g, q, i] the q-th limb of w[g, i].
    m, n = x.shape
    nw, nl, _ = limbs.shape
    acc = np.zeros((nw, nl, n), np.int64)
    count = 0
    for i in range(m):
        row = x[i]
        for g in range(nw):
            for q in range(nl):
                c = limbs[g, q, i]
                a = acc[g, q]
                for j in range(n):
                    a[j] += c * np.int64(row[j])
        count += 1
        if count == rows_per_flush or i == m - 1:
            count = 0
            for g in range(nw):
                for j in range(n):
                    t = out[g, j]
                    for q in range(nl):
                        t = _add(t, _rot61(_mod_s64(acc[g, q, j]), shifts[q]))
                        acc[g, q, j] = 0
                    out[g, j] = t


@_jit
def _matvec_limbs(x, limbs, shifts, out):  # type: ignore[no-untyped-def]
    # out[g, i] = sum_j x[i, j] w[g, j] mod p, with limbs[g, q, j] the q-th limb of w[g, j].
    m, n = x.shape
    nw, nl, _ = limbs.shape
    for i in range(m):
        row = x[i]
        for g in range(nw):
            t = np.int64(0)
            for q in range(nl):
                c = limbs[g, q]
                for j0 in range(0, n, _NB):
                    s = np.int64(0)
                    for j in range(j0, min(n, j0 + _NB)):
                        s += c[j] * np.int64(row[j])
                    t = _add(t, _rot61(_mod_s64(s), shifts[q]))
            out[g, i] = t


@_jit
def _vecmat_mod(x, w, out):  # type: ignore[no-untyped-def]
    # int64 entries: reduce each entry, multiply modulo p.
    m, n = x.shape
    nw = w.shape[0]
    for i in range(m):
        row = x[i]
        for g in range(nw):
            wi = w[g, i]
            o = out[g]
            for j in range(n):
                o[j] = _add(o[j], _mul(wi, _mod_s64(row[j])))


@_jit
def _matvec_mod(x, w, out):  # type: ignore[no-untyped-def]
    m, n = x.shape
    nw = w.shape[0]
    for i in range(m):
        row = x[i]
        for g in range(nw):
            wg = w[g]
            t = np.int64(0)
            for j in range(n):
                t = _add(t, _mul(wg[j], _mod_s64(row[j])))
            out[g, i] = t


def _limbs(w: np.ndarray, itemsize: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Split (nw, k) weights into (nw, L, k) int64 limbs; return limbs, shifts, rows per flush."""
    bits, count, rows = (31, 2, 1 << 16) if itemsize <= 2 else (21, 3, 2048)
    mask = np.int64((1 << bits) - 1)
    parts = [(w >> (bits * q)) & mask if q + 1 < count else w >> (bits * q) for q in range(count)]
    shifts = np.array([bits * q for q in range(count)], dtype=np.int64)
    return np.ascontiguousarray(np.stack(parts, axis=1)), shifts, rows


def vecmat(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted column sums: ``out[g, j] = sum_i w[g, i] * x[i, j] mod p``.

    Args:
        x: (m, n) int8/int16/int32/int64 array.
        w: (nw, m) int64 array of weights in [0, p).

    Returns:
        (nw, n) uint64 array.
    """
    out = np.zeros((w.shape[0], x.shape[1]), np.int64)
    if x.size and w.size:
        if x.dtype == np.int64:
            _vecmat_mod(x, w, out)
        else:
            limbs, shifts, rows = _limbs(w, x.dtype.itemsize)
            _vecmat_limbs(x, limbs, shifts, rows, out)
    return out.view(np.uint64)


def matvec(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted row sums: ``out[g, i] = sum_j x[i, j] * w[g, j] mod p``.

    Args:
        x: (m, n) int8/int16/int32/int64 array.
        w: (nw, n) int64 array of weights in [0, p).

    Returns:
        (nw, m) uint64 array.
    """
    out = np.zeros((w.shape[0], x.shape[0]), np.int64)
    if x.size and w.size:
        if x.dtype == np.int64:
            _matvec_mod(x, w, out)
        else:
            limbs, shifts, _ = _limbs(w, x.dtype.itemsize)
            _matvec_limbs(x, limbs, shifts, out)
    return out.view(np.uint64)


# ---- F_{p^2}: arrays of shape (n, 2) int64, (re, im) ----


@_jit
def _fp2_mul(ar, ai, br, bi):  # type: ignore[no-untyped-def]
    return (
        _sub(_mul(ar, br), _mul(ai, bi)),
        _add(_mul(ar, bi), _mul(ai, br)),
    )


@_jit
def _eq_table(r, out):  # type: ignore[no-untyped-def]
    out[0, 0] = 1
    out[0, 1] = 0
    for t in range(r.shape[0]):
        half = 1 << t
        for b in range(half):
            hr, hi = _fp2_mul(out[b, 0], out[b, 1], r[t, 0], r[t, 1])
            out[b + half, 0] = hr
            out[b + half, 1] = hi
            out[b, 0] = _sub(out[b, 0], hr)
            out[b, 1] = _sub(out[b, 1], hi)


@_jit
def _sumcheck_round(u, v, g):  # type: ignore[no-untyped-def]
    for k in range(6):
        g[k // 2, k % 2] = 0
    for t in range(0, u.shape[0], 2):
        u0r, u0i, u1r, u1i = u[t, 0], u[t, 1], u[t + 1, 0], u[t + 1, 1]
        v0r, v0i, v1r, v1i = v[t, 0], v[t, 1], v[t + 1, 0], v[t + 1, 1]
        u2r = _sub(_add(u1r, u1r), u0r)
        u2i = _sub(_add(u1i, u1i), u0i)
        v2r = _sub(_add(v1r, v1r), v0r)
        v2i = _sub(_add(v1i, v1i), v0i)
        pr, pi = _fp2_mul(u0r, u0i, v0r, v0i)
        g[0, 0] = _add(g[0, 0], pr)
        g[0, 1] = _add(g[0, 1], pi)
        pr, pi = _fp2_mul(u1r, u1i, v1r, v1i)
        g[1, 0] = _add(g[1, 0], pr)
        g[1, 1] = _add(g[1, 1], pi)
        pr, pi = _fp2_mul(u2r, u2i, v2r, v2i)
        g[2, 0] = _add(g[2, 0], pr)
        g[2, 1] = _add(g[2, 1], pi)


@_jit
def _fold(u, rr, ri, out):  # type: ignore[no-untyped-def]
    for t in range(out.shape[0]):
        ar, ai, br, bi = u[2 * t, 0], u[2 * t, 1], u[2 * t + 1, 0], u[2 * t + 1, 1]
        pr, pi = _fp2_mul(rr, ri, _sub(br, ar), _sub(bi, ai))
        out[t, 0] = _add(ar, pr)
        out[t, 1] = _add(ai, pi)


@_jit
def _dot(u, v, out):  # type: ignore[no-untyped-def]
    sr = np.int64(0)
    si = np.int64(0)
    for t in range(u.shape[0]):
        pr, pi = _fp2_mul(u[t, 0], u[t, 1], v[t, 0], v[t, 1])
        sr = _add(sr, pr)
        si = _add(si, pi)
    out[0] = sr
    out[1] = si


def eq_table(r: np.ndarray) -> np.ndarray:
    """Return the (2^nvars, 2) uint64 eq table of (nvars, 2) canonical points ``r``."""
    out = np.zeros((1 << r.shape[0], 2), np.int64)
    _eq_table(r.view(np.int64), out)
    return out.view(np.uint64)


def sumcheck_round(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return g(0), g(1), g(2) as a (3, 2) uint64 array (see ``ramnet_p61x2_sumcheck_round``)."""
    g = np.zeros((3, 2), np.int64)
    _sumcheck_round(u.view(np.int64), v.view(np.int64), g)
    return g.view(np.uint64)


def fold(u: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Return the (n/2, 2) uint64 fold ``u[2t] + r (u[2t+1] - u[2t])`` of (n, 2) ``u``."""
    out = np.zeros((u.shape[0] // 2, 2), np.int64)
    r64 = r.view(np.int64)
    _fold(u.view(np.int64), r64[0], r64[1], out)
    return out.view(np.uint64)


def dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return sum_t u[t] v[t] over (n, 2) arrays as a (2,) uint64 array."""
    out = np.zeros(2, np.int64)
    _dot(u.view(np.int64), v.view(np.int64), out)
    return out.view(np.uint64)
