"""Checks and proofs: the sum-check proof, Freivalds, the float range check, fraud proofs, and the
F_{p^2} arithmetic and Fiat–Shamir transcript under them."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet import orchid
from ramnet._errors import ProofUnsupportedError, ShapeMismatchError, TraceFormatError
from ramnet.valkyrie import (
    FraudProof,
    MatmulProof,
    NodeKey,
    TraceRecorder,
    _checks,
    check_fraud_proof,
    commit_matrix,
    float_range_check,
    freivalds,
    make_fraud_proof,
    prove_matmul,
    verify_trace,
    write_trace,
)
from ramnet.valkyrie._sumcheck import RANGE_LIMIT, _interpolate, check_evaluations, verify_rounds
from ramnet.valkyrie._transcript import Transcript
from ramnet.valkyrie.field import P61, fp2_scale, fp2_sub
from tests.conftest import operands, reference

SEED = b"test-seed-binding-the-job"
SHAPES = [(1, 1, 1), (5, 1, 7), (1, 31, 1), (7, 13, 11), (3, 17, 2), (16, 16, 16), (2, 64, 3)]
EXACT = ("int8", "int16", "int32")
T = TypeVar("T")


def exact_operands(
    rng: np.random.Generator, m: int, k: int, n: int, dtype: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random A, B over the dtype's range (int32: as wide as the 2^60 bound allows) and C = A·B."""
    if dtype == "int32":
        bound = int((RANGE_LIMIT // k) ** 0.5) - 1
        a = rng.integers(-bound, bound, size=(m, k), dtype=np.int32, endpoint=True)
        b = rng.integers(-bound, bound, size=(k, n), dtype=np.int32, endpoint=True)
    else:
        a, b = operands(rng, m, k, n, np.dtype(dtype))
    return a, b, reference(a, b)


def prove_and_check(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> list[tuple[str, bool]]:
    m, k = a.shape
    n = b.shape[1]
    proof = prove_matmul(a, b, SEED, threads=1)
    failure, challenges = verify_rounds(proof, SEED, m, k, n)
    assert failure is None
    return check_evaluations(proof, challenges, a, b, c, threads=1)


# ---- the sum-check proof accepts correct products ----


@pytest.mark.parametrize("dtype", EXACT)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_proof_accepts_correct_products(
    rng: np.random.Generator, dtype: str, shape: tuple[int, int, int]
) -> None:
    a, b, c = exact_operands(rng, *shape, dtype)
    proof = prove_matmul(a, b, SEED, threads=1)
    k = shape[1]
    assert proof.log_k == max(0, (k - 1).bit_length()) == len(proof.rounds)
    assert MatmulProof.from_bytes(proof.to_bytes()) == proof
    assert proof.size == len(proof.to_bytes())
    results = prove_and_check(a, b, c)
    assert [name for name, _ in results] == [
        "proof evaluation of A",
        "proof evaluation of B",
        "proof evaluation of C",
    ]
    assert all(ok for _, ok in results), results
    # C may come in any exact dtype holding the values.
    assert all(ok for _, ok in prove_and_check(a, b, c.astype(np.int64)))
    assert freivalds(a, b, c, threads=1)


def test_proof_at_the_int32_bound() -> None:
    # K·max|A|·max|B| just below 2^60, every entry of C extreme.
    k = 4
    a = np.full((3, k), -(2**29), np.int32)
    b = np.full((k, 2), 2**29 - 1, np.int32)
    c = reference(a, b)
    assert int(np.abs(c).max()) == k * 2**29 * (2**29 - 1) < RANGE_LIMIT
    assert all(ok for _, ok in prove_and_check(a, b, c))
    assert freivalds(a, b, c)
    c[0, 0] += 1
    assert not dict(prove_and_check(a, b, c))["proof evaluation of C"]
    assert not freivalds(a, b, c)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)),
        (np.ones((2, 3), np.float64), np.ones((3, 2), np.float64)),
        (np.ones((2, 3), np.int8), np.ones((3, 2), np.float64)),
        (np.full((2, 4), 2**29, np.int32), np.full((4, 2), 2**29, np.int32)),
        (np.full((2, 1), 2**31 - 1, np.int32), np.full((1, 2), 2**31 - 1, np.int32)),
        (np.full((2, 2), -(2**31), np.int32), np.full((2, 2), -(2**31), np.int32)),
        (np.full((2, 2), 2**40, np.int64), np.full((2, 2), 2**20, np.int64)),
    ],
    ids=["float32", "float64", "mixed", "int32-at-2^60", "int32-max", "int32-min", "int64"],
)
def test_proof_refuses_what_it_cannot_cover(a: np.ndarray, b: np.ndarray) -> None:
    with pytest.raises(ProofUnsupportedError):
        prove_matmul(a, b, SEED)


