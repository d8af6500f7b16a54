"""The trace's EXECUTORS section (type 6, header flag bit 1): which executor computed each slot.

The known-answer file ``tests/data/trace_v1_executors.bin`` is the known-answer trace
``trace_v1.bin`` (see ``tests/data/make_trace_v1.py``) with ``KAT_EXECUTORS`` added, signed again
with the same fixed key; Ed25519 signatures are deterministic, so the bytes are the same on every
machine. It was written once, from the repository root, with::

    python tests/valkyrie/test_trace_executors.py --write

``test_known_executors_trace_is_what_the_builder_gives`` checks that the committed bytes still
match: the section's layout must not drift. Its proof is the v1 trace's, unchanged: the
Fiat–Shamir seed binds JOB and COMMITMENTS only, so it still verifies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ramnet._errors import TraceFormatError
from ramnet.cli import app
from ramnet.valkyrie import Trace, Verdict, decode, encode, verify_trace
from ramnet.valkyrie._trace import MAX_EXECUTORS, check_signature

DATA = Path(__file__).resolve().parents[1] / "data"
V1_BYTES = (DATA / "trace_v1.bin").read_bytes()
KAT = DATA / "trace_v1_executors.bin"
KAT_EXECUTORS = (
    "10.0.0.5:4711",
    "10.0.0.6:4711",
    "10.0.0.5:4711",
    "10.0.0.6:4711",
    "hôte-β.example:7077",  # not ASCII: the texts are UTF-8
    "10.0.0.5:4711",
)
EXECUTORS_TYPE, PROOF_TYPE, SIGNATURE_TYPE = 6, 5, 255


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_trace_v1", DATA / "make_trace_v1.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
KEY = GEN.known_key()


def build_kat() -> bytes:
    """The known-answer trace with ``KAT_EXECUTORS``, signed with the known key."""
    data = GEN.build()[0]
    bare = dataclasses.replace(
        decode(data), executors=KAT_EXECUTORS, signature=b"", signed_length=0
    )
    return encode(bare, KEY)


KAT_BYTES = KAT.read_bytes() if KAT.exists() else b""


def split(data: bytes) -> tuple[int, list[tuple[int, int, bytes]]]:
    """(header flags, [(type, reserved, payload)]) of a well-formed trace, signature included."""
    flags = struct.unpack_from("<H", data, 10)[0]
    out = []
    pos = 16
    while pos < len(data):
        kind, reserved, length = struct.unpack_from("<HHI", data, pos)
        out.append((kind, reserved, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length
    return flags, out


def join(flags: int, parts: list[tuple[int, int, bytes]], count: int | None = None) -> bytes:
    """A trace of these sections (the last one the signature, replaced), signed by the known key."""
    body = b"RAMNETTR" + struct.pack("<HHI", 1, flags, len(parts) if count is None else count)
    for kind, reserved, payload in parts[:-1]:
        body += struct.pack("<HHI", kind, reserved, len(payload)) + payload
    body += struct.pack("<HHI", SIGNATURE_TYPE, 0, 64)
    return body + KEY.sign(body)


def with_executors_payload(payload: bytes) -> bytes:
    """The known-answer trace with this EXECUTORS payload, re-signed."""
    flags, parts = split(KAT_BYTES)
    return join(flags, [(k, r, payload if k == EXECUTORS_TYPE else p) for k, r, p in parts])


def texts(*values: bytes) -> bytes:
    return b"".join(struct.pack("<H", len(v)) + v for v in values)


def verify_bytes(tmp_path: Path, data: bytes, **matrices: object) -> Verdict:
    path = tmp_path / "t.bin"
    path.write_bytes(data)
    return verify_trace(path, **matrices)  # type: ignore[arg-type]


# ---- the committed known-answer trace with executors ----


def test_known_executors_trace_is_what_the_builder_gives() -> None:
    assert build_kat() == KAT_BYTES, "the EXECUTORS section changed: the committed file differs"


def test_known_executors_trace_contents_and_signature() -> None:
    trace = decode(KAT_BYTES)
    assert trace.executors == KAT_EXECUTORS
    assert trace.node_id == KEY.public_key
    assert check_signature(trace, KAT_BYTES)
    assert struct.unpack_from("<HI", KAT_BYTES, 10) == (3, 7)  # proof and executors; 7 sections
    _, parts = split(KAT_BYTES)
    assert [k for k, _, _ in parts] == [1, 2, 3, 4, EXECUTORS_TYPE, PROOF_TYPE, SIGNATURE_TYPE]
    payload = dict((k, p) for k, _, p in parts)[EXECUTORS_TYPE]
    assert payload == struct.pack("<I", 6) + texts(*(x.encode() for x in KAT_EXECUTORS))
    # Everything else is the v1 trace's, the seed included: the executors are signed, not seeded.
    v1 = decode(V1_BYTES)
    assert dataclasses.replace(trace, executors=(), signature=b"", signed_length=0) == (
        dataclasses.replace(v1, signature=b"", signed_length=0)
    )
    assert trace.seed() == v1.seed()
    assert encode(trace, KEY) == KAT_BYTES


def test_known_executors_trace_verifies_with_and_without_matrices(tmp_path: Path) -> None:
    alone = verify_trace(KAT)
    assert alone.valid, alone.checks
    assert [c.name for c in alone.checks] == ["format", "signature", "executors", "proof"]
    executors = alone.checks[2]
    assert executors.ok and executors.detail == "6 slots on 3 executors"
    full = verify_trace(KAT, *(DATA / f"{x}.npy" for x in "ABC"))
    assert full.valid, full.checks
    assert "Freivalds" in [c.name for c in full.checks]
    assert full.to_dict()["trace"]["executors"] == list(KAT_EXECUTORS)
    # A trace without executors has no such check and no such key.
    v1 = verify_trace(DATA / "trace_v1.bin")
    assert "executors" not in [c.name for c in v1.checks]
    assert "executors" not in v1.to_dict()["trace"]


def test_changed_executor_breaks_the_signature(tmp_path: Path) -> None:
    at = KAT_BYTES.index(b"10.0.0.6")
    forged = KAT_BYTES[:at] + b"10.0.0.7" + KAT_BYTES[at + 8 :]
    assert decode(forged).executors[1] == "10.0.0.7:4711"
    verdict = verify_bytes(tmp_path, forged)
    assert verdict.failed == ["signature"]


def test_cli_verify_shows_the_executors(tmp_path: Path) -> None:
    # No RAMNET_* settings from outside, and a private config folder.
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RAMNET_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    runner = CliRunner(env=env)
    result = runner.invoke(app, ["verify", str(KAT), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["valid"] and data["trace"]["executors"] == list(KAT_EXECUTORS)
    check = next(c for c in data["checks"] if c["name"] == "executors")
    assert check == {"name": "executors", "ok": True, "detail": "6 slots on 3 executors"}
    table = runner.invoke(app, ["verify", str(KAT)])
    assert table.exit_code == 0, table.output
    assert "executors" in table.stdout and "6 slots on 3 executors" in table.stdout


# ---- writing ----


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=0, max_size=30), st.booleans())
def test_round_trip(names: list[str], proof: bool) -> None:
    names = [n.encode("utf-8", "ignore").decode("utf-8", "ignore") for n in names]
    base = dataclasses.replace(decode(V1_BYTES), signature=b"", signed_length=0)
    if not proof:
        base = dataclasses.replace(base, proof=None)
    trace = dataclasses.replace(base, executors=tuple(names))
    data = encode(trace, KEY)
    back = decode(data)
    assert back.executors == tuple(names)
    assert check_signature(back, data)
    assert back.seed() == base.seed()
    flags = struct.unpack_from("<H", data, 10)[0]
    assert flags == (2 if names else 0) | (1 if proof else 0)
    if not names:  # no executors: exactly the bytes a trace had before the section existed
        assert data == encode(base, KEY)


def test_no_executors_keeps_the_v1_bytes() -> None:
    assert encode(dataclasses.replace(decode(V1_BYTES), executors=()), KEY) == V1_BYTES


def test_long_executor_names_cut_at_a_character() -> None:
    base = dataclasses.replace(decode(V1_BYTES), signature=b"", signed_length=0)
    long = "é" * 200  # 400 bytes: cut to 256, whole characters
    back = decode(encode(dataclasses.replace(base, executors=(long, "x")), KEY))
    assert back.executors == ("é" * 128, "x")


def test_slot_bounds_on_writing() -> None:
    base = dataclasses.replace(decode(V1_BYTES), signature=b"", signed_length=0)
    most = tuple(f"e{s % 7}" for s in range(MAX_EXECUTORS))
    assert decode(encode(dataclasses.replace(base, executors=most), KEY)).executors == most
    with pytest.raises(TraceFormatError, match="EXECUTORS"):
        encode(dataclasses.replace(base, executors=(*most, "one more")), KEY)


def test_keyword_and_positional_construction_unchanged() -> None:
    # Fields before ``executors`` keep their positions; it defaults to none.
    v1 = decode(V1_BYTES)
    fields = [f.name for f in dataclasses.fields(Trace)]
    assert fields[:9] == ["spec", "threads", "created", "node_id", "a", "b", "c", "blocks", "proof"]
    assert fields[9:] == ["executors", "signature", "signed_length"]
    rebuilt = Trace(v1.spec, v1.threads, v1.created, v1.node_id, v1.a, v1.b, v1.c, v1.blocks)
    assert rebuilt.executors == () and rebuilt.proof is None


# ---- reading: every malformation refused, naming EXECUTORS ----


def _count(value: int) -> bytes:
    return with_executors_payload(struct.pack("<I", value) + texts(b"a", b"b"))


def _malformed() -> list[tuple[str, bytes, str]]:
    if not KAT_BYTES:
        return []
    flags, parts = split(KAT_BYTES)
    _, v1_parts = split(V1_BYTES)
    executors = next(p for k, _, p in parts if k == EXECUTORS_TYPE)
    without = [x for x in parts if x[0] != EXECUTORS_TYPE]
    swapped = [*parts[:4], parts[5], parts[4], parts[6]]
    reserved = [(k, 1 if k == EXECUTORS_TYPE else r, p) for k, r, p in parts]
    return [
        ("no slots", _count(0), "EXECUTORS: 0 plan slots"),
        ("too many slots", _count(MAX_EXECUTORS + 1), "EXECUTORS: 4097 plan slots"),
        ("most slots", _count(2**32 - 1), "plan slots; 1 to 4096"),
        ("count beyond the section", _count(MAX_EXECUTORS), "EXECUTORS: the count exceeds"),
        ("count above the texts", _count(3), "EXECUTORS: truncated"),
        ("count below the texts", _count(1), "EXECUTORS: 3 unexpected trailing bytes"),
        ("empty section", with_executors_payload(b""), "EXECUTORS: truncated"),
        ("short count", with_executors_payload(b"\x01\x00"), "EXECUTORS: truncated"),
        (
            "overlong text",
            with_executors_payload(struct.pack("<I", 1) + texts(b"x" * 257)),
            "EXECUTORS: text field too long",
        ),
        (
            "text length beyond the section",
            with_executors_payload(struct.pack("<IH", 1, 200) + b"abc"),
            "EXECUTORS: truncated",
        ),
        (
            "bad UTF-8",
            with_executors_payload(struct.pack("<I", 2) + texts(b"ok", b"\xff\xfe:1")),
            "EXECUTORS: text field is not UTF-8",
        ),
        (
            "cut UTF-8",
            with_executors_payload(struct.pack("<I", 1) + texts("β".encode()[:1])),
            "EXECUTORS: text field is not UTF-8",
        ),
        (
            "trailing bytes",
            with_executors_payload(executors + b"\x00"),
            "EXECUTORS: 1 unexpected trailing bytes",
        ),
        ("flag without section", join(flags, without), "(with PROOF, with EXECUTORS) need 7"),
        (
            "flag without section, count agreeing",
            join(flags, without, count=7),
            "section PROOF found where EXECUTORS belongs",
        ),
        (
            "flag on a v1 trace, count agreeing",
            join(3, v1_parts, count=7),
            "section PROOF found where EXECUTORS belongs",
        ),
        ("section without flag", join(1, parts), "(with PROOF, without EXECUTORS) need 6"),
        (
            "section without flag, count agreeing",
            join(1, parts, count=6),
            "section EXECUTORS found where PROOF belongs",
        ),
        (
            "section without flag or proof",
            join(0, [*parts[:5], parts[6]], count=5),
            "section EXECUTORS found where SIGNATURE belongs",
        ),
        ("after the proof", join(flags, swapped), "section PROOF found where EXECUTORS belongs"),
        ("twice", join(flags, [*parts[:5], *parts[4:]]), "need 7"),
        ("reserved field", join(flags, reserved), "EXECUTORS: reserved field is not zero"),
    ]


@pytest.mark.parametrize(
    ("what", "data", "words"), [pytest.param(*case, id=case[0]) for case in _malformed()]
)
def test_malformed_section_refused(tmp_path: Path, what: str, data: bytes, words: str) -> None:
    with pytest.raises(TraceFormatError) as info:
        decode(data)
    assert words in str(info.value), (what, str(info.value))
    assert "EXECUTORS" in str(info.value)
    verdict = verify_bytes(tmp_path, data)
    assert verdict.failed == ["format"] and not verdict.valid


@pytest.mark.parametrize("flags", [4, 5, 6, 7, 8, 0x8000, 0xFFFF])
def test_unknown_flag_bits_still_refused(flags: int) -> None:
    _, parts = split(KAT_BYTES)
    with pytest.raises(TraceFormatError, match="unknown header flags"):
        decode(join(flags, parts))


# ---- fuzzing the section ----


@st.composite
def section_payloads(draw):  # type: ignore[no-untyped-def]
    how = draw(st.sampled_from(["random", "counted", "mutated"]))
    if how == "random":
        return draw(st.binary(max_size=600))
    if how == "counted":
        count = draw(st.sampled_from([0, 1, 2, 3, 6, 255, MAX_EXECUTORS, MAX_EXECUTORS + 1]))
        return struct.pack("<I", count) + draw(st.binary(max_size=600))
    _, parts = split(KAT_BYTES)
    payload = bytearray(next(p for k, _, p in parts if k == EXECUTORS_TYPE))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(payload)))
        kind = draw(st.sampled_from(["set", "insert", "delete"]))
        if kind == "set" and pos < len(payload):
            payload[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            payload[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del payload[pos : pos + draw(st.integers(1, 8))]
    return bytes(payload)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=section_payloads())
@example(payload=b"")
@example(payload=b"\x01\x00\x00\x00\x00\x00")  # one empty name: allowed
def test_random_section_bytes_raise_only_trace_format_errors(
    tmp_path: Path, payload: bytes
) -> None:
    data = with_executors_payload(payload)
    try:
        trace = decode(data)
    except TraceFormatError as exc:
        assert "EXECUTORS" in str(exc)
        return
    # Whatever decodes re-encodes to the same bytes, and verifies (it is signed).
    assert 1 <= len(trace.executors) <= MAX_EXECUTORS
    assert encode(trace, KEY) == data
    assert verify_bytes(tmp_path, data).valid


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([0, 1, 2, 3]))
def test_random_bytes_after_blocks_never_crash(raw: bytes, flags: int) -> None:
    # Any bytes where the EXECUTORS (or PROOF) section would start, under every flag setting.
    _, parts = split(KAT_BYTES)
    body = join(flags, [*parts[:4], parts[-1]], count=4 + bin(flags).count("1") + 1)[:-72]
    with contextlib.suppress(TraceFormatError):
        decode(body + raw)


def test_matrices_with_executors_trace_match(tmp_path: Path) -> None:
    a, b, c = (np.load(DATA / f"{x}.npy") for x in "ABC")
    verdict = verify_bytes(tmp_path, KAT_BYTES, a=a, b=b, c=c)
    assert verdict.valid, verdict.checks
    wrong = c.copy()
    wrong[0, 0] += 1
    tampered = verify_bytes(tmp_path, KAT_BYTES, a=a, b=b, c=wrong)
    assert "commitment of C" in tampered.failed


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {sys.argv[0]} --write  (rewrites {KAT})")
    KAT.write_bytes(build_kat())
    print(f"wrote {KAT} ({KAT.stat().st_size} bytes)")
