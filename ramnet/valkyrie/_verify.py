"""``verify_trace``: check a trace offline, with or without the matrices."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ramnet._errors import TraceFormatError
from ramnet.orchid._io import load_npy
from ramnet.orchid._pool import default_threads
from ramnet.valkyrie import _sumcheck
from ramnet.valkyrie._checks import c_in_range, float_range_check, freivalds_vectors
from ramnet.valkyrie._merkle import commit_matrices
from ramnet.valkyrie._trace import Trace, check_signature, decode, read_trace_bytes
from ramnet.valkyrie.field import RowSums, fp2_dot

MatrixArg = np.ndarray | str | os.PathLike[str] | None


@dataclass(frozen=True)
class Check:
    """One check of a verification: its name (``"signature"``, ``"commitment of C"``, ...),
    whether it passed, and a detail line."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """The outcome of ``verify_trace``.

    Attributes:
        valid: True when every check passed.
        checks: Every check made, in order.
        trace: The parsed trace (None when it could not be parsed).
    """

    valid: bool
    checks: tuple[Check, ...]
    trace: Trace | None = field(default=None, repr=False)

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: ``valid``, ``failed``, ``checks``, and the trace's summary."""
        out: dict[str, Any] = {
            "valid": self.valid,
            "failed": self.failed,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }
        if self.trace is not None:
            t = self.trace
            out["trace"] = {
                "node_id": t.node_id.hex(),
                "shape": [t.spec.m, t.spec.n],
                "k": t.spec.k,
                "dtype": t.spec.dtype,
                "out_dtype": t.spec.out_dtype,
                "code_path": t.spec.code_path,
                "commitments": {"a": t.a.hex(), "b": t.b.hex(), "c": t.c.hex()},
                "blocks": len(t.blocks),
                "proof_bytes": t.proof.size if t.proof else 0,
            }
        return out


def _load(arg: MatrixArg, name: str) -> np.ndarray | None:
    if arg is None:
        return None
    if isinstance(arg, np.ndarray):
        return arg
    return load_npy(arg, name)


def verify_trace(
    path: str | os.PathLike[str],
    a: MatrixArg = None,
    b: MatrixArg = None,
    c: MatrixArg = None,
    *,
    security_bits: int = 40,
    threads: int | None = None,
) -> Verdict:
    """Verify a trace file.

    Always: the format, the signature, and the proof's internal consistency (if it has one). With
    matrices: their commitments, the proof's evaluations at its random point, and with all three,
    Freivalds (exact dtypes, error <= 2^-security_bits) or the rounding-error range check (floats).

    Args:
        path: The trace file.
        a, b, c: The matrices, as arrays or ``.npy`` paths (any subset).
        security_bits: λ of the Freivalds check.
        threads: Threads for hashing and reductions; all cores when None.

    Returns:
        The Verdict. Malformed trace bytes give an invalid verdict (check ``"format"``).

    Raises:
        InputFileError: The trace or a matrix file cannot be read.
    """
    data = read_trace_bytes(path)
    matrices = {"A": _load(a, "A"), "B": _load(b, "B"), "C": _load(c, "C")}
    try:
        trace = decode(data)
    except TraceFormatError as exc:
        return Verdict(False, (Check("format", False, str(exc)),))
    checks = [Check("format", True, f"trace v1, {len(data)} bytes")]
    signed = check_signature(trace, data)
    checks.append(Check("signature", signed, f"Ed25519 by {trace.node_id.hex()[:16]}..."))
    challenges = None
    if trace.proof is not None:
        s = trace.spec
        failure, challenges = _sumcheck.verify_rounds(trace.proof, trace.seed(), s.m, s.k, s.n)
        checks.append(
            Check(
                failure or "proof",
                failure is None,
                f"{trace.proof.size} bytes, {trace.proof.log_k} rounds",
            )
        )
    commitments = {"A": trace.a, "B": trace.b, "C": trace.c}
    mismatched = {}
    for name, commitment in commitments.items():
        x = matrices[name]
        if x is not None and (x.shape != commitment.shape or x.dtype.name != commitment.dtype):
            detail = f"given {x.dtype} {x.shape}, committed {commitment.dtype} {commitment.shape}"
            mismatched[name] = Check(f"commitment of {name}", False, detail)
            matrices[name] = None
    ma, mb, mc = matrices["A"], matrices["B"], matrices["C"]
    product: list[Check] = []
    exact = not trace.spec.dtype.startswith("float")
    if ma is not None and mb is not None and mc is not None and exact:
        # The commitments and the product checks share one pass over each matrix.
        roots, product = _commit_and_check(
            trace, challenges, ma, mb, mc, security_bits, threads or default_threads()
        )
    else:
        given = {name: x for name, x in matrices.items() if x is not None}
        results = commit_matrices(
            [(x, commitments[name].tile) for name, x in given.items()], threads=threads
        )
        roots = {name: got.root for name, (got, _) in zip(given, results, strict=True)}
        if ma is not None and mb is not None and mc is not None:
            range_ok = float_range_check(ma, mb, mc)
            product = [Check("range check", range_ok, "rounding-error bound")]
        elif trace.proof is not None and challenges is not None:
            evaluations = _sumcheck.check_evaluations(
                trace.proof, challenges, ma, mb, mc, threads=threads
            )
            product = [Check(name, ok) for name, ok in evaluations]
    for name, commitment in commitments.items():
        if name in mismatched:
            checks.append(mismatched[name])
        elif name in roots:
            ok = roots[name] == commitment.root
            checks.append(Check(f"commitment of {name}", ok, commitment.hex()[:16] + "..."))
    checks += product
    return Verdict(all(x.ok for x in checks), tuple(checks), trace)


