"""``verify_trace``: check a trace offline, with or without the matrices."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ramnet._errors import TraceFormatError
from ramnet.orchid import fp2_dot, load_npy, weighted_colsums, weighted_rowsums
from ramnet.valkyrie import _sumcheck
from ramnet.valkyrie._checks import c_in_range, float_range_check, freivalds_vectors
from ramnet.valkyrie._merkle import commit_matrix
from ramnet.valkyrie._trace import Trace, check_signature, decode, read_trace_bytes

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
    for name, commitment in (("A", trace.a), ("B", trace.b), ("C", trace.c)):
        x = matrices[name]
        if x is None:
            continue
        if x.shape != commitment.shape or x.dtype.name != commitment.dtype:
            detail = f"given {x.dtype} {x.shape}, committed {commitment.dtype} {commitment.shape}"
            checks.append(Check(f"commitment of {name}", False, detail))
            matrices[name] = None
            continue
        got, _ = commit_matrix(x, tile=commitment.tile, threads=threads)
        checks.append(
            Check(
                f"commitment of {name}", got.root == commitment.root, commitment.hex()[:16] + "..."
            )
        )
    ma, mb, mc = matrices["A"], matrices["B"], matrices["C"]
    if ma is not None and mb is not None and mc is not None:
        if trace.spec.dtype.startswith("float"):
            range_ok = float_range_check(ma, mb, mc)
            checks.append(Check("range check", range_ok, "rounding-error bound"))
        else:
            checks += _product_checks(trace, challenges, ma, mb, mc, security_bits, threads)
    elif trace.proof is not None and challenges is not None:
        evaluations = _sumcheck.check_evaluations(
            trace.proof, challenges, ma, mb, mc, threads=threads
        )
        checks += [Check(name, ok) for name, ok in evaluations]
    return Verdict(all(x.ok for x in checks), tuple(checks), trace)


def _product_checks(
    trace: Trace,
    challenges: _sumcheck.Challenges | None,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    security_bits: int,
    threads: int | None,
) -> list[Check]:
    """Freivalds and the proof's three evaluations, sharing passes over the matrices.

    C and B are each read once, with the Freivalds vectors and eq(r2, .) stacked as weights; A
    twice (A·(B·r), and eq(r1, .)·A).
    """
    m, k = a.shape
    n = b.shape[1]
    r = freivalds_vectors(n, security_bits)
    t = r.shape[0]
    proof = trace.proof if challenges is not None else None
    weights = r
    if proof is not None and challenges is not None:
        weights = np.ascontiguousarray(np.vstack([r, _sumcheck._weights(challenges.r2, n)]))
    in_range = c_in_range(c)
    cw = weighted_rowsums(c, weights, threads=threads)
    bw = weighted_rowsums(b, weights, threads=threads)
    abr = weighted_rowsums(a, np.ascontiguousarray(bw[:t]), threads=threads)
    out = []
    if proof is not None and challenges is not None:
        eq1 = _sumcheck._weights(challenges.r1, m)
        eq3 = np.ascontiguousarray(_sumcheck._weights(challenges.r3, k).T)
        u = _sumcheck._as_fp2_vector(weighted_colsums(a, eq1, threads=threads), k)
        v = _sumcheck._as_fp2_vector(bw[t:], k)
        y = _sumcheck._as_fp2_vector(cw[t:], m)
        a_eval = _sumcheck._tuple(fp2_dot(u, eq3))
        b_eval = _sumcheck._tuple(fp2_dot(v, eq3))
        claim = _sumcheck._tuple(fp2_dot(y, np.ascontiguousarray(eq1.T)))
        out += [
            Check("proof evaluation of A", a_eval == proof.a_eval),
            Check("proof evaluation of B", b_eval == proof.b_eval),
            Check("proof evaluation of C", in_range and claim == proof.claim),
        ]
    ok = in_range and bool(np.array_equal(cw[:t], abr))
    out.append(Check("Freivalds", ok, f"error <= 2^-{security_bits}"))
    return out
