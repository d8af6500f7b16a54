"""``verify_trace``: check a trace offline, with or without the matrices."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ramnet._errors import TraceFormatError
from ramnet.orchid import load_npy
from ramnet.valkyrie import _sumcheck
from ramnet.valkyrie._checks import float_range_check, freivalds
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
    if trace.proof is not None and challenges is not None:
        for name, ok in _sumcheck.check_evaluations(
            trace.proof, challenges, matrices["A"], matrices["B"], matrices["C"], threads=threads
        ):
            checks.append(Check(name, ok))
    ma, mb, mc = matrices["A"], matrices["B"], matrices["C"]
    if ma is not None and mb is not None and mc is not None:
        if trace.spec.dtype.startswith("float"):
            checks.append(
                Check("range check", float_range_check(ma, mb, mc), "rounding-error bound")
            )
        else:
            ok = freivalds(ma, mb, mc, security_bits=security_bits, threads=threads)
            checks.append(Check("Freivalds", ok, f"error <= 2^-{security_bits}"))
    return Verdict(all(x.ok for x in checks), tuple(checks), trace)