class _Sums:
    """The verifier's weighted row sums, computed strip by strip as the matrices are hashed.

    C and B are reduced against the Freivalds vectors r and eq(r2, .) (re, im); A against B·r
    and eq(r3, .), so that every check needs one pass over each matrix, the same pass that
    hashes it. A's weights need all of B·r: B's strips are queued before A's (with C's between),
    and a thread that reaches an A strip first waits until the last B strip is reduced.
    """

    def __init__(self, r: np.ndarray, eq2: np.ndarray | None, eq3: np.ndarray | None) -> None:
        self.t = r.shape[0]
        self.eq3 = eq3
        right = r if eq2 is None else np.vstack([r, eq2])
        self.right = RowSums(right)
        self.left: RowSums | None = None
        self.out: dict[str, np.ndarray] = {}
        self._b_rows_left = 0
        self._b_done = threading.Event()
        self._lock = threading.Lock()
        self._failed = False
        self._c_max: list[int] = []

    def c_in_range(self, c: np.ndarray) -> bool:
        """``c_in_range(c)`` from the strips already read (only int64 needs them)."""
        if c.dtype.kind != "i" or c.dtype.itemsize <= 4:
            return c_in_range(c)
        return max(self._c_max, default=0) < _sumcheck.RANGE_LIMIT

    def start(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        nw = self.right.shape[0]
        self.out = {
            "A": np.zeros((nw, a.shape[0]), np.uint64),
            "B": np.zeros((nw, b.shape[0]), np.uint64),
            "C": np.zeros((nw, c.shape[0]), np.uint64),
        }
        # A matrix without columns has no tiles, so no strips: its sums stay zero.
        self._b_rows_left = b.shape[0] if b.shape[1] else 0
        if not self._b_rows_left:
            self._b_done.set()

    def visit(self, name: str, row0: int, strip: np.ndarray) -> None:
        rows = strip.shape[0]
        if name == "B":
            try:
                self.out["B"][:, row0 : row0 + rows] = self.right(strip)
            except BaseException:
                self._failed = True
                self._b_done.set()
                raise
            with self._lock:
                self._b_rows_left -= rows
                if self._b_rows_left == 0:
                    self._b_done.set()
        elif name == "C":
            self.out["C"][:, row0 : row0 + rows] = self.right(strip)
            if strip.dtype.itemsize > 4:  # where the mod-p checks are exact, read while cached
                self._c_max.append(_sumcheck._max_abs(strip))
        else:
            self.out["A"][:, row0 : row0 + rows] = self._left()(strip)

    def _left(self) -> RowSums:
        self._b_done.wait()
        if self._failed:
            raise RuntimeError("the row sums of B failed")
        with self._lock:
            if self.left is None:
                br = self.out["B"][: self.t]
                self.left = RowSums(br if self.eq3 is None else np.vstack([br, self.eq3]))
            return self.left


def _commit_and_check(
    trace: Trace,
    challenges: _sumcheck.Challenges | None,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    security_bits: int,
    threads: int,
) -> tuple[dict[str, bytes], list[Check]]:
    """Recompute the three commitments, and Freivalds and the proof's three evaluations, with
    one pass over each matrix (see ``_Sums``).

    Returns:
        (the recomputed roots by name, the product checks in order).
    """
    m, k = a.shape
    n = b.shape[1]
    proof = trace.proof if challenges is not None else None
    eq2 = eq3 = None
    if challenges is not None:
        eq2 = _sumcheck._weights(challenges.r2, n)
        eq3 = _sumcheck._weights(challenges.r3, k)
    sums = _Sums(freivalds_vectors(n, security_bits), eq2, eq3)
    sums.start(a, b, c)
    names = "BCA"  # B first: A's weights need B·r
    by_name = {"A": a, "B": b, "C": c}
    commitments = {"A": trace.a, "B": trace.b, "C": trace.c}
    results = commit_matrices(
        [(by_name[x], commitments[x].tile) for x in names],
        threads=threads,
        visit=lambda index, row0, strip: sums.visit(names[index], row0, strip),
    )
    roots = {x: got.root for x, (got, _) in zip(names, results, strict=True)}
    t = sums.t
    aw, bw, cw = sums.out["A"], sums.out["B"], sums.out["C"]
    in_range = sums.c_in_range(c)
    out = []
    if proof is not None and challenges is not None and eq3 is not None:
        eq1 = np.ascontiguousarray(_sumcheck._weights(challenges.r1, m).T)
        eq3_t = np.ascontiguousarray(eq3.T)
        a_eval = _sumcheck._tuple(fp2_dot(_sumcheck._as_fp2_vector(aw[t:], m), eq1))
        b_eval = _sumcheck._tuple(fp2_dot(_sumcheck._as_fp2_vector(bw[t:], k), eq3_t))
        claim = _sumcheck._tuple(fp2_dot(_sumcheck._as_fp2_vector(cw[t:], m), eq1))
        out += [
            Check("proof evaluation of A", a_eval == proof.a_eval),
            Check("proof evaluation of B", b_eval == proof.b_eval),
            Check("proof evaluation of C", in_range and claim == proof.claim),
        ]
    ok = in_range and bool(np.array_equal(cw[:t], aw[:t]))
    out.append(Check("Freivalds", ok, f"error <= 2^-{security_bits}"))
    return roots, out