def test_proof_shape_must_match() -> None:
    a, b, _ = exact_operands(np.random.default_rng(0), 6, 9, 5, "int8")
    proof = prove_matmul(a, b, SEED, threads=1)
    for dims in ((9, 9, 5), (6, 17, 5), (6, 9, 3), (6, 8, 5), (6, 9, 9)):
        failure, _ = verify_rounds(proof, SEED, *dims)
        assert failure == "proof shape"
    # Same padded sizes, other dims: consistent rounds, but the transcript binds the dims.
    failure, challenges = verify_rounds(proof, SEED, 7, 9, 5)
    assert failure is not None or not all(
        ok for _, ok in check_evaluations(proof, challenges, a, b, reference(a, b))
    )


def test_proof_bound_to_its_seed() -> None:
    for m, k, n in ((4, 1, 3), (4, 2, 3), (5, 9, 6)):
        a, b, c = exact_operands(np.random.default_rng(k), m, k, n, "int16")
        proof = prove_matmul(a, b, SEED, threads=1)
        failure, challenges = verify_rounds(proof, SEED + b"!", m, k, n)
        if failure is None:  # K = 1 has no rounds: the evaluations catch it
            assert not all(ok for _, ok in check_evaluations(proof, challenges, a, b, c))


# ---- a C with one entry off by one is caught ----


@pytest.mark.parametrize("dtype", EXACT)
@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_off_by_one_caught_by_proof_and_freivalds(
    rng: np.random.Generator, dtype: str, where: str
) -> None:
    a, b, c = exact_operands(rng, 7, 13, 11, dtype)
    i, j = {"first": (0, 0), "last": (6, 10), "middle": (3, 5)}[where]
    bad = c.copy()
    bad[i, j] += 1
    results = dict(prove_and_check(a, b, bad))
    assert results == {
        "proof evaluation of A": True,
        "proof evaluation of B": True,
        "proof evaluation of C": False,
    }
    assert not freivalds(a, b, bad, threads=1)
    assert not freivalds(a, b, bad, security_bits=128, threads=1)
    assert freivalds(a, b, c, threads=1)


def _recorded_trace(tmp_path: Path, a: np.ndarray, b: np.ndarray, prove: bool = True) -> Path:
    recorder = TraceRecorder(threads=1)
    c = orchid.matmul(a, b, threads=1, hooks=[recorder])
    key = NodeKey.generate()
    path = tmp_path / "trace.bin"
    write_trace(path, recorder.build(key, prove=prove, threads=1), key)
    np.save(tmp_path / "C.npy", c)
    return path


@pytest.mark.parametrize("dtype", EXACT)
def test_off_by_one_caught_by_verify_trace(
    tmp_path: Path, rng: np.random.Generator, dtype: str
) -> None:
    a, b, _ = exact_operands(rng, 9, 10, 7, dtype)
    path = _recorded_trace(tmp_path, a, b)
    c = np.load(tmp_path / "C.npy")
    assert verify_trace(path, a, b, c, threads=1).valid
    bad = c.copy()
    bad[8, 6] -= 1
    verdict = verify_trace(path, a, b, bad, threads=1)
    assert not verdict.valid
    assert set(verdict.failed) == {"commitment of C", "proof evaluation of C", "Freivalds"}


