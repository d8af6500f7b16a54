"""Trace files: the committed known-answer trace, tampering, the strict parser, and fuzzing."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ramnet
from ramnet import orchid
from ramnet._errors import InputFileError, TraceFormatError
from ramnet.cli import app
from ramnet.orchid._hooks import JobSpec
from ramnet.valkyrie import (
    BlockDigest,
    NodeKey,
    Trace,
    TraceRecorder,
    Verdict,
    _trace,
    commit_matrix,
    decode,
    encode,
    prove_matmul,
    read_trace_bytes,
    verify_trace,
    write_trace,
)
from ramnet.valkyrie._merkle import row_strip_tile
from ramnet.valkyrie.field import P61

DATA = Path(__file__).resolve().parents[1] / "data"
TRACE = DATA / "trace_v1.bin"
TRACE_BYTES = TRACE.read_bytes()


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_trace_v1", DATA / "make_trace_v1.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
KEY = GEN.known_key()
A = np.load(DATA / "A.npy")
B = np.load(DATA / "B.npy")
C = np.load(DATA / "C.npy")


def sections(data: bytes) -> dict[int, tuple[int, int]]:
    """Section type -> (payload offset, payload length), walking a well-formed trace."""
    out = {}
    pos = 16
    while pos < len(data):
        kind, _, length = struct.unpack_from("<HHI", data, pos)
        out[kind] = (pos + 8, length)
        pos += 8 + length
    return out


SECTIONS = sections(TRACE_BYTES)


def resign(data: bytes, key: NodeKey = KEY) -> bytes:
    """Replace the final 64-byte signature with ``key``'s signature of everything before it."""
    body = data[:-64]
    return body + key.sign(body)


def verify_bytes(tmp_path: Path, data: bytes, **matrices: object) -> Verdict:
    path = tmp_path / "t.bin"
    path.write_bytes(data)
    return verify_trace(path, **matrices)  # type: ignore[arg-type]


def assert_refused(verdict: Verdict) -> None:
    assert not verdict.valid
    assert verdict.failed
    assert all(isinstance(c.name, str) for c in verdict.checks)


# ---- the committed known-answer trace ----


def test_known_trace_verifies_without_matrices() -> None:
    verdict = ramnet.verify_trace(TRACE)
    assert verdict.valid, verdict.checks
    assert [c.name for c in verdict.checks] == ["format", "signature", "proof"]


@pytest.mark.parametrize("as_paths", [True, False], ids=["paths", "arrays"])
def test_known_trace_verifies_with_matrices(as_paths: bool) -> None:
    paths = {x: DATA / f"{x.upper()}.npy" for x in "abc"}
    mats = paths if as_paths else {"a": A, "b": B, "c": C}
    verdict = ramnet.verify_trace(TRACE, **mats)
    assert verdict.valid, verdict.checks
    names = [c.name for c in verdict.checks]
    for name in (
        "format",
        "signature",
        "proof",
        "commitment of A",
        "commitment of B",
        "commitment of C",
        "proof evaluation of A",
        "proof evaluation of B",
        "proof evaluation of C",
        "Freivalds",
    ):
        assert name in names
    # Any subset of the matrices is checked against its commitment.
    only_c = ramnet.verify_trace(TRACE, c=C)
    assert only_c.valid
    assert "commitment of C" in [c.name for c in only_c.checks]
    assert "Freivalds" not in [c.name for c in only_c.checks]


def test_known_trace_contents() -> None:
    trace = decode(TRACE_BYTES)
    s = trace.spec
    assert (s.m, s.k, s.n, s.dtype, s.out_dtype) == (12, 10, 9, "int8", "int32")
    assert s.grid == (2, 2, 2)
    assert (s.row_edges, s.col_edges, s.k_edges) == ((0, 6, 12), (0, 5, 9), (0, 5, 10))
    assert (s.backend, s.code_path, trace.threads, trace.created) == (
        "c",
        "plain",
        2,
        1_700_000_000,
    )
    assert trace.node_id == KEY.public_key
    assert trace.node_id.hex() == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert [(x.i, x.j, x.k) for x in trace.blocks] == [
        (i, j, k) for i in range(2) for j in range(2) for k in range(2)
    ]
    assert trace.proof is not None and trace.proof.size == 4 + 16 * (3 + 3 * 4)
    assert trace.signed_length == len(TRACE_BYTES) - 64
    for name, x in (("a", A), ("b", B), ("c", C)):
        assert getattr(trace, name) == commit_matrix(x)[0]
    assert len(TRACE_BYTES) == 1063


