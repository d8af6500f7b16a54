"""A non-interactive sum-check proof that C = A·B (Thaler's matrix-product protocol).

Over F_p with p = 2^61 - 1 and challenges in F_{p^2} = F_p[i]/(i^2 + 1) (p ≡ 3 mod 4). Matrices
are read as multilinear extensions over {0,1}^log2 of their dimensions, padded with zeros to powers
of two; variable t of an index is its bit t.

Protocol. The transcript first absorbs the caller's seed (it binds the job spec and the
commitments of A, B and C). Challenges r1 (log M), r2 (log N) follow. The prover claims
H = C~(r1, r2) and proves H = sum over k of A~(r1, k)·B~(k, r2) with log K rounds of sum-check,
each a quadratic g_j given by g_j(0), g_j(1), g_j(2); challenge r3_j binds variable j. The proof
ends with the two values A~(r1, r3) and B~(r3, r2).

The verifier checks, without the matrices, that every round is consistent and the last claim equals
A~(r1, r3)·B~(r3, r2); with the matrices (or anyone holding them, e.g. against their commitments),
it evaluates C~(r1, r2), A~(r1, r3) and B~(r3, r2) itself, O(MN + MK + KN). Soundness error is at
most (log M + log N + 2 log K) / p^2 < 2^-115.

Exactness: C = A·B over the integers follows from C ≡ A·B (mod p) when every entry of C and of
A·B lies in (-p/2, p/2). The prover refuses jobs where K·max|A|·max|B| >= 2^60 (it covers every
int8 and int16 job of K < 2^29, and int32 jobs within that bound) and floats; the verifier checks
|C| < 2^60 entrywise when it is given C.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ramnet._errors import ProofUnsupportedError, TraceFormatError
from ramnet.orchid._pool import default_threads, parallel_map
from ramnet.valkyrie._transcript import Transcript
from ramnet.valkyrie.field import (
    P61,
    Fp2,
    SumcheckTables,
    fp2_add,
    fp2_bytes,
    fp2_dot,
    fp2_eq_table,
    fp2_mul,
    fp2_scale,
    fp2_sub,
    weighted_colsums,
    weighted_rowsums,
)

SCHEME = 1  # sum-check over F_{(2^61-1)^2}
PROTOCOL = b"ramnet-matmul-sumcheck-v1"
RANGE_LIMIT = 1 << 60
_INV2 = (P61 + 1) // 2


def _log2(size: int) -> int:
    return max(0, (size - 1).bit_length())


@dataclass(frozen=True)
class MatmulProof:
    """A sum-check proof of C = A·B.

    Attributes:
        log_m, log_k, log_n: Variables per dimension (log2 of the padded sizes).
        claim: H = C~(r1, r2).
        rounds: (g(0), g(1), g(2)) of each of the log_k rounds.
        a_eval: A~(r1, r3).
        b_eval: B~(r3, r2).
    """

    log_m: int
    log_k: int
    log_n: int
    claim: Fp2
    rounds: tuple[tuple[Fp2, Fp2, Fp2], ...]
    a_eval: Fp2
    b_eval: Fp2

    def to_bytes(self) -> bytes:
        """Serialise: u8 scheme, u8 log_m, u8 log_k, u8 log_n, then F_{p^2} elements (16 bytes
        each): claim, 3 per round, a_eval, b_eval."""
        parts = [struct.pack("<BBBB", SCHEME, self.log_m, self.log_k, self.log_n)]
        parts.append(fp2_bytes(self.claim))
        for g in self.rounds:
            parts.extend(fp2_bytes(x) for x in g)
        parts += [fp2_bytes(self.a_eval), fp2_bytes(self.b_eval)]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> MatmulProof:
        """Parse ``to_bytes`` output.

        Raises:
            TraceFormatError: A wrong scheme, a length that does not match log_k, or an element
                that is not reduced mod p.
        """
        if len(data) < 4:
            raise TraceFormatError("proof: too short")
        scheme, lm, lk, ln = struct.unpack_from("<BBBB", data)
        if scheme != SCHEME or max(lm, lk, ln) > 62:
            raise TraceFormatError(f"proof: unknown scheme {scheme} or sizes")
        if len(data) != 4 + 16 * (3 + 3 * lk):
            raise TraceFormatError("proof: length does not match its round count")
        words = struct.unpack_from(f"<{2 * (3 + 3 * lk)}Q", data, 4)
        if any(w >= P61 for w in words):
            raise TraceFormatError("proof: a field element is not reduced")
        elems = [(words[t], words[t + 1]) for t in range(0, len(words), 2)]
        rounds = tuple((elems[1 + 3 * j], elems[2 + 3 * j], elems[3 + 3 * j]) for j in range(lk))
        return cls(lm, lk, ln, elems[0], rounds, elems[-2], elems[-1])

    @property
    def size(self) -> int:
        """Serialised size in bytes."""
        return 4 + 16 * (3 + 3 * self.log_k)


@dataclass(frozen=True)
class Challenges:
    """The verifier's random point, re-derived from the transcript."""

    r1: tuple[Fp2, ...]
    r2: tuple[Fp2, ...]
    r3: tuple[Fp2, ...]