@pytest.mark.parametrize("dtype", EXACT)
@pytest.mark.parametrize("prove", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 1), (300, 77, 1100), (1030, 600, 3)])
def test_verify_trace_one_pass_per_matrix(
    tmp_path: Path, rng: np.random.Generator, dtype: str, prove: bool, shape: tuple[int, int, int]
) -> None:
    # The verifier reduces each matrix strip by strip while hashing it (A's weights wait for all
    # of B·r): the verdict is the same on any number of threads, and each altered matrix fails
    # exactly the checks that read it.
    a, b, _ = exact_operands(rng, *shape, dtype)
    path = _recorded_trace(tmp_path, a, b, prove=prove)
    c = np.load(tmp_path / "C.npy")
    for threads in (1, 2, 5):
        verdict = verify_trace(path, a, b, c, threads=threads)
        assert verdict.valid, verdict.failed
    for name, x in (("A", a), ("B", b), ("C", c)):
        bad = x.copy()
        i, j = x.shape[0] // 2, x.shape[1] // 2
        bad[i, j] += 1 if bad[i, j] < 0 else -1
        given = {"A": a, "B": b, "C": c, name: bad}
        expect = {f"commitment of {name}"} | ({f"proof evaluation of {name}"} if prove else set())
        # A·(B·r) moves by A[:, i]·r_j when B[i, j] does: not at all if that column of A is 0.
        if name != "B" or a[:, i].any():
            expect.add("Freivalds")
        for threads in (1, 3):
            verdict = verify_trace(path, given["A"], given["B"], given["C"], threads=threads)
            assert set(verdict.failed) == expect


@pytest.mark.parametrize("shape", [(3, 4, 5), (700, 30, 900)])
def test_verify_trace_refuses_c_off_by_a_multiple_of_p(
    tmp_path: Path, rng: np.random.Generator, shape: tuple[int, int, int]
) -> None:
    # C + p agrees with A·B modulo p: only the range check (|C| < 2^60, read strip by strip for
    # an int64 C) keeps Freivalds and the proof's evaluation from accepting it.
    a, b, _ = exact_operands(rng, *shape, "int16")
    path = _recorded_trace(tmp_path, a, b)
    c = np.load(tmp_path / "C.npy")
    assert c.dtype == np.int64
    bad = c.copy()
    bad[-1, -1] += P61
    for threads in (1, 2):
        verdict = verify_trace(path, a, b, bad, threads=threads)
        assert set(verdict.failed) == {"commitment of C", "proof evaluation of C", "Freivalds"}


def test_verify_trace_a_failing_reduction_of_b_does_not_hang(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rng: np.random.Generator
) -> None:
    # A strips wait for B's sums: if reducing B fails, they must give up, not wait forever.
    import threading

    from ramnet.valkyrie import _verify

    a, b, _ = exact_operands(rng, 2000, 900, 300, "int8")
    path = _recorded_trace(tmp_path, a, b)
    c = np.load(tmp_path / "C.npy")

    class FailingOnB(_verify.RowSums):
        def __call__(self, x: np.ndarray) -> np.ndarray:
            if x.shape[1] == b.shape[1] and x.dtype == b.dtype:
                raise MemoryError("no room for B's sums")
            return super().__call__(x)

    monkeypatch.setattr(_verify, "RowSums", FailingOnB)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            verify_trace(path, a, b, c, threads=3)
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "verify_trace hung after B's reduction failed"
    assert raised and isinstance(raised[0], (MemoryError, RuntimeError))


def _within(seconds: float, fn: Callable[[], T]) -> T:
    """``fn()`` on a thread of its own: its result or error, or a failure if it hangs."""
    import threading

    done: list[T] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            done.append(fn())
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert not worker.is_alive(), "hung"
    if raised:
        raise raised[0]
    return done[0]


@pytest.mark.parametrize("shape", [(12, 10, 8), (300, 77, 1100), (1030, 600, 3)])
def test_verify_trace_weights_made_while_hashing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rng: np.random.Generator, shape: tuple
) -> None:
    # The signature, the rounds and the weights are worked out on one thread while the others
    # hash: strips hashed before the weights are ready are reduced afterwards (B's before A's,
    # which wait for B·r). A slow signature check keeps every strip waiting, on any threads.
    import time

    from ramnet.valkyrie import _verify

    a, b, _ = exact_operands(rng, *shape, "int8")
    path = _recorded_trace(tmp_path, a, b)
    c = np.load(tmp_path / "C.npy")
    bad = c.copy()
    bad[-1, 0] += 1
    expect = [(x.name, x.ok, x.detail) for x in verify_trace(path, a, b, c, threads=1).checks]
    real = _verify.check_signature

    def slow(*args: object) -> bool:
        time.sleep(0.05)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_verify, "check_signature", slow)
    kept: list[int] = []
    real_start = _verify._Sums.start

    def start(self: _verify._Sums, *args: object) -> None:
        kept.append(len(self._kept))
        real_start(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_verify._Sums, "start", start)
    for threads in (2, 3, 8):
        verdict = _within(60, functools.partial(verify_trace, path, a, b, c, threads=threads))
        assert [(x.name, x.ok, x.detail) for x in verdict.checks] == expect
        altered = _within(60, functools.partial(verify_trace, path, a, b, bad, threads=threads))
        assert set(altered.failed) == {"commitment of C", "proof evaluation of C", "Freivalds"}
    assert min(kept) > 0  # strips were hashed before the weights were ready


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_verify_trace_failing_weights_raise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rng: np.random.Generator, threads: int
) -> None:
    # An error while making the weights is raised, once every thread has stopped (no strip
    # waits for weights that never come).
    from ramnet.valkyrie import _verify

    a, b, _ = exact_operands(rng, 700, 60, 500, "int16")
    path = _recorded_trace(tmp_path, a, b)
    c = np.load(tmp_path / "C.npy")

    def fail(*args: object) -> np.ndarray:
        raise MemoryError("no room for r")

    monkeypatch.setattr(_verify, "freivalds_vectors", fail)
    with pytest.raises(MemoryError, match="no room for r"):
        _within(60, lambda: verify_trace(path, a, b, c, threads=threads))


