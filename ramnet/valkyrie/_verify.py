"""``verify_trace``: check a trace offline, with or without the matrices."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
            if t.executors:
                out["trace"]["executors"] = list(t.executors)
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
    commitments = {"A": trace.a, "B": trace.b, "C": trace.c}
    mismatched = {}
    for name, commitment in commitments.items():
        x = matrices[name]
        if x is not None and (x.shape != commitment.shape or x.dtype.name != commitment.dtype):
            detail = f"given {x.dtype} {x.shape}, committed {commitment.dtype} {commitment.shape}"
            mismatched[name] = Check(f"commitment of {name}", False, detail)
            matrices[name] = None
    ma, mb, mc = matrices["A"], matrices["B"], matrices["C"]
    exact = not trace.spec.dtype.startswith("float")
    if ma is not None and mb is not None and mc is not None and exact:
        # Every check in one parallel pass: the signature, the proof's rounds and the weights they
        # give are worked out on one thread while the others start hashing (see _Pass).
        work = _Pass(trace, data, ma, mb, mc, security_bits)
        roots = work.run(threads or default_threads())
        signed, rounds, product = work.signed, work.rounds, work.product
    else:
        signed = check_signature(trace, data)
        rounds = _rounds(trace)
        given = {name: x for name, x in matrices.items() if x is not None}
        results = commit_matrices(
            [(x, commitments[name].tile) for name, x in given.items()], threads=threads
        )
        roots = {name: got.root for name, (got, _) in zip(given, results, strict=True)}
        product = []
        challenges = rounds[1] if rounds is not None else None
        if ma is not None and mb is not None and mc is not None:
            range_ok = float_range_check(ma, mb, mc)
            product = [Check("range check", range_ok, "rounding-error bound")]
        elif trace.proof is not None and challenges is not None:
            evaluations = _sumcheck.check_evaluations(
                trace.proof, challenges, ma, mb, mc, threads=threads
            )
            product = [Check(name, ok) for name, ok in evaluations]
    checks = [Check("format", True, f"trace v1, {len(data)} bytes")]
    checks.append(Check("signature", signed, f"Ed25519 by {trace.node_id.hex()[:16]}..."))
    if trace.executors:
        checks.append(_executors_check(trace.executors))
    if rounds is not None:
        checks.append(rounds[0])
    for name, commitment in commitments.items():
        if name in mismatched:
            checks.append(mismatched[name])
        elif name in roots:
            ok = roots[name] == commitment.root
            checks.append(Check(f"commitment of {name}", ok, commitment.hex()[:16] + "..."))
    checks += product
    return Verdict(all(x.ok for x in checks), tuple(checks), trace)


def _executors_check(executors: tuple[str, ...]) -> Check:
    """What the trace says ran where: informational, it passes (the signature covers it)."""
    slots, hosts = len(executors), len(set(executors))
    detail = f"{slots} slot{'s' * (slots != 1)} on {hosts} executor{'s' * (hosts != 1)}"
    return Check("executors", True, detail)


def _rounds(trace: Trace) -> tuple[Check, _sumcheck.Challenges | None] | None:
    """The proof's check and its challenges (None without a proof)."""
    if trace.proof is None:
        return None
    s = trace.spec
    failure, challenges = _sumcheck.verify_rounds(trace.proof, trace.seed(), s.m, s.k, s.n)
    detail = f"{trace.proof.size} bytes, {trace.proof.log_k} rounds"
    return Check(failure or "proof", failure is None, detail), challenges


