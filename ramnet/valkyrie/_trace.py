"""The trace file (``trace.bin``): written and read here, and nowhere else.

Byte layout, version 1 (all integers little-endian; see docs/trace-format.md):

    header   magic "RAMNETTR" | u16 version = 1 | u16 flags (bit 0: has a proof, bit 1: has
             executors) | u32 sections
    section  u16 type | u16 reserved = 0 | u32 length | payload
    sections in this order: JOB (1), NODE (2), COMMITMENTS (3), BLOCKS (4), EXECUTORS (6, only
    when flag bit 1 is set), PROOF (5, only when flag bit 0 is set), SIGNATURE (255, last; 64
    bytes of Ed25519 over every byte before them)

Parsing is strict: any other order, an unknown type, a nonzero reserved field, a length beyond the
file, trailing bytes, or counts that disagree with lengths are errors. Nothing is allocated beyond
what the file's (capped) size justifies, and nothing is unpickled.
"""

from __future__ import annotations

import itertools
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from ramnet._errors import InputFileError, OutputFileError, TraceFormatError
from ramnet.orchid._hooks import JobSpec
from ramnet.valkyrie import _hash
from ramnet.valkyrie._keys import NodeKey, verify_signature
from ramnet.valkyrie._merkle import COMMITMENT_SIZE, DTYPE_CODES, DTYPE_NAMES, Commitment
from ramnet.valkyrie._sumcheck import MatmulProof

MAGIC = b"RAMNETTR"
VERSION = 1
MAX_TRACE_BYTES = 64 << 20
SIGNATURE_SIZE = 64
# Bounds what verifying a commitment can cost: 2^20 tiles of 64 KiB is 64 GiB of matrix.
MAX_LEAVES = 1 << 20
# Plan slots a trace can name: far more than a job's tasks, and at most ~1 MiB of text.
MAX_EXECUTORS = 4096

JOB, NODE, COMMITMENTS, BLOCKS, PROOF, EXECUTORS, SIGNATURE = 1, 2, 3, 4, 5, 6, 255
_NAMES = {
    JOB: "JOB",
    NODE: "NODE",
    COMMITMENTS: "COMMITMENTS",
    BLOCKS: "BLOCKS",
    EXECUTORS: "EXECUTORS",
    PROOF: "PROOF",
    SIGNATURE: "SIGNATURE",
}
HAS_PROOF, HAS_EXECUTORS = 1, 2  # header flag bits

_HEADER = struct.Struct("<8sHHI")
_SECTION = struct.Struct("<HHI")
_BLOCK = struct.Struct("<III32s")
_MAX_TEXT = 256


@dataclass(frozen=True)
class BlockDigest:
    """The BLAKE3 digest of one block product's partial tile P(i, j, k)."""

    i: int
    j: int
    k: int
    digest: bytes


@dataclass(frozen=True)
class Trace:
    """A parsed (or to-be-written) trace.

    Attributes:
        spec: The job (shape, dtypes, grid, backend and code path).
        threads: Threads the job ran on.
        created: Unix time of the run, in seconds.
        node_id: The signer's 32-byte Ed25519 public key.
        a, b, c: Commitments to A, B and C.
        blocks: Digests of the block products' partial tiles.
        proof: The sum-check proof, if any.
        executors: Element s names the executor that computed plan slot s (a Spark run, e.g.
            "10.0.0.5:4711"); empty for runs without slots. Signed, but not in ``seed``.
        signature: 64-byte Ed25519 signature (empty before signing).
        signed_length: How many leading bytes of the file the signature covers (0 if unsigned).
    """

    spec: JobSpec
    threads: int
    created: int
    node_id: bytes
    a: Commitment
    b: Commitment
    c: Commitment
    blocks: tuple[BlockDigest, ...]
    proof: MatmulProof | None = None
    executors: tuple[str, ...] = ()
    signature: bytes = b""
    signed_length: int = 0

    def seed(self) -> bytes:
        """The Fiat–Shamir seed: binds the job section and the three commitments."""
        return _hash.digest(
            b"RNSEED1\x00",
            _job_payload(self.spec, self.threads, self.created),
            _commitments_payload(self),
        )


