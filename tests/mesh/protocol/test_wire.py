"""RNWIRE1, the mesh's body format: round trips, strict validation, fuzzing (never pickle)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ramnet._errors import InvalidInputError, TraceFormatError, UnsupportedDTypeError
from ramnet.mesh.protocol.wire import (
    DEFAULT_WIRE_DTYPES,
    WIRE_CONTENT_TYPE,
    WIRE_MAGIC,
    WireFormatError,
    pack,
    pack_parts,
    unpack,
)

MAX = 1 << 22

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
metas = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
wire_dtypes = st.sampled_from(
    [np.dtype(d).newbyteorder(o) for d in DEFAULT_WIRE_DTYPES for o in ("<", ">")]
)
arrays_st = wire_dtypes.flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
)
named_arrays = st.dictionaries(st.text(min_size=1, max_size=12), arrays_st, max_size=4)


def raw(
    doc: Any, data: bytes = b"", *, pad: bytes | None = None, text: bytes | None = None
) -> bytes:
    """A container built by hand (for malformed cases)."""
    head = json.dumps(doc).encode() if text is None else text
    n = 12 + len(head)
    padding = bytes(-n % 64) if pad is None else pad
    return WIRE_MAGIC + struct.pack("<I", len(head)) + head + padding + data


def entry(
    name: str = "a", dtype: str = "int32", shape: Any = (2,), offset: int = 0, length: int = 8
) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": list(shape), "offset": offset, "length": length}


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert a.dtype.name == b.dtype.name
    assert a.dtype.byteorder in "<=|"
    np.testing.assert_array_equal(a, b)


# -- round trips ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=metas, arrays=named_arrays)
def test_round_trip(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    data = pack(meta, arrays)
    got_meta, got = unpack(data, max_bytes=MAX)
    assert got_meta == json.loads(json.dumps(meta))
    assert set(got) == set(arrays)
    for name, arr in arrays.items():
        assert_same(got[name], arr)
        assert not got[name].flags.writeable
    assert pack(got_meta, got) == data  # canonical: packing what was read gives the same bytes


def test_layout_and_zero_copy() -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    b = np.linspace(0, 1, 5)
    data = pack({"job": "x"}, {"a": a, "b": b})
    assert data.startswith(WIRE_MAGIC)
    (json_len,) = struct.unpack_from("<I", data, 8)
    doc = json.loads(data[12 : 12 + json_len])
    assert doc["meta"] == {"job": "x"}
    start = -(-(12 + json_len) // 64) * 64
    for e in doc["arrays"]:
        assert e["offset"] % 64 == 0
    assert len(data) == start + doc["arrays"][-1]["offset"] + doc["arrays"][-1]["length"]
    _, got = unpack(data, max_bytes=MAX)
    base = np.frombuffer(data, np.uint8)
    assert all(np.shares_memory(base, x) for x in got.values())
    with pytest.raises(ValueError):
        got["a"][0, 0] = 1
    # A writable buffer still gives read-only arrays.
    _, got2 = unpack(bytearray(data), max_bytes=MAX)
    assert not got2["a"].flags.writeable
    np.testing.assert_array_equal(got2["b"], b)
    _, got3 = unpack(memoryview(data), max_bytes=MAX)
    np.testing.assert_array_equal(got3["a"], a)


def test_awkward_inputs_are_written_little_endian_c_order() -> None:
    x = np.arange(24, dtype=">i8").reshape(4, 6)[::2, ::-3]
    scalar = np.asarray(np.float32(2.5))
    _, got = unpack(
        pack({}, {"x": x, "s": scalar, "empty": np.zeros((0, 7), np.uint8)}), max_bytes=MAX
    )
    assert_same(got["x"], x)
    assert got["s"].shape == () and got["s"] == 2.5
    assert got["empty"].shape == (0, 7)


def test_no_arrays() -> None:
    data = pack({"hello": [1, 2, {"x": None}]}, {})
    assert len(data) % 64 == 0
    assert unpack(data, max_bytes=MAX) == ({"hello": [1, 2, {"x": None}]}, {})


# -- pack refuses what cannot travel -------------------------------------------------------------


@pytest.mark.parametrize(
    "meta",
    [{"x": float("nan")}, {"x": float("inf")}, {"x": object()}, {"x": b"bytes"}],
)
def test_pack_refuses_bad_meta(meta: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        pack(meta, {})


def test_pack_refuses_deep_or_huge_meta() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="nests"):
        pack({"x": deep}, {})
    with pytest.raises(InvalidInputError, match="over"):
        pack({"x": "y" * (1 << 21)}, {})
    with pytest.raises(InvalidInputError):
        pack([1, 2], {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "array",
    [np.array([object()]), np.array(["text"]), np.zeros(2, complex), np.zeros(2, [("a", "i4")])],
)
def test_pack_refuses_bad_dtypes(array: np.ndarray) -> None:
    with pytest.raises(UnsupportedDTypeError):
        pack({}, {"a": array})


def test_pack_refuses_bad_names() -> None:
    with pytest.raises(InvalidInputError):
        pack({}, {"": np.zeros(1)})
    with pytest.raises(InvalidInputError):
        pack({}, {"x" * 300: np.zeros(1)})


# -- unpack: every kind of malformed container ---------------------------------------------------


def _ok_doc() -> dict[str, Any]:
    return {"meta": {}, "arrays": [entry()]}


BAD: dict[str, bytes] = {
    "empty": b"",
    "short": WIRE_MAGIC[:5],
    "bad magic": b"RNWIRE2\0" + bytes(60),
    "json length past end": WIRE_MAGIC + struct.pack("<I", 1000) + b"{}",
    "huge json length": WIRE_MAGIC + struct.pack("<I", 2**32 - 1) + b"{}",
    "not utf-8": raw(None, text=b'{"meta":{"\xff":1},"arrays":[]}'),
    "utf-16": raw(None, text='{"meta":{},"arrays":[]}'.encode("utf-16")),
    "not json": raw(None, text=b"{meta"),
    "nan constant": raw(None, text=b'{"meta":{"x":NaN},"arrays":[]}'),
    "infinity constant": raw(None, text=b'{"meta":{"x":-Infinity},"arrays":[]}'),
    "duplicate keys": raw(None, text=b'{"meta":{},"meta":{},"arrays":[]}'),
    "top is a list": raw([]),
    "missing arrays": raw({"meta": {}}),
    "extra key": raw({"meta": {}, "arrays": [], "x": 1}),
    "meta not object": raw({"meta": [], "arrays": []}),
    "arrays not list": raw({"meta": {}, "arrays": {}}),
    "deep json": raw(None, text=b'{"meta":{"x":' + b"[" * 100 + b"]" * 100 + b'},"arrays":[]}'),
    "very deep json": raw(None, text=b'{"meta":{"x":' + b"[" * 200_000 + b"]" * 200_000 + b"}}"),
    "nonzero padding": raw({"meta": {}, "arrays": []}, pad=b"\x01" + bytes(30)),
    "missing padding": raw({"meta": {}, "arrays": []}, pad=b""),
    "trailing bytes": raw({"meta": {}, "arrays": []}) + b"\0",
    "entry not object": raw({"meta": {}, "arrays": [1]}, bytes(8)),
    "entry extra key": raw({"meta": {}, "arrays": [{**entry(), "x": 1}]}, bytes(8)),
    "entry missing key": raw({"meta": {}, "arrays": [{"name": "a", "dtype": "int32"}]}, bytes(8)),
    "empty name": raw({"meta": {}, "arrays": [entry(name="")]}, bytes(8)),
    "name not str": raw({"meta": {}, "arrays": [{**entry(), "name": 3}]}, bytes(8)),
    "object dtype": raw({"meta": {}, "arrays": [entry(dtype="object")]}, bytes(8)),
    "pickle-ish dtype": raw({"meta": {}, "arrays": [entry(dtype="O")]}, bytes(8)),
    "big-endian dtype string": raw({"meta": {}, "arrays": [entry(dtype=">i4")]}, bytes(8)),
    "structured dtype": raw({"meta": {}, "arrays": [entry(dtype="(2,)i4")]}, bytes(8)),
    "float16 not allowed": raw(
        {"meta": {}, "arrays": [entry(dtype="float16", length=4)]}, bytes(8)
    ),
    "dtype not str": raw({"meta": {}, "arrays": [{**entry(), "dtype": 4}]}, bytes(8)),
    "negative dim": raw({"meta": {}, "arrays": [entry(shape=(-2,), length=-8)]}, bytes(8)),
    "bool dim": raw({"meta": {}, "arrays": [entry(shape=(True, 2))]}, bytes(8)),
    "float dim": raw({"meta": {}, "arrays": [entry(shape=(2.0,))]}, bytes(8)),
    "shape not list": raw({"meta": {}, "arrays": [{**entry(), "shape": 2}]}, bytes(8)),
    "too many dims": raw({"meta": {}, "arrays": [entry(shape=(1,) * 33 + (2,))]}, bytes(8)),
    "huge shape": raw({"meta": {}, "arrays": [entry(shape=(2**62, 2**62), length=8)]}, bytes(8)),
    "huge shape and length": raw(
        {"meta": {}, "arrays": [entry(shape=(2**40,), length=2**42)]}, bytes(8)
    ),
    "length mismatch": raw({"meta": {}, "arrays": [entry(length=4)]}, bytes(8)),
    "length past end": raw({"meta": {}, "arrays": [entry(shape=(4,), length=16)]}, bytes(8)),
    "offset past end": raw({"meta": {}, "arrays": [entry(offset=64)]}, bytes(8)),
    "negative offset": raw({"meta": {}, "arrays": [entry(offset=-8)]}, bytes(8)),
    "unaligned offset": raw({"meta": {}, "arrays": [entry(offset=4)]}, bytes(12)),
    "float offset": raw({"meta": {}, "arrays": [entry(offset=0.0)]}, bytes(8)),  # type: ignore[arg-type]
    "bool length": raw(
        {"meta": {}, "arrays": [{**entry(shape=(1,), dtype="int8"), "length": True}]}, bytes(8)
    ),
    "overlap": raw(
        {"meta": {}, "arrays": [entry("a", shape=(4,), length=16), entry("b", offset=8)]}, bytes(16)
    ),
    "duplicate names": raw({"meta": {}, "arrays": [entry("a"), entry("a", offset=8)]}, bytes(16)),
    "4300-digit offset": raw(
        {"meta": {}, "arrays": [entry(shape=(1,), dtype="int8", offset=10**4299, length=1)]},
        bytes(8),
    ),
    "4300-digit dims": raw(
        {"meta": {}, "arrays": [entry(shape=(10**4299,) * 32, length=10**4299)]}, bytes(8)
    ),
    "5000-digit integer": raw(None, text=b'{"meta":{"x":' + b"9" * 5000 + b'},"arrays":[]}'),
    "trailing after arrays": raw({"meta": {}, "arrays": [entry()]}, bytes(16)),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_unpack_refuses(name: str) -> None:
    with pytest.raises(WireFormatError) as info:
        unpack(BAD[name], max_bytes=MAX)
    assert isinstance(info.value, TraceFormatError)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 400


def test_valid_hand_built_container() -> None:
    data = raw(_ok_doc(), np.array([7, -1], "<i4").tobytes())
    meta, arrays = unpack(data, max_bytes=MAX)
    assert meta == {}
    np.testing.assert_array_equal(arrays["a"], [7, -1])


def test_bounds() -> None:
    data = pack({"x": "y" * 100}, {"a": np.zeros(1000)})
    with pytest.raises(WireFormatError, match="over the limit"):
        unpack(data, max_bytes=len(data) - 1)
    assert unpack(data, max_bytes=len(data))[0] == {"x": "y" * 100}
    with pytest.raises(WireFormatError, match="JSON"):
        unpack(data, max_bytes=MAX, max_json_bytes=50)
    with pytest.raises(WireFormatError, match="arrays"):
        unpack(pack({}, {"a": np.zeros(1), "b": np.zeros(1)}), max_bytes=MAX, max_arrays=1)
    deep = pack({"x": [[[[1]]]]}, {})
    with pytest.raises(WireFormatError, match="deeper"):
        unpack(deep, max_bytes=MAX, max_depth=4)
    assert unpack(deep, max_bytes=MAX, max_depth=6)[0] == {"x": [[[[1]]]]}


def test_allowed_dtypes() -> None:
    data = pack({}, {"a": np.zeros(3, np.float64)})
    with pytest.raises(WireFormatError, match="not allowed"):
        unpack(data, max_bytes=MAX, allowed_dtypes=(np.int8,))
    assert (
        unpack(pack({}, {"h": np.ones(2, np.float16)}), max_bytes=MAX, allowed_dtypes=[np.float16])[
            1
        ]["h"].dtype
        == np.float16
    )
    with pytest.raises(WireFormatError):
        unpack(pack({}, {"h": np.ones(2, np.float16)}), max_bytes=MAX)
    with pytest.raises(InvalidInputError):
        unpack(data, max_bytes=MAX, allowed_dtypes=(object,))


def test_non_contiguous_buffer_refused() -> None:
    data = np.frombuffer(pack({}, {}), np.uint8)
    with pytest.raises(WireFormatError):
        unpack(np.repeat(data, 2)[::2].data, max_bytes=MAX)


# -- fuzzing: only WireFormatError escapes -------------------------------------------------------


def _unpack_or_error(data: bytes) -> None:
    try:
        meta, arrays = unpack(data, max_bytes=MAX)
    except WireFormatError:
        return
    assert isinstance(meta, dict)
    for arr in arrays.values():
        assert not arr.flags.writeable
        assert arr.dtype in {np.dtype(d) for d in DEFAULT_WIRE_DTYPES}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _unpack_or_error(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_after_magic(tail: bytes) -> None:
    _unpack_or_error(WIRE_MAGIC + tail)


_SEED_CONTAINERS = [
    pack({"job": "j", "n": [1, 2.5, None]}, {"a": np.arange(6, dtype=np.int8).reshape(2, 3)}),
    pack({}, {"x": np.arange(4.0), "y": np.zeros((2, 0), np.int64), "z": np.asarray(np.uint64(7))}),
    pack({"deep": {"a": {"b": [True]}}}, {}),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEED_CONTAINERS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@settings(max_examples=500, deadline=None)
@given(mutated())
def test_fuzz_mutated_containers(data: bytes) -> None:
    _unpack_or_error(data)


json_fields = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["int8", "int32", "float64", "uint64", "object", "O", "<i4", "float16"]),
    st.lists(st.integers(min_value=-3, max_value=2**65), max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["name", "dtype", "shape", "offset", "length", "x"]),
            json_fields,
            max_size=6,
        ),
        max_size=3,
    ),
    st.binary(max_size=200),
)
def test_fuzz_entries(entries: list[dict[str, Any]], data: bytes) -> None:
    text = json.dumps({"meta": {}, "arrays": entries}).encode()  # NaN may appear: refused
    _unpack_or_error(raw(None, data, text=text))


def test_pack_parts_concatenate_to_the_container_without_copying_c_order_arrays() -> None:
    c_order = np.arange(3 << 18, dtype=np.int32).reshape(768, 1024)
    arrays = {
        "c": c_order,
        "fortran": np.asfortranarray(np.arange(35, dtype=np.int16).reshape(5, 7)),
        "big": np.arange(9, dtype=">f8"),
        "empty": np.zeros((0, 4), np.int8),
        "odd": np.arange(3, dtype=np.uint8),
    }
    parts = pack_parts({"job": "x"}, arrays)
    assert b"".join(parts) == pack({"job": "x"}, arrays)
    shared = [p for p in parts if isinstance(p, memoryview) and p.nbytes == c_order.nbytes]
    assert shared and np.shares_memory(np.frombuffer(shared[0], np.int32), c_order)


def test_the_coordinator_sends_a_reply_in_pieces_of_at_most_a_mib() -> None:
    import asyncio

    from ramnet.mesh.coordinator.app import wire_response

    parts = pack_parts({}, {"x": np.arange(700_000, dtype=np.int32), "y": np.ones(5, np.int8)})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(wire_response(parts)({"type": "http"}, None, send))
    start, *body, end = sent
    headers = dict(start["headers"])
    assert start["status"] == 200
    assert headers[b"content-length"] == str(sum(len(bytes(p)) for p in parts)).encode()
    assert headers[b"content-type"].decode() == WIRE_CONTENT_TYPE
    pieces = [m["body"] for m in body]
    assert all(m["more_body"] for m in body) and end == {
        "type": "http.response.body",
        "body": b"",
        "more_body": False,
    }
    assert max(p.nbytes for p in pieces) <= 1 << 20
    assert b"".join(pieces) == b"".join(parts)