@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_verify_trace_copies_no_mapped_matrix(
    tmp_path: Path, rng: np.random.Generator, dtype: str
) -> None:
    # The matrices stay where the files are mapped: the verifier allocates its weights and
    # sums, a few hundred KiB, never a copy of a strip of A, B or C (4 MiB or more each here).
    import tracemalloc

    from ramnet.orchid._io import load_npy

    a, b, _ = exact_operands(rng, 512, 1024, 1024, dtype)
    path = _recorded_trace(tmp_path, a, b)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    mapped = [load_npy(tmp_path / f"{name}.npy") for name in "ABC"]
    assert min(x.nbytes for x in mapped) >= 1 << 19 and mapped[2].nbytes >= 2 << 20
    assert verify_trace(path, *mapped, threads=2).valid
    tracemalloc.start()
    try:
        assert verify_trace(path, *mapped, threads=2).valid
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


# ---- a proof with one value altered is caught ----


def _bump(x: tuple[int, int], part: int) -> tuple[int, int]:
    return ((x[0] + 1) % P61, x[1]) if part == 0 else (x[0], (x[1] + 1) % P61)


def _altered_proofs(proof: MatmulProof):  # type: ignore[no-untyped-def]
    """Yield (description, altered proof, expected failure) for every value of the proof."""
    lk = proof.log_k
    for j in range(lk):
        for which in range(3):
            for part in (0, 1):
                rounds = [list(g) for g in proof.rounds]
                rounds[j][which] = _bump(rounds[j][which], part)
                altered = dataclasses.replace(proof, rounds=tuple(tuple(g) for g in rounds))
                if which < 2:
                    expect = f"proof round {j + 1}"
                elif j + 1 < lk:
                    expect = f"proof round {j + 2}"
                else:
                    expect = "proof final claim"
                yield f"round {j + 1} g{which} part {part}", altered, expect
    for part in (0, 1):
        for field in ("a_eval", "b_eval"):
            altered = dataclasses.replace(proof, **{field: _bump(getattr(proof, field), part)})
            yield f"{field} part {part}", altered, "proof final claim"
        altered = dataclasses.replace(proof, claim=_bump(proof.claim, part))
        yield f"claim part {part}", altered, "proof round 1" if lk else "proof final claim"


@pytest.mark.parametrize("shape", [(5, 13, 6), (3, 2, 4), (4, 1, 3), (2, 64, 2)])
def test_altered_proof_caught(shape: tuple[int, int, int]) -> None:
    m, k, n = shape
    a, b, _ = exact_operands(np.random.default_rng(k), m, k, n, "int8")
    proof = prove_matmul(a, b, SEED, threads=1)
    assert verify_rounds(proof, SEED, m, k, n)[0] is None
    count = 0
    for what, altered, expect in _altered_proofs(proof):
        failure, _ = verify_rounds(altered, SEED, m, k, n)
        assert failure == expect, what
        count += 1
    assert count == 6 * proof.log_k + 6