def _text(value: str) -> bytes:
    # Cut at a character boundary, so the reader's UTF-8 check always passes.
    raw = value.encode("utf-8")[:_MAX_TEXT].decode("utf-8", "ignore").encode("utf-8")
    return struct.pack("<H", len(raw)) + raw


def _job_payload(spec: JobSpec, threads: int, created: int) -> bytes:
    p, q, r = spec.grid
    parts = [
        struct.pack(
            "<QQQBBIII",
            spec.m,
            spec.k,
            spec.n,
            DTYPE_CODES[spec.dtype],
            DTYPE_CODES[spec.out_dtype],
            p,
            q,
            r,
        ),
        struct.pack(f"<{len(spec.row_edges)}Q", *spec.row_edges),
        struct.pack(f"<{len(spec.col_edges)}Q", *spec.col_edges),
        struct.pack(f"<{len(spec.k_edges)}Q", *spec.k_edges),
        _text(spec.backend),
        _text(spec.code_path),
        struct.pack("<IQ", threads, created),
    ]
    return b"".join(parts)


def _commitments_payload(trace: Trace) -> bytes:
    return trace.a.to_bytes() + trace.b.to_bytes() + trace.c.to_bytes()


def _section(kind: int, payload: bytes) -> bytes:
    return _SECTION.pack(kind, 0, len(payload)) + payload


def encode(trace: Trace, key: NodeKey) -> bytes:
    """Serialise and sign a trace with ``key`` (whose public key must be ``trace.node_id``).

    Raises:
        TraceFormatError: The node id is not the key's, or more than ``MAX_EXECUTORS`` executors.
    """
    if trace.node_id != key.public_key:
        raise TraceFormatError("the trace's node id is not the signing key's")
    if len(trace.executors) > MAX_EXECUTORS:
        raise TraceFormatError(f"EXECUTORS: a trace names at most {MAX_EXECUTORS} plan slots")
    sections = [
        _section(JOB, _job_payload(trace.spec, trace.threads, trace.created)),
        _section(NODE, trace.node_id),
        _section(COMMITMENTS, _commitments_payload(trace)),
        _section(
            BLOCKS,
            struct.pack("<I", len(trace.blocks))
            + b"".join(_BLOCK.pack(x.i, x.j, x.k, x.digest) for x in trace.blocks),
        ),
    ]
    flags = 0
    if trace.executors:
        payload = struct.pack("<I", len(trace.executors))
        sections.append(_section(EXECUTORS, payload + b"".join(map(_text, trace.executors))))
        flags |= HAS_EXECUTORS
    if trace.proof is not None:
        sections.append(_section(PROOF, trace.proof.to_bytes()))
        flags |= HAS_PROOF
    body = _HEADER.pack(MAGIC, VERSION, flags, len(sections) + 1) + b"".join(sections)
    body += _SECTION.pack(SIGNATURE, 0, SIGNATURE_SIZE)
    return body + key.sign(body)