def test_reencoding_reproduces_the_file() -> None:
    trace = decode(TRACE_BYTES)
    assert encode(trace, KEY) == TRACE_BYTES
    # Stripping what decode adds gives the same bytes too.
    bare = dataclasses.replace(trace, signature=b"", signed_length=0)
    assert encode(bare, KEY) == TRACE_BYTES


def test_generator_reproduces_the_committed_files() -> None:
    data, a, b, c = GEN.build()
    assert data == TRACE_BYTES, "trace format v1 changed: the committed trace no longer matches"
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(b, B)
    np.testing.assert_array_equal(c, C)


def test_recorder_digests_match_the_known_trace() -> None:
    recorder = TraceRecorder(threads=1)
    c = orchid.matmul(A, B, grid=(2, 2, 2), hooks=[recorder], threads=1)
    np.testing.assert_array_equal(c, C)
    trace = recorder.build(KEY, prove=True, threads=2)
    known = decode(TRACE_BYTES)
    assert trace.blocks == known.blocks
    # The known file commits with square tiles; the recorder cuts A and C into whole rows.
    assert trace.b == known.b
    assert trace.a == commit_matrix(A, tile=row_strip_tile(A.dtype, A.shape))[0]
    assert trace.c == commit_matrix(C, tile=row_strip_tile(C.dtype, C.shape))[0]


def test_encode_refuses_foreign_key() -> None:
    with pytest.raises(TraceFormatError):
        encode(decode(TRACE_BYTES), NodeKey.generate())


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "out.bin", decode(TRACE_BYTES), KEY)
    assert read_trace_bytes(path) == TRACE_BYTES
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with pytest.raises(InputFileError):
        read_trace_bytes(tmp_path / "missing.bin")
    with pytest.raises(InputFileError):
        read_trace_bytes(tmp_path)


# ---- tampering: flips, truncations, appended bytes ----

FLIPS = (0x01, 0x80, 0xFF, 0x10)


def test_every_single_byte_flip_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    count = 0
    for pos in range(len(TRACE_BYTES)):
        for pattern in FLIPS:
            data = bytearray(TRACE_BYTES)
            data[pos] ^= pattern
            path.write_bytes(data)
            verdict = verify_trace(path)
            assert not verdict.valid, (pos, pattern)
            assert verdict.failed, (pos, pattern)
            count += 1
    assert count == 4 * len(TRACE_BYTES)


# Bytes of the PROOF section's log M and log N: flipping them makes verify_trace raise when the
# matrices are given (see test_proof_shape_mismatch_with_matrices_is_a_verdict); left out here.
_PROOF_SHAPE_BYTES = {SECTIONS[5][0] + 1, SECTIONS[5][0] + 3}