def test_altered_proof_in_a_trace_named(tmp_path: Path, rng: np.random.Generator) -> None:
    from ramnet.valkyrie import decode, encode

    a, b, _ = exact_operands(rng, 6, 9, 5, "int8")
    key = NodeKey.generate()
    recorder = TraceRecorder(threads=1)
    c = orchid.matmul(a, b, threads=1, hooks=[recorder])
    trace = recorder.build(key, prove=True)
    assert trace.proof is not None
    rounds = [list(g) for g in trace.proof.rounds]
    rounds[2][0] = _bump(rounds[2][0], 0)
    bad = dataclasses.replace(trace.proof, rounds=tuple(tuple(g) for g in rounds))
    path = tmp_path / "t.bin"
    path.write_bytes(encode(dataclasses.replace(trace, proof=bad), key))
    assert decode(path.read_bytes()).proof == bad
    verdict = verify_trace(path, a, b, c)
    assert "proof round 3" in verdict.failed
    assert "signature" not in verdict.failed


# ---- Freivalds ----


@pytest.mark.parametrize("bits", [40, 128])
@pytest.mark.parametrize("dtype", EXACT)
def test_freivalds_security_bits(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, bits: int, dtype: str
) -> None:
    a, b, c = exact_operands(rng, 9, 21, 8, dtype)
    asked: list[int] = []
    real = _checks._random_bytes

    def spy(n: int) -> bytes:
        asked.append(n)
        return real(n)

    monkeypatch.setattr(_checks, "_random_bytes", spy)
    assert freivalds(a, b, c, security_bits=bits, threads=1)
    rounds = -(-bits // 60)
    assert asked == [8 * rounds * 8]  # ceil(bits / 60) vectors of N = 8 words
    bad = c.copy()
    bad[4, 3] ^= 1 << 20
    assert not freivalds(a, b, bad, security_bits=bits, threads=1)
    # A transposed error pattern, and a C that is A·B plus a rank-one matrix.
    bad = c + np.outer(np.arange(9) % 2, np.arange(8) % 3)
    assert not freivalds(a, b, bad, security_bits=bits, threads=1)


def test_freivalds_fixed_randomness_and_limits() -> None:
    a, b, c = exact_operands(np.random.default_rng(3), 4, 5, 3, "int8")
    zero_r = bytes(8 * 3)
    bad = c.copy()
    bad[0, 0] += 1
    # With r = 0 (never drawn in practice) every C passes: the randomness is what checks.
    assert freivalds(a, b, bad, rng_bytes=zero_r)
    one_r = (1).to_bytes(8, "little") * 3
    assert not freivalds(a, b, bad, rng_bytes=one_r)
    huge = c.astype(np.int64)
    huge[0, 0] = RANGE_LIMIT
    assert not freivalds(a, b, huge)
    with pytest.raises(ShapeMismatchError):
        freivalds(a, b, c[:, :2])
    with pytest.raises(ShapeMismatchError):
        freivalds(a, b.T, c)


# ---- the float range check ----


FLOAT_SHAPES = [(1, 1, 1), (7, 13, 5), (33, 257, 17), (64, 4096, 8), (3, 1, 200)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", FLOAT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_range_check_accepts_blas_and_catches_beyond(
    rng: np.random.Generator, dtype: str, shape: tuple[int, int, int]
) -> None:
    m, k, n = shape
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = a @ b  # BLAS, in the job's own precision
    assert c.dtype == np.dtype(dtype)
    for _ in range(3):  # fresh random signs each time
        assert float_range_check(a, b, c)
    _, bound = _checks.float_bound(a, b, c)
    assert np.all(bound > 0)
    i, j = m // 2, n - 1
    within = c.copy()
    within[i, j] += np.asarray(0.05 * bound[i], dtype)
    assert float_range_check(a, b, within)
    beyond = c.copy()
    beyond[i, j] += np.asarray(10 * bound[i], dtype)
    assert beyond[i, j] != c[i, j]
    assert not float_range_check(a, b, beyond)
    beyond[i, j] = c[i, j] - np.asarray(10 * bound[i], dtype)
    assert not float_range_check(a, b, beyond)
    for special in (np.nan, np.inf, -np.inf):
        bad = c.copy()
        bad[i, j] = special
        assert not float_range_check(a, b, bad)


def test_range_check_float32_job_held_to_float32_bound(rng: np.random.Generator) -> None:
    # The float64 product of float32 inputs is well within the float32 bound, and a float32
    # result passed off as float64 work is judged by the float64 (tighter) bound.
    a = rng.standard_normal((16, 2048)).astype(np.float32)
    b = rng.standard_normal((2048, 4)).astype(np.float32)
    assert float_range_check(a, b, (a.astype(np.float64) @ b.astype(np.float64)))
    assert float_range_check(a, b, a @ b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    c32 = (a @ b).astype(np.float64)
    assert float_range_check(a64, b64, a64 @ b64)
    if not np.array_equal(c32, a64 @ b64):
        assert not float_range_check(a64, b64, c32)
    with pytest.raises(ShapeMismatchError):
        float_range_check(a, b, (a @ b)[:, :3])


def test_float_trace_verifies_with_range_check(tmp_path: Path, rng: np.random.Generator) -> None:
    a = rng.standard_normal((20, 300)).astype(np.float64)
    b = rng.standard_normal((300, 10)).astype(np.float64)
    with pytest.raises(ProofUnsupportedError):
        recorder = TraceRecorder(threads=1)
        orchid.matmul(a, b, threads=1, hooks=[recorder])
        recorder.build(NodeKey.generate(), prove=True)
    path = _recorded_trace(tmp_path, a, b, prove=False)
    c = np.load(tmp_path / "C.npy")
    verdict = verify_trace(path, a, b, c)
    assert verdict.valid
    assert "range check" in [x.name for x in verdict.checks]
    assert "Freivalds" not in [x.name for x in verdict.checks]
    bad = c.copy()
    bad[0, 0] *= 1.0 + 1e-6
    assert set(verify_trace(path, a, b, bad).failed) == {"commitment of C", "range check"}


# ---- fraud proofs ----

TILE = (4, 3)


def _committed(a: np.ndarray, b: np.ndarray, c: np.ndarray, tile: tuple[int, int] = TILE):  # type: ignore[no-untyped-def]
    ca, ta = commit_matrix(a, tile=tile, threads=1)
    cb, tb = commit_matrix(b, tile=tile, threads=1)
    cc, tc = commit_matrix(c, tile=tile, threads=1)
    return (ca, cb, cc), (ta, tb, tc)


@pytest.mark.parametrize("dtype", EXACT)
def test_fraud_proof_for_a_wrong_entry(rng: np.random.Generator, dtype: str) -> None:
    a, b, c = exact_operands(rng, 9, 11, 7, dtype)
    bad = c.copy()
    bad[5, 4] += 1
    commitments, trees = _committed(a, b, bad)
    proof = make_fraud_proof(a, b, bad, trees, 5, 4)
    assert len(proof.a_tiles) == 4 and len(proof.b_tiles) == 3  # ceil(11/3), ceil(11/4)
    proven, reason = check_fraud_proof(proof, *commitments)
    assert proven, reason
    assert "C[5, 4]" in reason
    # Serialised and parsed, it still proves the fraud.
    again = FraudProof.from_bytes(proof.to_bytes(), *commitments)
    assert again.to_bytes() == proof.to_bytes()
    assert check_fraud_proof(again, *commitments)[0]
    # Every correct entry of the same C: no fraud.
    for row, col in ((0, 0), (5, 3), (8, 6), (4, 4)):
        proven, reason = check_fraud_proof(
            make_fraud_proof(a, b, bad, trees, row, col), *commitments
        )
        assert not proven and "correct" in reason


def test_fraud_proof_tampering_refused(rng: np.random.Generator) -> None:
    a, b, c = exact_operands(rng, 9, 11, 7, "int16")
    bad = c.copy()
    bad[2, 5] -= 3
    commitments, trees = _committed(a, b, bad)
    proof = make_fraud_proof(a, b, bad, trees, 2, 5)
    assert check_fraud_proof(proof, *commitments)[0]

    def a_tile(t: int, **change: object) -> FraudProof:
        tiles = list(proof.a_tiles)
        tiles[t] = dataclasses.replace(tiles[t], **change)
        return dataclasses.replace(proof, a_tiles=tuple(tiles))

    # Wrong tile data: a value of the A row changed (so the arithmetic would "prove" otherwise).
    data = proof.a_tiles[1].data.copy()
    data[2 % data.shape[0], 0] += 1
    assert check_fraud_proof(a_tile(1, data=data), *commitments) == (
        False,
        "A opening does not match the commitment",
    )
    # Wrong path.
    path = list(proof.b_tiles[0].path)
    path[0] = bytes([path[0][0] ^ 1]) + path[0][1:]
    b_bad = dataclasses.replace(proof.b_tiles[0], path=tuple(path))
    result = check_fraud_proof(
        dataclasses.replace(proof, b_tiles=(b_bad, *proof.b_tiles[1:])), *commitments
    )
    assert result == (False, "B opening does not match the commitment")
    # Another tile's path and position.
    assert not check_fraud_proof(a_tile(0, path=proof.a_tiles[1].path), *commitments)[0]
    # Tiles missing, repeated, or out of order.
    for tiles in (proof.a_tiles[:-1], proof.a_tiles[::-1], (*proof.a_tiles, proof.a_tiles[0])):
        assert not check_fraud_proof(dataclasses.replace(proof, a_tiles=tiles), *commitments)[0]
    # Tiles from another matrix (a correct C, committed elsewhere): the openings do not match.
    other = (a + 1).astype(a.dtype)
    (_, _, _), (ta2, _, _) = _committed(other, b, bad)
    foreign = make_fraud_proof(other, b, bad, (ta2, trees[1], trees[2]), 2, 5)
    assert not check_fraud_proof(foreign, *commitments)[0]
    # The C tile of another entry, or the entry moved.
    assert not check_fraud_proof(dataclasses.replace(proof, row=7), *commitments)[0]
    assert not check_fraud_proof(dataclasses.replace(proof, row=99), *commitments)[0]
    c_other = make_fraud_proof(a, b, bad, trees, 8, 0).c_tile
    assert not check_fraud_proof(dataclasses.replace(proof, c_tile=c_other), *commitments)[0]
    # Against another job's commitments.
    honest, _ = _committed(a, b, c)
    assert not check_fraud_proof(proof, *honest)[0]
    assert not check_fraud_proof(proof, commitments[0], commitments[1], commitments[0])[0]


def test_fraud_proof_float_commitments_refused() -> None:
    a = np.ones((2, 3), np.float32)
    b = np.ones((3, 2), np.float32)
    c = a @ b + 1
    commitments, trees = _committed(a, b, c)
    proven, reason = check_fraud_proof(make_fraud_proof(a, b, c, trees, 0, 0), *commitments)
    assert not proven and "exact" in reason


def test_fraud_proof_with_empty_inner_dimension() -> None:
    a = np.zeros((3, 0), np.int8)
    b = np.zeros((0, 2), np.int8)
    c = np.zeros((3, 2), np.int32)
    c[1, 1] = 5  # A·B is all zeros
    commitments, trees = _committed(a, b, c)
    assert check_fraud_proof(make_fraud_proof(a, b, c, trees, 1, 1), *commitments)[0]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(EXACT),
    st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    st.tuples(st.integers(1, 4), st.integers(1, 4)),
    st.integers(0, 2**32 - 1),
    st.data(),
)
def test_fraud_proof_property(dtype, shape, tile, seed, data) -> None:  # type: ignore[no-untyped-def]
    a, b, c = exact_operands(np.random.default_rng(seed), *shape, dtype)
    m, _, n = shape
    row = data.draw(st.integers(0, m - 1))
    col = data.draw(st.integers(0, n - 1))
    delta = data.draw(st.sampled_from([1, -1, 2**20, -(2**40)]))
    bad = c.copy()
    bad[row, col] += delta
    commitments, trees = _committed(a, b, bad, tile)
    proof = make_fraud_proof(a, b, bad, trees, row, col)
    parsed = FraudProof.from_bytes(proof.to_bytes(), *commitments)
    assert check_fraud_proof(parsed, *commitments)[0]
    other_row = data.draw(st.integers(0, m - 1))
    other_col = data.draw(st.integers(0, n - 1))
    if (other_row, other_col) != (row, col):
        honest = make_fraud_proof(a, b, bad, trees, other_row, other_col)
        assert check_fraud_proof(honest, *commitments) == (False, "the committed entry is correct")


def _fraud_bytes() -> tuple[bytes, tuple]:  # type: ignore[type-arg]
    a, b, c = exact_operands(np.random.default_rng(5), 5, 7, 4, "int16")
    c[1, 2] += 1
    commitments, trees = _committed(a, b, c, (2, 3))
    return make_fraud_proof(a, b, c, trees, 1, 2).to_bytes(), commitments


FRAUD_BYTES, FRAUD_COMMITMENTS = _fraud_bytes()


def test_fraud_bytes_truncated_or_extended() -> None:
    assert check_fraud_proof(
        FraudProof.from_bytes(FRAUD_BYTES, *FRAUD_COMMITMENTS), *FRAUD_COMMITMENTS
    )[0]
    for cut in range(len(FRAUD_BYTES)):
        with pytest.raises(TraceFormatError):
            FraudProof.from_bytes(FRAUD_BYTES[:cut], *FRAUD_COMMITMENTS)
    for extra in (b"\0", b"junk"):
        with pytest.raises(TraceFormatError):
            FraudProof.from_bytes(FRAUD_BYTES + extra, *FRAUD_COMMITMENTS)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda x: b"RNFRAUD1" + x)))
