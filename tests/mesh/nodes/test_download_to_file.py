"""C downloaded straight into its .npy file: ArrayStream (a wire body taken as it arrives, checked
as unpack checks it), NpyWriter (a .npy file written piece by piece, in place only once complete),
and the consumer's fetch_result_to (checked before it takes the output's name)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramnet import orchid
from ramnet._errors import InvalidInputError, OutputFileError
from ramnet.mesh.nodes.client import MeshProtocolError
from ramnet.mesh.nodes.consumer import ResultCheckFailed, fetch_checked, fetch_result_to
from ramnet.mesh.protocol.wire import ArrayStream, WireArray, WireFormatError, pack, unpack
from ramnet.orchid._io import NpyWriter
from tests.mesh.protocol.test_wire import _SEED_CONTAINERS, mutated

MAX = 1 << 22


class _Memory:
    """An ArrayTarget that keeps the bytes in memory, and notes whether it was discarded."""

    def __init__(self, entry: WireArray) -> None:
        self.entry = entry
        self.data = bytearray()
        self.discarded = False

    def write(self, data: memoryview) -> None:
        self.data += data

    def discard(self) -> None:
        self.discarded = True


def _stream(body: bytes, name: str, cuts: list[int]) -> tuple[dict[str, Any], _Memory]:
    opened: list[_Memory] = []

    def open_target(meta: dict[str, Any], entry: WireArray) -> _Memory:
        opened.append(_Memory(entry))
        return opened[-1]

    stream = ArrayStream(name, open_target, max_bytes=MAX)
    stream.start(len(body))
    at = 0
    for cut in sorted(set(cuts)):
        stream.write(memoryview(body)[at:cut])
        at = cut
    stream.write(memoryview(body)[at:])
    meta, target = stream.result()
    assert isinstance(target, _Memory) and opened == [target]
    return meta, target


# -- ArrayStream ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_streamed_body_cut_anywhere_gives_exactly_what_unpack_gives(data: st.DataObject) -> None:
    body = data.draw(st.sampled_from(_SEED_CONTAINERS[:2]))
    meta, arrays = unpack(body, max_bytes=MAX)
    name = data.draw(st.sampled_from(sorted(arrays)))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    got_meta, target = _stream(body, name, cuts)
    assert got_meta == meta
    assert bytes(target.data) == arrays[name].tobytes()
    assert target.entry.dtype == arrays[name].dtype and target.entry.shape == arrays[name].shape


@settings(max_examples=400, deadline=None)
@given(mutated(), st.lists(st.integers(0, 600), max_size=6))
def test_a_streamed_body_is_refused_exactly_when_unpack_refuses_it(
    body: bytes, cuts: list[int]
) -> None:
    try:
        _, arrays = unpack(body, max_bytes=MAX)
    except WireFormatError:
        arrays = None
    for name in ("a", "x") if arrays is None else sorted(arrays) or ["a"]:
        if arrays is not None and name not in arrays:
            with pytest.raises(WireFormatError, match="no array"):
                _stream(body, name, [c for c in cuts if c <= len(body)])
        elif arrays is None:
            with pytest.raises(WireFormatError):
                _stream(body, name, [c for c in cuts if c <= len(body)])
        else:
            _, target = _stream(body, name, [c for c in cuts if c <= len(body)])
            assert bytes(target.data) == arrays[name].tobytes()


def test_a_body_that_ends_early_or_overruns_is_refused() -> None:
    body = pack({}, {"C": np.arange(10, dtype=np.int32)})
    stream = ArrayStream("C", lambda m, e: _Memory(e), max_bytes=MAX)
    stream.start(len(body))
    stream.write(memoryview(body)[:-4])
    with pytest.raises(WireFormatError, match="truncated"):
        stream.result()
    with pytest.raises(WireFormatError, match="more wire bytes"):
        stream.write(memoryview(b"12345"))
    with pytest.raises(WireFormatError, match="over the limit"):
        ArrayStream("C", lambda m, e: _Memory(e), max_bytes=10).start(11)


def test_a_body_that_starts_again_discards_what_the_first_attempt_wrote() -> None:
    body = pack({}, {"C": np.arange(1000, dtype=np.int32)})
    opened: list[_Memory] = []
    stream = ArrayStream("C", lambda m, e: opened.append(_Memory(e)) or opened[-1], max_bytes=MAX)
    stream.start(len(body))
    stream.write(memoryview(body)[:1000])
    stream.start(len(body))  # a retried request
    stream.write(memoryview(body))
    _, target = stream.result()
    assert opened[0].discarded and target is opened[1] and not opened[1].discarded
    assert bytes(opened[1].data) == np.arange(1000, dtype=np.int32).tobytes()


# -- NpyWriter -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [("int32", (37, 5)), ("float64", (0, 3)), (">i8", (4,)), ("int8", (3, 1, 2)), ("uint8", ())],
)
def test_a_written_npy_file_loads_as_the_array(tmp_path: Path, dtype: str, shape: Any) -> None:
    x = (np.arange(int(np.prod(shape))) % 97).astype(dtype).reshape(shape)
    out = tmp_path / "C.npy"
    raw = x.tobytes()
    with NpyWriter(out, x.dtype, x.shape) as writer:
        writer.write(raw[:3])
        writer.restart()  # a download that begins again
        for at in range(0, len(raw), 7):
            writer.write(raw[at : at + 7])
        view = writer.array()
        assert not view.flags.writeable
        np.testing.assert_array_equal(view, x)
        assert not out.exists()  # not before the commit
        writer.commit()
    loaded = np.load(out)
    assert loaded.dtype == x.dtype
    np.testing.assert_array_equal(loaded, x)
    assert os.listdir(tmp_path) == ["C.npy"]


def test_an_npy_writer_left_uncommitted_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "C.npy"
    out.write_bytes(b"the previous C")
    with NpyWriter(out, np.dtype(np.int32), (2, 2)) as writer:
        writer.write(b"\0" * 8)
        with pytest.raises(InvalidInputError, match="8 of 16"):
            writer.array()
    assert os.listdir(tmp_path) == ["C.npy"] and out.read_bytes() == b"the previous C"
    writer = NpyWriter(out, np.dtype(np.int32), (2, 2))
    with pytest.raises(InvalidInputError, match="more than the 16 bytes"):
        writer.write(b"\0" * 17)
    with pytest.raises(InvalidInputError, match="0 of 16"):
        writer.commit()
    assert os.listdir(tmp_path) == ["C.npy"] and out.read_bytes() == b"the previous C"


def test_an_npy_writer_into_a_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputFileError, match="does not exist"):
        NpyWriter(tmp_path / "nope" / "C.npy", np.dtype(np.int8), (1,))


# -- the consumer --------------------------------------------------------------------------------


class _Coordinator:
    """A client stand-in that serves one result body, in pieces, to the consumer's sink."""

    max_response_bytes = MAX

    def __init__(self, body: bytes, attempts: int = 1) -> None:
        self.body = body
        self.attempts = attempts

    def get_wire_into(self, path: str, sink: Any) -> None:
        assert path.endswith("/result")
        for attempt in range(self.attempts):  # earlier attempts break off half-way
            sink.start(len(self.body))
            end = len(self.body) if attempt == self.attempts - 1 else len(self.body) // 2
            for at in range(0, end, 4096):
                sink.write(memoryview(self.body)[at : min(at + 4096, end)])

    def get_json(self, path: str) -> dict[str, Any]:
        return {"state": "checked"}


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_the_consumer_downloads_c_into_its_file_and_checks_it_there(
    tmp_path: Path, dtype: str
) -> None:
    a, b = orchid.random_operands(70, 50, 40, dtype, seed=4)
    c = orchid.matmul(a, b)
    out = tmp_path / "C.npy"
    got = fetch_result_to(_Coordinator(pack({}, {"C": c}), attempts=2), "j", out, a, b)
    np.testing.assert_array_equal(got, c)
    np.testing.assert_array_equal(np.load(out), c)
    assert os.listdir(tmp_path) == ["C.npy"]
    got, info = fetch_checked(_Coordinator(pack({}, {"C": c})), "j", a, b, out=tmp_path / "D.npy")
    assert info["state"] == "checked"
    np.testing.assert_array_equal(np.load(tmp_path / "D.npy"), c)