def test_single_byte_flips_refused_with_matrices(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    for pos in range(len(TRACE_BYTES)):
        if pos in _PROOF_SHAPE_BYTES:
            continue
        for pattern in (0x01, 0xFF):
            data = bytearray(TRACE_BYTES)
            data[pos] ^= pattern
            path.write_bytes(data)
            assert not verify_trace(path, A, B, C).valid, (pos, pattern)


def test_every_truncation_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    for length in range(len(TRACE_BYTES)):
        path.write_bytes(TRACE_BYTES[:length])
        verdict = verify_trace(path)
        assert verdict.failed == ["format"], length
        with pytest.raises(TraceFormatError):
            decode(TRACE_BYTES[:length])


@pytest.mark.parametrize(
    "extra", [b"\0", b"\xff", b"x" * 7, b"\0" * 64, TRACE_BYTES], ids=["1", "ff", "7", "64", "dup"]
)
def test_appended_bytes_refused(tmp_path: Path, extra: bytes) -> None:
    verdict = verify_bytes(tmp_path, TRACE_BYTES + extra)
    assert verdict.failed == ["format"]
    assert "trailing" in verdict.checks[0].detail
    with pytest.raises(TraceFormatError):
        decode(TRACE_BYTES + extra)


def _cli(tmp_path: Path, data: bytes, *extra: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "t.bin"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["verify", str(path), *extra])
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.mark.parametrize(
    ("how", "where"),
    [
        *[("flip", x) for x in (0, 20, 170, 500, 800, 1062)],
        *[("cut", x) for x in (0, 15, 600, 1062)],
        ("append", 1),
    ],
)
def test_cli_refuses_tampered_trace_with_exit_1(tmp_path: Path, how: str, where: int) -> None:
    if how == "flip":
        data = bytearray(TRACE_BYTES)
        data[where] ^= 0x01
        data = bytes(data)
    elif how == "cut":
        data = TRACE_BYTES[:where]
    else:
        data = TRACE_BYTES + b"\0" * where
    result = _cli(tmp_path, data)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "INVALID" in result.stdout
    assert result.stderr.startswith("invalid: ")
    json_result = _cli(tmp_path, data, "--json")
    assert json_result.exit_code == 1
    assert '"valid": false' in json_result.stdout


def test_signed_by_another_key_refused(tmp_path: Path) -> None:
    other = NodeKey.generate()
    forged = resign(TRACE_BYTES, other)
    assert decode(forged).node_id == KEY.public_key  # the NODE section still names the known key
    verdict = verify_bytes(tmp_path, forged, a=A, b=B, c=C)
    assert verdict.failed == ["signature"]
    result = _cli(tmp_path, forged)
    assert result.exit_code == 1
    assert "signature" in result.stderr
    # Re-signed by the right key, the same bytes are fine again (the helper is sound).
    assert verify_bytes(tmp_path, resign(forged)).valid
    # Replacing the NODE id by the forger's makes a valid trace, but of another node.
    node_at = SECTIONS[2][0]
    swapped = bytearray(TRACE_BYTES)
    swapped[node_at : node_at + 32] = other.public_key
    # (the proof's seed binds the job and the commitments, not the signer): the verdict names it.
    verdict = verify_bytes(tmp_path, resign(bytes(swapped), other))
    assert verdict.valid
    assert verdict.trace is not None and verdict.trace.node_id == other.public_key
    assert verdict.to_dict()["trace"]["node_id"] == other.public_key.hex()


def test_zero_signature_refused(tmp_path: Path) -> None:
    verdict = verify_bytes(tmp_path, TRACE_BYTES[:-64] + b"\0" * 64)
    assert verdict.failed == ["signature"]


# ---- the parser refuses malformed content even when it is properly signed ----


def _patched(offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(TRACE_BYTES)
    struct.pack_into(fmt, data, offset, value)
    return resign(bytes(data))


JOB_AT = SECTIONS[1][0]
BLOCKS_AT = SECTIONS[4][0]
PROOF_AT = SECTIONS[5][0]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_patched(0, "<B", ord("X")), "magic"),
        (_patched(8, "<H", 2), "version"),
        (_patched(10, "<H", 3), "flags"),
        (_patched(10, "<H", 0), "sections"),
        (_patched(12, "<I", 7), "sections"),
        (_patched(16, "<H", 2), "found where"),
        (_patched(18, "<H", 1), "reserved"),
        (_patched(20, "<I", 10_000), "truncated"),
        (_patched(JOB_AT + 24, "<B", 9), "dtype"),
        (_patched(JOB_AT + 26, "<I", 1 << 30), "exceeds"),
        (_patched(JOB_AT + 38 + 8, "<Q", 13), "edges"),
        (_patched(JOB_AT + 38, "<Q", 1), "edges"),
        (_patched(JOB_AT, "<Q", 13), "edges"),
        (_patched(SECTIONS[3][0] + 1, "<Q", 13), "shapes"),
        (_patched(SECTIONS[3][0] + 57, "<B", 2), "dtypes"),
        (_patched(JOB_AT + 25, "<B", 4), "dtypes"),
        (_patched(BLOCKS_AT, "<I", 9), "count"),
        (_patched(BLOCKS_AT + 4, "<I", 2), "outside the grid"),
        (_patched(BLOCKS_AT + 4 + 44 * 7 + 8, "<I", 2), "outside the grid"),
        (_patched(PROOF_AT, "<B", 2), "scheme"),
        (_patched(PROOF_AT + 2, "<B", 5), "length"),
        (_patched(PROOF_AT + 4, "<Q", P61), "reduced"),
        (_patched(PROOF_AT + 4 + 16 * 7 + 8, "<Q", 2**64 - 1), "reduced"),
        (_patched(SECTIONS[255][0] - 8, "<H", 254), "found where"),
        (_patched(SECTIONS[255][0] - 4, "<I", 63), "trailing"),
    ],
)
def test_signed_but_malformed_refused(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(TraceFormatError) as info:
        decode(data)
    assert words in str(info.value), str(info.value)
    verdict = verify_bytes(tmp_path, data)
    assert verdict.failed == ["format"]


def test_text_fields_checked(tmp_path: Path) -> None:
    # The backend name "c" (u16 length 1) sits after the edges: make it invalid UTF-8.
    at = JOB_AT + 38 + 8 * 9
    assert TRACE_BYTES[at : at + 3] == b"\x01\x00c"
    bad = _patched(at + 2, "<B", 0xFF)
    with pytest.raises(TraceFormatError, match="UTF-8"):
        decode(bad)


def test_long_text_truncated_by_the_writer() -> None:
    spec = decode(TRACE_BYTES).spec
    long_name = dataclasses.replace(spec, backend="b" * 1000)
    trace = dataclasses.replace(decode(TRACE_BYTES), spec=long_name)
    data = encode(trace, KEY)  # the writer truncates text fields to 256 bytes
    assert decode(data).spec.backend == "b" * 256


def test_long_non_ascii_text_round_trips() -> None:
    spec = dataclasses.replace(decode(TRACE_BYTES).spec, code_path="x" + "é" * 200)
    data = encode(dataclasses.replace(decode(TRACE_BYTES), spec=spec), KEY)
    decode(data)


@pytest.mark.parametrize("order", ["reversed", "duplicate"])
def test_blocks_out_of_order_or_duplicated_refused(order: str) -> None:
    trace = decode(TRACE_BYTES)
    blocks = trace.blocks[::-1] if order == "reversed" else (trace.blocks[0],) * len(trace.blocks)
    data = encode(dataclasses.replace(trace, blocks=blocks), KEY)
    with pytest.raises(TraceFormatError):
        decode(data)


# ---- verify_trace never raises for file contents ----


def test_proof_shape_mismatch_with_matrices_is_a_verdict(tmp_path: Path) -> None:
    data = _patched(PROOF_AT + 1, "<B", 3)  # log M 4 -> 3, properly signed
    verdict = verify_bytes(tmp_path, data)  # fine without the matrices
    assert verdict.failed == ["proof shape"]
    verdict = verify_bytes(tmp_path, data, a=A, b=B, c=C)
    assert not verdict.valid and "proof shape" in verdict.failed


def test_float_trace_with_proof_is_a_verdict(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((3, 5)).astype(np.float32)
    c = a @ b
    key = NodeKey.generate()
    spec = JobSpec(4, 3, 5, "float32", "float32", (1, 1, 1), (0, 4), (0, 5), (0, 3), "c", "x")
    trace = Trace(spec, 1, 0, key.public_key, *(commit_matrix(x)[0] for x in (a, b, c)), blocks=())
    ints = np.ones((4, 3), np.int8), np.ones((3, 5), np.int8)
    trace = dataclasses.replace(trace, proof=prove_matmul(*ints, trace.seed()))
    verdict = verify_bytes(tmp_path, encode(trace, key), a=a, b=b, c=c)
    assert not verdict.valid


# ---- oversized files ----


def test_oversized_file_refused_without_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_trace, "MAX_TRACE_BYTES", len(TRACE_BYTES) - 1)
    path = tmp_path / "t.bin"
    path.write_bytes(TRACE_BYTES)
    opened: list[str] = []
    real_open = Path.open

    def spy(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        opened.append(str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", spy)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read whole"))
    with pytest.raises(InputFileError, match="at most"):
        verify_trace(path)
    assert str(path) not in opened
    with pytest.raises(TraceFormatError):
        decode(TRACE_BYTES)  # decode applies the same cap to bytes in memory
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 2
    assert "at most" in result.stderr.replace("\n", " ")


def test_real_limit_on_a_sparse_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        f.write(TRACE_BYTES)
        f.truncate(_trace.MAX_TRACE_BYTES + 1)  # sparse: no real disk use
    assert _trace.MAX_TRACE_BYTES == 64 << 20
    with pytest.raises(InputFileError):
        read_trace_bytes(path)
    # Exactly at the limit it is read and refused as trailing bytes instead.
    os.truncate(path, _trace.MAX_TRACE_BYTES)
    assert verify_trace(path).failed == ["format"]


def test_read_trace_bytes_reads_what_the_file_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file's bytes, however its size was seen: a regular file is read with a buffer of its
    # size (not the 64 MiB cap), a file that grew since its size was taken is read to its end,
    # a pipe up to the cap.
    import tracemalloc

    path = tmp_path / "t.bin"
    path.write_bytes(TRACE_BYTES)
    tracemalloc.start()
    try:
        assert read_trace_bytes(path) == TRACE_BYTES
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()
    real_stat = Path.stat

    def stale(self: Path, **kwargs: object) -> os.stat_result:
        got = real_stat(self)
        return os.stat_result((got.st_mode, *got[1:6], 10, *got[7:]))  # st_size = 10

    monkeypatch.setattr(Path, "stat", stale)
    assert read_trace_bytes(path) == TRACE_BYTES
    monkeypatch.undo()
    read, write = os.pipe()
    with os.fdopen(write, "wb") as f:
        f.write(TRACE_BYTES)
    with os.fdopen(read, "rb") as f:
        assert read_trace_bytes(f"/dev/fd/{f.fileno()}") == TRACE_BYTES


# ---- fuzzing ----


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048))
@example(b"")
@example(TRACE_BYTES[:16])
@example(b"RAMNETTR\x01\x00\x00\x00\x05\x00\x00\x00")
def test_decode_arbitrary_bytes(raw: bytes) -> None:
    with contextlib.suppress(TraceFormatError):
        decode(raw)


