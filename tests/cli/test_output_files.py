"""Outputs (C as .npy, downloaded C, traces) are replaced whole and get the mode a plain open
would give them: the existing file's, else 0666 less the umask (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ramnet import orchid
from ramnet.orchid._io import NpyWriter
from ramnet.valkyrie import NodeKey, TraceRecorder, write_trace


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _save(path: Path) -> None:
    orchid.save_npy(path, np.arange(6, dtype=np.int32).reshape(2, 3))


def _download(path: Path) -> None:
    with NpyWriter(path, np.dtype(np.int32), (2, 3)) as writer:
        writer.write(np.arange(6, dtype=np.int32).tobytes())
        writer.commit()


def _trace(path: Path) -> None:
    a = np.ones((8, 5), np.int8)
    recorder = TraceRecorder(threads=1)
    orchid.matmul(a, a.T.copy(), hooks=[recorder])
    key = NodeKey.generate()
    write_trace(path, recorder.build(key, prove=False, threads=1), key)


WRITERS: list[Callable[[Path], None]] = [_save, _download, _trace]


@pytest.mark.parametrize("write", WRITERS)
def test_a_new_output_gets_0666_less_the_umask(
    tmp_path: Path, umask_027: None, write: Callable[[Path], None]
) -> None:
    out = tmp_path / "out.bin"
    write(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("write", WRITERS)
def test_a_replaced_output_keeps_its_mode(tmp_path: Path, write: Callable[[Path], None]) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    out.chmod(0o604)
    write(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o604
    assert out.read_bytes() != b"old"
    assert os.listdir(tmp_path) == ["out.bin"]