def test_fraud_from_random_bytes(raw: bytes) -> None:
    try:
        proof = FraudProof.from_bytes(raw, *FRAUD_COMMITMENTS)
    except TraceFormatError:
        return
    check_fraud_proof(proof, *FRAUD_COMMITMENTS)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 255), st.integers(1, 3))
def test_fraud_from_mutated_bytes(pos: int, value: int, count: int) -> None:
    raw = bytearray(FRAUD_BYTES)
    for t in range(count):
        raw[(pos + 97 * t) % len(raw)] = (value + t) % 256
    try:
        proof = FraudProof.from_bytes(bytes(raw), *FRAUD_COMMITMENTS)
    except TraceFormatError:
        return
    proven, reason = check_fraud_proof(proof, *FRAUD_COMMITMENTS)
    assert isinstance(reason, str)
    if proven:  # every byte of a fraud proof matters: only the original proves the fraud
        assert bytes(raw) == FRAUD_BYTES


# ---- F_{p^2} arithmetic and the transcript ----

fp = st.integers(0, P61 - 1)
fp2 = st.tuples(fp, fp)


@settings(max_examples=100, deadline=None)
@given(st.tuples(fp2, fp2, fp2), fp2)
def test_interpolation_of_round_polynomials(g, r) -> None:  # type: ignore[no-untyped-def]
    assert _interpolate(g, (0, 0)) == g[0]
    assert _interpolate(g, (1, 0)) == g[1]
    assert _interpolate(g, (2, 0)) == g[2]
    # A quadratic: its third finite difference vanishes.
    values = [_interpolate(g, (t, 0)) for t in range(4)]
    d3 = fp2_sub(
        fp2_sub(values[3], fp2_scale(values[2], 3)), fp2_sub(values[0], fp2_scale(values[1], 3))
    )
    assert d3 == (0, 0)
    assert all(0 <= v < P61 for v in _interpolate(g, r))