class _Sums:
    """The verifier's weighted row sums, computed strip by strip as the matrices are hashed.

    C and B are reduced against the Freivalds vectors r and eq(r2, .) (re, im); A against B·r
    and eq(r3, .), so that every check needs one pass over each matrix, the same pass that
    hashes it. A's weights need all of B·r: B's strips are queued before A's (with C's between),
    and a thread that reaches an A strip first waits until the last B strip is reduced.

    The weights come from the proof's rounds, worked out on one thread while the others start
    hashing: a strip visited before they are ready is kept, and reduced (B's, then C's, then A's)
    by the thread that made them ready, so that no thread waits for the weights.
    """

    _ORDER: ClassVar[dict[str, int]] = {"B": 0, "C": 1, "A": 2}

    def __init__(self) -> None:
        self.t = 0
        self.eq3: np.ndarray | None = None
        self.right: RowSums | None = None
        self.left: RowSums | None = None
        self.out: dict[str, np.ndarray] = {}
        self._ready = False
        self._kept: list[tuple[str, int, np.ndarray]] = []
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

    def start(
        self,
        r: np.ndarray,
        eq2: np.ndarray | None,
        eq3: np.ndarray | None,
        shapes: tuple[tuple[int, int], ...],
    ) -> None:
        """Set the weights (``shapes``: those of A, B, C), then reduce the strips kept so far."""
        self.t = r.shape[0]
        self.eq3 = eq3
        self.right = RowSums(r if eq2 is None else np.vstack([r, eq2]))
        nw = self.right.shape[0]
        rows = {"A": shapes[0][0], "B": shapes[1][0], "C": shapes[2][0]}
        self.out = {x: np.zeros((nw, count), np.uint64) for x, count in rows.items()}
        # A matrix without columns has no tiles, so no strips: its sums stay zero.
        self._b_rows_left = shapes[1][0] if shapes[1][1] else 0
        if not self._b_rows_left:
            self._b_done.set()
        with self._lock:
            self._ready = True
            kept, self._kept = self._kept, []
        for name, row0, strip in sorted(kept, key=lambda item: self._ORDER[item[0]]):
            self._reduce(name, row0, strip)

    def fail(self) -> None:
        """The weights cannot be made: stop reducing (the caller raises the error)."""
        with self._lock:
            self._failed = self._ready = True
            self._kept = []
        self._b_done.set()

    def visit(self, name: str, row0: int, strip: np.ndarray) -> None:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self._kept.append((name, row0, strip))
                    return
        self._reduce(name, row0, strip)

    def _reduce(self, name: str, row0: int, strip: np.ndarray) -> None:
        if self._failed:
            return
        assert self.right is not None
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


class _Pass:
    """Every check of a trace against A, B and C of an exact dtype, in one pass over each matrix:
    the three commitments, and (``_Sums``) Freivalds and the proof's three evaluations.

    ``run`` hashes the matrices' strips on every thread; the first task, on one of them, checks
    the signature and the proof's rounds and makes the weights (``_prepare``).
    """

    def __init__(
        self,
        trace: Trace,
        data: bytes,
        a: np.ndarray,
        b: np.ndarray,
        c: np.ndarray,
        security_bits: int,
    ) -> None:
        self.trace = trace
        self.data = data
        self.matrices = {"A": a, "B": b, "C": c}
        self.security_bits = security_bits
        self.sums = _Sums()
        self.signed = False
        self.rounds: tuple[Check, _sumcheck.Challenges | None] | None = None
        self.product: list[Check] = []
        self._eq1: np.ndarray | None = None

    def run(self, threads: int) -> dict[str, bytes]:
        """Hash and check; sets ``signed``, ``rounds`` and ``product``.

        Returns:
            The recomputed roots by name.
        """
        names = "BCA"  # B first: A's weights need B·r
        commitments = {"A": self.trace.a, "B": self.trace.b, "C": self.trace.c}
        results = commit_matrices(
            [(self.matrices[x], commitments[x].tile) for x in names],
            threads=threads,
            visit=lambda index, row0, strip: self.sums.visit(names[index], row0, strip),
            prelude=self._prepare,
        )
        self.product = self._product()
        return {x: got.root for x, (got, _) in zip(names, results, strict=True)}

    def _prepare(self) -> None:
        try:
            self.signed = check_signature(self.trace, self.data)
            self.rounds = _rounds(self.trace)
            challenges = self.rounds[1] if self.rounds is not None else None
            a, b, c = self.matrices["A"], self.matrices["B"], self.matrices["C"]
            (m, k), n = a.shape, b.shape[1]
            eq2 = eq3 = None
            if challenges is not None:
                eq2 = _sumcheck._weights(challenges.r2, n)
                eq3 = _sumcheck._weights(challenges.r3, k)
                self._eq1 = np.ascontiguousarray(_sumcheck._weights(challenges.r1, m).T)
            r = freivalds_vectors(n, self.security_bits)
        except BaseException:
            self.sums.fail()
            raise
        self.sums.start(r, eq2, eq3, (a.shape, b.shape, c.shape))

    def _product(self) -> list[Check]:
        """The proof's evaluations (with a proof whose sizes fit) and Freivalds, in order."""
        m, k = self.matrices["A"].shape
        sums = self.sums
        t = sums.t
        aw, bw, cw = sums.out["A"], sums.out["B"], sums.out["C"]
        in_range = sums.c_in_range(self.matrices["C"])
        proof = self.trace.proof
        out = []
        eq1, eq3 = self._eq1, sums.eq3
        if proof is not None and eq1 is not None and eq3 is not None:
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
        out.append(Check("Freivalds", ok, f"error <= 2^-{self.security_bits}"))
        return out