def test_a_c_that_fails_the_check_leaves_the_output_untouched(tmp_path: Path) -> None:
    a, b = orchid.random_operands(40, 30, 20, "int8", seed=2)
    bad = orchid.matmul(a, b)
    bad[3, 4] += 1000
    out = tmp_path / "C.npy"
    out.write_bytes(b"an earlier C")
    with pytest.raises(ResultCheckFailed):
        fetch_result_to(_Coordinator(pack({}, {"C": bad})), "j", out, a, b)
    assert os.listdir(tmp_path) == ["C.npy"] and out.read_bytes() == b"an earlier C"


_C_BODY = pack({}, {"C": np.zeros(3, np.int32)})


@pytest.mark.parametrize(
    ("body", "declared"),
    [
        (b"not a wire body at all", 22),
        (pack({}, {"D": np.zeros(3, np.int32)}), None),  # no C
        (_C_BODY[:-5], len(_C_BODY)),  # cut short
    ],
)
def test_a_malformed_result_is_a_protocol_error_and_leaves_nothing(
    tmp_path: Path, body: bytes, declared: int | None
) -> None:
    class Malformed(_Coordinator):
        def get_wire_into(self, path: str, sink: Any) -> None:
            sink.start(len(body) if declared is None else declared)
            sink.write(memoryview(body))

    with pytest.raises(MeshProtocolError, match="malformed"):
        fetch_result_to(Malformed(body), "j", tmp_path / "C.npy", None, None)
    assert os.listdir(tmp_path) == []
