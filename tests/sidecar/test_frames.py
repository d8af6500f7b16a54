"""The sidecar's wire: frames, message validation, shared-memory segments; hostile input fuzzed.

Whatever arrives on the socket, only ``SidecarProtocolError`` (a ramnet error) may come out.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import struct
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramnet._errors import ConfigError, InvalidInputError, RamnetError
from ramnet.orchid import BlockProduct
from ramnet.sidecar.frames import (
    ALIGN,
    MAX_BLOCKS,
    MAX_FRAME,
    ComputeRequest,
    DaemonRequestError,
    SidecarProtocolError,
    TruncatedFrameError,
    attach_segment,
    create_segment,
    decode_body,
    encode_frame,
    error_reply,
    parse_daemon_url,
    parse_reply,
    parse_request,
    plan_request,
    read_frame,
    release_segment,
    segment_array,
    unpack_frame,
)

HEADER = struct.Struct(">I")


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def sample_request(dtype: str = "int8") -> ComputeRequest:
    blocks = [BlockProduct(0, 0, 0), BlockProduct(0, 1, 0), BlockProduct(1, 0, 1)]
    shapes_a = {(0, 0): (7, 5), (1, 1): (3, 9)}
    shapes_b = {(0, 0): (5, 4), (0, 1): (5, 1), (1, 0): (9, 4)}
    return plan_request(blocks, shapes_a, shapes_b, dtype, shm=f"ramnet_{os.getpid()}_" + "0" * 16)


def sample_message(**changes: Any) -> dict[str, Any]:
    message = sample_request().to_message()
    message.update(changes)
    return message


def shm_names() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(f"ramnet_{os.getpid()}_")}
    except FileNotFoundError:  # not Linux
        return set()


# ---- frames ----


def test_frame_round_trip_is_compact() -> None:
    message = {"v": 1, "op": "ping", "id": "ab"}
    data = encode_frame(message)
    assert data[:4] == struct.pack(">I", len(data) - 4)
    assert unpack_frame(data) == message
    assert b" " not in data[4:]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        HEADER.pack(0),
        HEADER.pack(MAX_FRAME + 1) + b"{}",
        HEADER.pack(0xFFFFFFFF),
        HEADER.pack(10) + b"{}",  # announces more than it holds
        frame(b"{}") + b"x",  # trailing bytes
        frame(b"{not json"),
        frame(b"\xff\xfe{}"),  # not UTF-8
        frame(b"[1, 2]"),
        frame(b'"text"'),
        frame(b"null"),
        frame(b'{"v": NaN}'),
        frame(b'{"v": Infinity}'),
        frame(b"[" * 100_000),  # nesting far beyond the recursion limit
        frame(b'{"a":' * 50_000),
    ],
    ids=lambda d: repr(d[:16]),
)
def test_bad_frames_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(SidecarProtocolError):
        unpack_frame(data)


def test_oversized_message_is_refused_before_sending() -> None:
    with pytest.raises(SidecarProtocolError, match="exceeds"):
        encode_frame({"blob": "x" * MAX_FRAME})
    with pytest.raises(SidecarProtocolError):
        encode_frame({"nan": float("nan")})
    with pytest.raises(SidecarProtocolError):
        encode_frame({"array": np.zeros(2)})


def test_read_frame_over_a_socket() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(encode_frame({"x": 1}) + encode_frame({"y": [1, 2]}))
        assert read_frame(b) == ({"x": 1}, 4 + len(b'{"x":1}'))
        assert read_frame(b) == ({"y": [1, 2]}, 4 + len(b'{"y":[1,2]}'))
        a.shutdown(socket.SHUT_WR)
        assert read_frame(b) is None  # closed between frames: a clean end


def test_read_frame_refuses_an_oversized_header_without_reading_on() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(HEADER.pack(MAX_FRAME + 1))  # and nothing else: must not wait for a body
        b.settimeout(5)
        with pytest.raises(SidecarProtocolError, match="exceeds"):
            read_frame(b)


@pytest.mark.parametrize("data", [b"\x00\x00", HEADER.pack(9) + b"{}"])
def test_read_frame_truncated(data: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        b.settimeout(5)
        with pytest.raises(TruncatedFrameError):
            read_frame(b)


# ---- requests ----


def test_plan_layout_is_aligned_disjoint_and_parses_back() -> None:
    request = sample_request("int16")
    parsed = parse_request(request.to_message())
    assert parsed == request
    regions = [*request.tiles_a.values(), *request.tiles_b.values()]
    regions += [r for _, r in request.blocks]
    spans = sorted((r.offset, r.offset + r.nbytes) for r in regions)
    spans.append((request.trace_offset, request.trace_offset + request.trace_capacity))
    assert all(start % ALIGN == 0 for start, _ in spans)
    assert all(end0 <= start1 for (_, end0), (start1, _) in itertools.pairwise(spans))
    assert spans[-1][1] == request.size
    # Partials of int16 come back as int64.
    assert {r.dtype for _, r in request.blocks} == {np.dtype(np.int64)}
    assert request.blocks[0][1].shape == (7, 4)


def test_ping_parses_to_its_id() -> None:
    assert parse_request({"v": 1, "op": "ping", "id": "00ff"}) == "00ff"


def _tile(message: dict[str, Any], which: str, index: int, field: int, value: Any) -> None:
    message[which][index][field] = value


BAD_REQUESTS: list[tuple[str, Any]] = [
    ("version", lambda m: m.update(v=2)),
    ("bool version", lambda m: m.update(v=True)),
    ("op", lambda m: m.update(op="shutdown")),
    ("id not hex", lambda m: m.update(id="XYZ")),
    ("id too long", lambda m: m.update(id="a" * 33)),
    ("unknown field", lambda m: m.update(commitment="abc")),
    ("missing field", lambda m: m.pop("trace")),
    ("shm path", lambda m: m.update(shm="../../etc/passwd")),
    ("shm absolute", lambda m: m.update(shm="/dev/shm/ramnet_1_0000000000000000")),
    ("shm not ours", lambda m: m.update(shm="psm_12345")),
    ("shm number", lambda m: m.update(shm=12)),
    ("size float", lambda m: m.update(size=1.0 * m["size"])),
    ("size bool", lambda m: m.update(size=True)),
    ("size zero", lambda m: m.update(size=0)),
    ("size huge", lambda m: m.update(size=1 << 60)),
    ("object dtype", lambda m: m.update(dtype="object")),
    ("dtype code", lambda m: m.update(dtype="O")),
    ("uint8 dtype", lambda m: m.update(dtype="uint8")),
    ("a not list", lambda m: m.update(a={"0": 1})),
    ("a entry short", lambda m: m["a"].__setitem__(0, [0, 0, 0])),
    ("a rows zero", lambda m: _tile(m, "a", 0, 3, 0)),
    ("a rows str", lambda m: _tile(m, "a", 0, 3, "7")),
    ("a negative offset", lambda m: _tile(m, "a", 0, 2, -64)),
    ("a misaligned", lambda m: _tile(m, "a", 0, 2, 3)),
    ("a beyond segment", lambda m: _tile(m, "a", 0, 2, m["size"] - ALIGN)),
    ("a overlaps b", lambda m: _tile(m, "a", 0, 2, m["b"][0][2])),
    ("a duplicate", lambda m: m["a"].append(list(m["a"][0]))),
    ("tiles do not fit", lambda m: _tile(m, "b", 0, 3, 6)),
    ("shape beyond segment", lambda m: _tile(m, "a", 0, 4, 10**9)),
    ("no blocks", lambda m: m.update(blocks=[])),
    ("block without tile", lambda m: m["blocks"].append([5, 5, 5, 0])),
    ("block twice", lambda m: m["blocks"].append(list(m["blocks"][0]))),
    ("block as dict", lambda m: m["blocks"].__setitem__(0, {"i": 0})),
    ("partial overlaps tile", lambda m: m["blocks"][0].__setitem__(3, m["a"][0][2])),
    ("trace beyond", lambda m: m.update(trace=[m["size"], 10])),
    ("trace capacity zero", lambda m: m.update(trace=[m["trace"][0], 0])),
    ("trace not pair", lambda m: m.update(trace=[0])),
    (
        "too many blocks",
        lambda m: m.update(blocks=[[0, 0, 0, 0]] * (MAX_BLOCKS + 1)),
    ),
]


@pytest.mark.parametrize("mutate", [m for _, m in BAD_REQUESTS], ids=[n for n, _ in BAD_REQUESTS])
def test_bad_requests_are_protocol_errors(mutate: Any) -> None:
    message = json.loads(json.dumps(sample_message()))
    mutate(message)
    with pytest.raises(SidecarProtocolError):
        parse_request(message)


def test_plan_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(InvalidInputError):
        plan_request([], {}, {}, "int8")
    with pytest.raises(InvalidInputError, match="not provided"):
        plan_request([BlockProduct(0, 0, 0)], {}, {(0, 0): (2, 2)}, "int8")
    with pytest.raises(InvalidInputError, match="fit"):
        plan_request([BlockProduct(0, 0, 0)], {(0, 0): (2, 3)}, {(0, 0): (2, 2)}, "int8")
    with pytest.raises(InvalidInputError):
        plan_request([BlockProduct(0, 0, 0)], {(0, 0): (2, 2)}, {(0, 0): (2, 2)}, "uint8")


# ---- replies ----


def test_replies() -> None:
    assert parse_reply({"v": 1, "op": "result", "id": "ab", "trace_bytes": 12}, "ab") == (
        "result",
        12,
    )
    assert parse_reply({"v": 1, "op": "pong", "id": "ab", "daemon": {"pid": 1}}, "ab") == (
        "pong",
        {"pid": 1},
    )
    with pytest.raises(DaemonRequestError, match="bad operands") as caught:
        parse_reply(error_reply("ab", "invalid", "bad operands"), "ab")
    assert caught.value.kind == "invalid"
    with pytest.raises(DaemonRequestError):
        parse_reply(error_reply(None, "busy", "too many"), "ab")


@pytest.mark.parametrize(
    "reply",
    [
        {"v": 1, "op": "result", "id": "cd", "trace_bytes": 1},  # another request's
        {"v": 1, "op": "result", "id": "ab", "trace_bytes": -1},
        {"v": 1, "op": "result", "id": "ab", "trace_bytes": "1"},
        {"v": 1, "op": "result", "id": "ab"},
        {"v": 1, "op": "result", "id": "ab", "trace_bytes": 1, "partials": []},
        {"v": 1, "op": "pong", "id": "ab", "daemon": []},
        {"v": 1, "op": "error", "id": "ab", "kind": "nope", "error": "x"},
        {"v": 1, "op": "error", "id": "cd", "kind": "failed", "error": "x"},
        {"v": 1, "op": "error", "id": "ab", "kind": "failed", "error": 5},
        {"v": 1, "op": "compute", "id": "ab"},
        {"v": 9, "op": "result", "id": "ab", "trace_bytes": 1},
        {},
    ],
)
def test_bad_replies_are_protocol_errors(reply: dict[str, Any]) -> None:
    with pytest.raises(SidecarProtocolError):
        parse_reply(reply, "ab")


def test_error_reply_is_one_bounded_line() -> None:
    reply = error_reply("ab", "failed", "line one\nline two " + "x" * 2000)
    assert "\n" not in reply["error"] and len(reply["error"]) <= 500
    assert len(encode_frame(reply)) < 1024


# ---- shared memory ----


def test_segment_round_trip_and_cleanup() -> None:
    before = shm_names()
    seg = create_segment(4096)
    try:
        assert seg.name.startswith(f"ramnet_{os.getpid()}_")
        request = replace(sample_request(), shm=seg.name)
        region = request.tiles_a[(0, 0)]
        segment_array(seg, region, writable=True)[...] = np.arange(35, dtype=np.int8).reshape(7, 5)
        peer = attach_segment(seg.name, 4096)
        try:
            view = segment_array(peer, region, writable=False)
            assert view[6, 4] == 34 and not view.flags.writeable
            del view
        finally:
            release_segment(peer, unlink=False)
        assert seg.name in shm_names() or not before
    finally:
        release_segment(seg, unlink=True)
    assert shm_names() == before


def test_attach_refuses_missing_foreign_and_short_segments() -> None:
    with pytest.raises(SidecarProtocolError, match="no shared-memory segment"):
        attach_segment(f"ramnet_{os.getpid()}_" + "f" * 16, 64)
    with pytest.raises(SidecarProtocolError, match="not a ramnet segment"):
        attach_segment("psm_deadbeef", 64)
    with pytest.raises(SidecarProtocolError, match="not a ramnet segment"):
        attach_segment("../ramnet_1_0000000000000000", 64)
    seg = create_segment(128)
    try:
        with pytest.raises(SidecarProtocolError, match="holds"):
            attach_segment(seg.name, 1 << 20)  # a shape that does not fit the segment
    finally:
        release_segment(seg, unlink=True)


def test_release_with_a_live_view_still_unlinks() -> None:
    before = shm_names()
    seg = create_segment(256)
    view = np.frombuffer(seg.buf, dtype=np.uint8)  # holds the mapping open
    release_segment(seg, unlink=True)  # must not raise
    assert shm_names() == before
    view[0] = 1  # the mapping itself is still valid until the view goes
    del view


# ---- addresses ----


def test_parse_daemon_url(tmp_path: Any) -> None:
    assert str(parse_daemon_url("unix:///run/ramnet/daemon.sock")) == "/run/ramnet/daemon.sock"
    assert str(parse_daemon_url("unix://rel/d.sock")) == "rel/d.sock"
    for bad in ("", "/run/d.sock", "http://127.0.0.1:9000", "unix://", "unix:///x\0y"):
        with pytest.raises(ConfigError):
            parse_daemon_url(bad)
    with pytest.raises(ConfigError, match="107"):
        parse_daemon_url("unix:///" + "d" * 200)
    assert issubclass(ConfigError, InvalidInputError)  # exit 2 in the CLI


# ---- fuzzing: only ramnet's protocol error may escape ----

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=30,
)
FIELDS = ["v", "op", "id", "shm", "size", "dtype", "a", "b", "blocks", "trace"]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_raw_frames(data: bytes) -> None:
    with contextlib.suppress(SidecarProtocolError):
        assert isinstance(unpack_frame(data), dict)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_frame_bodies(body: bytes) -> None:
    try:
        assert isinstance(unpack_frame(frame(body)), dict)
        assert isinstance(decode_body(body), dict)
    except SidecarProtocolError:
        pass


@FUZZ
@given(json_values)
def test_fuzz_json_messages(value: Any) -> None:
    data = frame(json.dumps(value).encode())
    try:
        message = unpack_frame(data)
        parse_request(message)
    except SidecarProtocolError:
        pass
    with contextlib.suppress(SidecarProtocolError, DaemonRequestError):
        parse_reply(value if isinstance(value, dict) else {}, "ab")


@FUZZ
@given(st.sampled_from(FIELDS), json_values, st.sampled_from(["a", "b", "blocks", "trace"]))
def test_fuzz_mutated_requests(field: str, value: Any, nested: str) -> None:
    # A valid request with one field, or one entry of a list, replaced by anything.
    message = json.loads(json.dumps(sample_message()))
    message[field] = value
    with contextlib.suppress(SidecarProtocolError):
        parse_request(message)
    message = json.loads(json.dumps(sample_message()))
    entries = message[nested]
    entries[0] = value
    with contextlib.suppress(SidecarProtocolError):
        parse_request(message)


@FUZZ
@given(st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=0, max_size=6))
def test_fuzz_block_entries(entry: list[int]) -> None:
    message = json.loads(json.dumps(sample_message()))
    message["blocks"].append(entry)
    with contextlib.suppress(SidecarProtocolError):
        parse_request(message)


def test_every_protocol_error_is_a_ramnet_error() -> None:
    assert issubclass(SidecarProtocolError, RamnetError)
    assert issubclass(SidecarProtocolError, InvalidInputError)
    assert issubclass(TruncatedFrameError, SidecarProtocolError)