def _weights(r: list[Fp2] | tuple[Fp2, ...], size: int) -> np.ndarray:
    # eq(r, .) on the first `size` indices, as (2, size): real parts, then imaginary parts.
    table = fp2_eq_table(np.array(r, dtype=np.uint64).reshape(len(r), 2))
    return np.ascontiguousarray(table[:size].T)


def _as_fp2_vector(sums: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros((length, 2), np.uint64)
    out[: sums.shape[1]] = sums.T
    return out


def check_range(a: np.ndarray, b: np.ndarray) -> None:
    """Refuse operands the proof cannot cover exactly (see the module docstring).

    Raises:
        ProofUnsupportedError: Float operands, or K·max|A|·max|B| >= 2^60.
    """
    if a.dtype.kind != "i" or b.dtype.kind != "i":
        raise ProofUnsupportedError(
            f"proofs cover exact integer jobs only, not {a.dtype}; float results are range-checked"
        )
    k = a.shape[1]
    # The dtypes' own ranges settle most jobs (every int8 one) without reading the data.
    dtype_bound = k * (1 << (8 * a.dtype.itemsize - 1)) * (1 << (8 * b.dtype.itemsize - 1))
    if dtype_bound < RANGE_LIMIT:
        return
    bound = k * _max_abs(a) * _max_abs(b)
    if bound >= RANGE_LIMIT:
        raise ProofUnsupportedError(
            f"K·max|A|·max|B| = {bound} >= 2^60: the proof's field cannot hold this product exactly"
        )


def _max_abs(x: np.ndarray) -> int:
    return max(abs(int(x.min())), abs(int(x.max()))) if x.size else 0


def _interpolate(g: tuple[Fp2, Fp2, Fp2], r: Fp2) -> Fp2:
    # The quadratic through (0, g0), (1, g1), (2, g2), evaluated at r.
    one, two = (1, 0), (2, 0)
    r_1, r_2 = fp2_sub(r, one), fp2_sub(r, two)
    t0 = fp2_scale(fp2_mul(fp2_mul(r_1, r_2), g[0]), _INV2)
    t1 = fp2_mul(fp2_mul(r, r_2), g[1])
    t2 = fp2_scale(fp2_mul(fp2_mul(r, r_1), g[2]), _INV2)
    return fp2_add(fp2_sub(t0, t1), t2)


def prove_matmul(
    a: np.ndarray, b: np.ndarray, seed: bytes, *, threads: int | None = None
) -> MatmulProof:
    """Prove C = A·B for the C the caller committed to (through ``seed``).

    Args:
        a: (M, K) integer matrix.
        b: (K, N) integer matrix.
        seed: Bytes binding the job spec and the commitments (see ``ramnet.valkyrie._trace``).
        threads: Threads for the matrix reductions; all cores when None.

    Returns:
        The proof (its claim is A·B's extension at the challenge point, which equals C's exactly
        when C = A·B).

    Raises:
        ProofUnsupportedError: Operands the field cannot cover (``check_range``).
    """
    check_range(a, b)
    m, k = a.shape
    n = b.shape[1]
    lm, lk, ln = _log2(m), _log2(k), _log2(n)
    transcript = Transcript(PROTOCOL)
    transcript.absorb(b"seed", seed)
    transcript.absorb(b"dims", struct.pack("<QQQ", m, k, n))
    r1 = transcript.challenges(lm)
    r2 = transcript.challenges(ln)
    u, v = _reduce_operands(a, b, _weights(r1, m), _weights(r2, n), threads, 1 << lk)
    tables = SumcheckTables(u, v)
    rounds = []
    g: np.ndarray | None = None
    if lk:
        # g(0) + g(1) of the first round is the claim: no separate inner product.
        g = tables.round()
        claim = fp2_add(_tuple(g[0]), _tuple(g[1]))
    else:
        claim = _tuple(fp2_dot(u, v))
    transcript.absorb(b"claim", fp2_bytes(claim))
    while g is not None:
        (g0r, g0i), (g1r, g1i), (g2r, g2i) = g.tolist()
        rounds.append(((g0r, g0i), (g1r, g1i), (g2r, g2i)))
        transcript.absorb(b"round", g.astype("<u8").tobytes())
        g = tables.fold_and_round(transcript.challenge_fp2())
    a_eval, b_eval = tables.values()
    return MatmulProof(lm, lk, ln, claim, tuple(rounds), a_eval, b_eval)


def _reduce_operands(
    a: np.ndarray,
    b: np.ndarray,
    eq1: np.ndarray,
    eq2: np.ndarray,
    threads: int | None,
    length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """u = eq1·A and v = B·eq2 as F_{p^2} tables of ``length`` (zero-padded).

    Each reduction is cut in two (A's columns, B's rows) and the four pieces share the threads:
    at n = 2048 a reduction takes about as long as handing it to the pool twice would cost, and
    the two differ in speed, so whole reductions side by side would leave a thread idle."""
    k = a.shape[1]
    half_a, half_b = k // 2, b.shape[0] // 2
    pieces = [
        lambda: weighted_colsums(a[:, :half_a], eq1, threads=1),
        lambda: weighted_colsums(a[:, half_a:], eq1, threads=1),
        lambda: weighted_rowsums(b[:half_b], eq2, threads=1),
        lambda: weighted_rowsums(b[half_b:], eq2, threads=1),
    ]
    sums = parallel_map(lambda piece: piece(), pieces, threads or default_threads())
    u = _as_fp2_vector(np.hstack(sums[:2]), length)
    v = _as_fp2_vector(np.hstack(sums[2:]), length)
    return u, v


def _tuple(x: np.ndarray) -> Fp2:
    return (int(x[0]), int(x[1]))


def verify_rounds(
    proof: MatmulProof, seed: bytes, m: int, k: int, n: int
) -> tuple[str | None, Challenges | None]:
    """Check a proof's internal consistency and re-derive its challenges (no matrices needed).

    Returns:
        (failure, challenges): failure is None when consistent, else what failed
        (``"proof shape"``, ``"proof round 7"``, ``"proof final claim"``); challenges is None
        when the proof's sizes do not fit the job (there is no point to evaluate at).
    """
    if (proof.log_m, proof.log_k, proof.log_n) != (_log2(m), _log2(k), _log2(n)):
        return "proof shape", None
    transcript = Transcript(PROTOCOL)
    transcript.absorb(b"seed", seed)
    transcript.absorb(b"dims", struct.pack("<QQQ", m, k, n))
    r1 = tuple(transcript.challenges(proof.log_m))
    r2 = tuple(transcript.challenges(proof.log_n))
    claim = proof.claim
    transcript.absorb(b"claim", fp2_bytes(claim))
    r3 = []
    failure = None
    for j, g in enumerate(proof.rounds):
        if failure is None and fp2_add(g[0], g[1]) != claim:
            failure = f"proof round {j + 1}"
        transcript.absorb(b"round", b"".join(fp2_bytes(x) for x in g))
        r = transcript.challenge_fp2()
        r3.append(r)
        claim = _interpolate(g, r)
    if failure is None and fp2_mul(proof.a_eval, proof.b_eval) != claim:
        failure = "proof final claim"
    return failure, Challenges(r1, r2, tuple(r3))


def check_evaluations(
    proof: MatmulProof,
    challenges: Challenges,
    a: np.ndarray | None,
    b: np.ndarray | None,
    c: np.ndarray | None,
    *,
    threads: int | None = None,
) -> list[tuple[str, bool]]:
    """Evaluate the matrices' extensions at the proof's point and compare with its claims.

    Returns:
        ``[(name, ok), ...]`` for each matrix given: ``"proof evaluation of A"`` etc.
    """
    out = []
    r1, r2, r3 = challenges.r1, challenges.r2, challenges.r3
    if a is not None:
        m, k = a.shape
        u = _as_fp2_vector(weighted_colsums(a, _weights(r1, m), threads=threads), k)
        value = _tuple(fp2_dot(u, np.ascontiguousarray(_weights(r3, k).T)))
        out.append(("proof evaluation of A", value == proof.a_eval))
    if b is not None:
        k, n = b.shape
        v = _as_fp2_vector(weighted_rowsums(b, _weights(r2, n), threads=threads), k)
        value = _tuple(fp2_dot(v, np.ascontiguousarray(_weights(r3, k).T)))
        out.append(("proof evaluation of B", value == proof.b_eval))
    if c is not None:
        m, n = c.shape
        ok = c.dtype.kind == "i" and (c.dtype.itemsize <= 4 or _max_abs(c) < RANGE_LIMIT)
        if ok:
            y = _as_fp2_vector(weighted_rowsums(c, _weights(r2, n), threads=threads), m)
            value = _tuple(fp2_dot(y, np.ascontiguousarray(_weights(r1, m).T)))
            ok = value == proof.claim
        out.append(("proof evaluation of C", ok))
    return out