def _challenges(protocol: bytes, items: list[tuple[bytes, bytes]], count: int = 3) -> list:  # type: ignore[type-arg]
    t = Transcript(protocol)
    for label, data in items:
        t.absorb(label, data)
    return t.challenges(count)


items_st = st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=24)), max_size=4)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=16), items_st, st.data())
def test_transcript_deterministic_and_binding(protocol, items, data) -> None:  # type: ignore[no-untyped-def]
    first = _challenges(protocol, items)
    assert first == _challenges(protocol, items)
    assert len(set(first)) == 3  # successive challenges differ
    assert all(0 <= v < P61 for c in first for v in c)
    assert _challenges(protocol + b"x", items) != first
    assert _challenges(protocol, [*items, (b"", b"")]) != first
    if items:
        t = data.draw(st.integers(0, len(items) - 1))
        label, value = items[t]
        changed = list(items)
        changed[t] = (label, value + b"\0")
        assert _challenges(protocol, changed) != first
        changed[t] = (label + b"\0", value)
        assert _challenges(protocol, changed) != first
        # Moving a byte between label and data is a change too (lengths are absorbed).
        if label:
            changed[t] = (label[:-1], label[-1:] + value)
            assert _challenges(protocol, changed) != first
        if len(items) > 1 and items[0] != items[-1]:
            assert _challenges(protocol, items[::-1]) != first


def test_transcript_challenge_prefix_consistent() -> None:
    # Drawing challenges one at a time or in a batch gives the same sequence.
    a = Transcript(b"p")
    a.absorb(b"l", b"d")
    one_by_one = [a.challenge_fp2() for _ in range(4)]
    assert _challenges(b"p", [(b"l", b"d")], 4) == one_by_one