@st.composite
def mutations(draw):  # type: ignore[no-untyped-def]
    data = bytearray(TRACE_BYTES)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "xor", "insert", "delete", "splice", "resign"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "set" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif kind == "xor" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "splice" and pos + 8 <= len(data):
            # Overwrite with a likely-interesting integer (a length, a count, an edge).
            value = draw(st.sampled_from([0, 1, 2, 255, 2**16 - 1, 2**31, 2**32 - 1, 2**64 - 1]))
            fmt = draw(st.sampled_from(["<H", "<I", "<Q"]))
            struct.pack_into(fmt, data, pos, value % (1 << (8 * struct.calcsize(fmt))))
        elif kind == "resign" and len(data) > 64:
            data = bytearray(resign(bytes(data)))
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(mutations())
def test_decode_mutated_trace(data: bytes) -> None:
    try:
        trace = decode(data)
    except TraceFormatError:
        return
    # Whatever decodes re-encodes to the same signed body: the encoding is canonical.
    if trace.node_id == KEY.public_key:
        assert encode(trace, KEY)[:-64] == data[:-64]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=mutations())
def test_verify_never_raises_for_file_contents(tmp_path: Path, data: bytes) -> None:
    verdict = verify_bytes(tmp_path, data)
    assert isinstance(verdict, Verdict)
    assert verdict.checks and verdict.checks[0].name == "format"
    assert verdict.valid == all(c.ok for c in verdict.checks)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=mutations())
def test_verify_with_matrices_never_raises(tmp_path: Path, data: bytes) -> None:
    try:
        trace = decode(data)
    except TraceFormatError:
        trace = None
    verdict = verify_bytes(tmp_path, data, a=A, b=B, c=C)
    assert isinstance(verdict, Verdict)
    if data != TRACE_BYTES and verdict.valid:
        # Only a re-signed trace can pass, and then only with the same job and commitments.
        assert trace is not None
        known = decode(TRACE_BYTES)
        assert (trace.a, trace.b, trace.c) == (known.a, known.b, known.c)


def test_blockdigest_fields() -> None:
    trace = decode(TRACE_BYTES)
    assert all(isinstance(b, BlockDigest) and len(b.digest) == 32 for b in trace.blocks)