def write_trace(path: str | os.PathLike[str], trace: Trace, key: NodeKey) -> Path:
    """Sign ``trace`` and write it to ``path`` atomically.

    Raises:
        OutputFileError: The file cannot be written.
    """
    from ramnet.orchid._io import output_tempfile

    data = encode(trace, key)
    p = Path(path)
    try:
        fd, tmp = output_tempfile(p)
    except OSError as exc:
        raise OutputFileError(f"cannot write trace {p}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputFileError(f"cannot write trace {p}: {exc.strerror or exc}") from exc
    return p


class _Reader:
    def __init__(self, data: memoryview, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where

    def take(self, size: int) -> memoryview:
        if size < 0 or self.pos + size > len(self.data):
            raise TraceFormatError(f"{self.where}: truncated")
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def unpack(self, fmt: str) -> tuple[int, ...]:
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def text(self) -> str:
        (size,) = self.unpack("<H")
        if size > _MAX_TEXT:
            raise TraceFormatError(f"{self.where}: text field too long")
        try:
            return bytes(self.take(size)).decode("utf-8")
        except UnicodeDecodeError:
            raise TraceFormatError(f"{self.where}: text field is not UTF-8") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise TraceFormatError(
                f"{self.where}: {len(self.data) - self.pos} unexpected trailing bytes"
            )


def _edges(r: _Reader, count: int, total: int, name: str) -> tuple[int, ...]:
    if count > (len(r.data) - r.pos) // 8:
        raise TraceFormatError(f"JOB: {name} block count exceeds the section")
    edges = r.unpack(f"<{count + 1}Q")
    if edges[0] != 0 or edges[-1] != total or any(x > y for x, y in itertools.pairwise(edges)):
        raise TraceFormatError(f"JOB: {name} block edges are not increasing from 0 to {total}")
    return tuple(edges)


def _parse_job(payload: memoryview) -> tuple[JobSpec, int, int]:
    r = _Reader(payload, "JOB")
    m, k, n, dt, odt, p, q, rr = r.unpack("<QQQBBIII")
    if dt not in DTYPE_NAMES or odt not in DTYPE_NAMES:
        raise TraceFormatError("JOB: unknown dtype code")
    row_edges = _edges(r, p, m, "row")
    col_edges = _edges(r, q, n, "column")
    k_edges = _edges(r, rr, k, "inner")
    backend, code_path = r.text(), r.text()
    threads, created = r.unpack("<IQ")
    r.end()
    spec = JobSpec(
        m,
        k,
        n,
        DTYPE_NAMES[dt],
        DTYPE_NAMES[odt],
        (p, q, rr),
        row_edges,
        col_edges,
        k_edges,
        backend,
        code_path,
    )
    return spec, threads, created


def _parse_blocks(payload: memoryview, grid: tuple[int, int, int]) -> tuple[BlockDigest, ...]:
    r = _Reader(payload, "BLOCKS")
    (count,) = r.unpack("<I")
    if count * _BLOCK.size != len(payload) - 4:
        raise TraceFormatError("BLOCKS: the count does not match the section length")
    out: list[BlockDigest] = []
    for _ in range(count):
        i, j, k, digest = _BLOCK.unpack(r.take(_BLOCK.size))
        if i >= grid[0] or j >= grid[1] or k >= grid[2]:
            raise TraceFormatError(f"BLOCKS: block ({i}, {j}, {k}) lies outside the grid")
        if out and (out[-1].i, out[-1].j, out[-1].k) >= (i, j, k):
            raise TraceFormatError("BLOCKS: records are not sorted and unique")
        out.append(BlockDigest(i, j, k, bytes(digest)))
    return tuple(out)


def _parse_executors(payload: memoryview) -> tuple[str, ...]:
    r = _Reader(payload, "EXECUTORS")
    (count,) = r.unpack("<I")
    if not 1 <= count <= MAX_EXECUTORS:
        raise TraceFormatError(f"EXECUTORS: {count} plan slots; 1 to {MAX_EXECUTORS} allowed")
    # Each text takes at least its 2-byte length: a count the section cannot hold is refused
    # before anything is read.
    if count * 2 > len(payload) - 4:
        raise TraceFormatError("EXECUTORS: the count exceeds the section length")
    names = tuple(r.text() for _ in range(count))
    r.end()
    return names


def _flag_words(flags: int) -> str:
    return ", ".join(
        ("with " if flags & bit else "without ") + name
        for bit, name in ((HAS_PROOF, "PROOF"), (HAS_EXECUTORS, "EXECUTORS"))
    )


def decode(data: bytes) -> Trace:
    """Parse trace bytes (the signature is not checked here: see ``check_signature``).

    Raises:
        TraceFormatError: Anything malformed; the message names the part.
    """
    if len(data) > MAX_TRACE_BYTES:
        raise TraceFormatError(f"a trace is at most {MAX_TRACE_BYTES} bytes")
    view = memoryview(data)
    r = _Reader(view, "header")
    magic, version, flags, count = _HEADER.unpack(r.take(_HEADER.size))
    if magic != MAGIC:
        raise TraceFormatError("not a RAMNET trace (bad magic)")
    if version != VERSION:
        raise TraceFormatError(f"unsupported trace version {version}")
    if flags & ~(HAS_PROOF | HAS_EXECUTORS):
        raise TraceFormatError("unknown header flags")
    expected = [JOB, NODE, COMMITMENTS, BLOCKS]
    expected += [EXECUTORS] if flags & HAS_EXECUTORS else []
    expected += [PROOF] if flags & HAS_PROOF else []
    expected.append(SIGNATURE)
    if count != len(expected):
        raise TraceFormatError(
            f"header: {count} sections, but flags {flags} ({_flag_words(flags)}) "
            f"need {len(expected)}"
        )
    payloads: dict[int, memoryview] = {}
    signed_length = 0
    for kind in expected:
        r.where = _NAMES[kind]
        got, reserved, length = r.unpack("<HHI")
        if got != kind:
            raise TraceFormatError(
                f"section {_NAMES.get(got, got)} found where {_NAMES[kind]} belongs"
            )
        if reserved:
            raise TraceFormatError(f"{_NAMES[kind]}: reserved field is not zero")
        if kind == SIGNATURE:
            signed_length = r.pos
        payloads[kind] = r.take(length)
    r.where = "trace"
    r.end()
    spec, threads, created = _parse_job(payloads[JOB])
    if len(payloads[NODE]) != 32:
        raise TraceFormatError("NODE: a node id is 32 bytes")
    if len(payloads[COMMITMENTS]) != 3 * COMMITMENT_SIZE:
        raise TraceFormatError("COMMITMENTS: wrong length")
    raw = bytes(payloads[COMMITMENTS])
    ca, cb, cc = (
        Commitment.from_bytes(raw[t * COMMITMENT_SIZE : (t + 1) * COMMITMENT_SIZE])
        for t in range(3)
    )
    if (ca.shape, cb.shape, cc.shape) != ((spec.m, spec.k), (spec.k, spec.n), (spec.m, spec.n)):
        raise TraceFormatError("COMMITMENTS: shapes do not match the job")
    if (ca.dtype, cb.dtype, cc.dtype) != (spec.dtype, spec.dtype, spec.out_dtype):
        raise TraceFormatError("COMMITMENTS: dtypes do not match the job")
    for commitment in (ca, cb, cc):
        if commitment.leaf_count > MAX_LEAVES:
            raise TraceFormatError(f"COMMITMENTS: more than {MAX_LEAVES} tiles in one matrix")
    blocks = _parse_blocks(payloads[BLOCKS], spec.grid)
    executors = _parse_executors(payloads[EXECUTORS]) if flags & HAS_EXECUTORS else ()
    if flags & HAS_PROOF and spec.dtype.startswith("float"):
        raise TraceFormatError("PROOF: float jobs carry no proof")
    proof = MatmulProof.from_bytes(bytes(payloads[PROOF])) if flags & HAS_PROOF else None
    if len(payloads[SIGNATURE]) != SIGNATURE_SIZE:
        raise TraceFormatError("SIGNATURE: an Ed25519 signature is 64 bytes")
    return Trace(
        spec=spec,
        threads=threads,
        created=created,
        node_id=bytes(payloads[NODE]),
        a=ca,
        b=cb,
        c=cc,
        blocks=blocks,
        proof=proof,
        executors=executors,
        signature=bytes(payloads[SIGNATURE]),
        signed_length=signed_length,
    )


def check_signature(trace: Trace, data: bytes) -> bool:
    """Return whether the trace's signature covers ``data``'s signed bytes under its node id."""
    return verify_signature(trace.node_id, bytes(data[: trace.signed_length]), trace.signature)


def read_trace_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a trace file, refusing anything larger than a trace can be.

    Raises:
        InputFileError: Missing, unreadable, or too large.
    """
    p = Path(path)
    try:
        info = p.stat()
        size = info.st_size
        if size > MAX_TRACE_BYTES:
            raise InputFileError(f"{p} is {size} bytes; a trace is at most {MAX_TRACE_BYTES}")
        with p.open("rb") as f:
            # A read of n bytes allocates n first: a file's size plus one, not 64 MiB, then the
            # rest (a file that grew since, or a pipe) up to the cap as before.
            first = size + 1 if stat.S_ISREG(info.st_mode) else MAX_TRACE_BYTES + 1
            data = f.read(first)
            if len(data) == first and first <= MAX_TRACE_BYTES:
                data += f.read(MAX_TRACE_BYTES + 1 - first)
            return data
    except FileNotFoundError:
        raise InputFileError(f"no such trace file: {p}") from None
    except IsADirectoryError:
        raise InputFileError(f"{p} is a folder, not a trace") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {p}: {exc.strerror or exc}") from exc
