"""Where a job's operands come from: two ``.npy`` files, or a seeded random pair. Shared by the
sovereign and the mesh runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ramnet import orchid
from ramnet._errors import InvalidInputError, OutputFileError
from ramnet.orchid._io import check_writable
from ramnet.orchid._matmul import prepare


def check_sources(
    a_path: Path | None,
    b_path: Path | None,
    random: tuple[int, int, int] | None,
    dtype: str | None,
    save_inputs: Path | None,
) -> None:
    """Check the operand options before any work (and that ``save_inputs`` can be written).

    Raises:
        InvalidInputError: Conflicting or missing options.
        OutputFileError: ``save_inputs`` cannot be created or written.
    """
    files = a_path is not None or b_path is not None
    if files and random is not None:
        raise InvalidInputError("give either --a and --b, or --random, not both")
    if random is None and (a_path is None or b_path is None):
        raise InvalidInputError("give --a A.npy and --b B.npy, or --random MxKxN")
    if random is not None and dtype is None:
        raise InvalidInputError("--random needs --dtype (int8, int16, int32, float32 or float64)")
    if save_inputs is None:
        return
    if random is None:
        raise InvalidInputError("--save-inputs only applies to --random operands")
    try:
        save_inputs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(f"cannot create {save_inputs}: {exc.strerror}") from exc
    for name in ("A.npy", "B.npy"):
        check_writable(save_inputs / name)


def load_operands(
    a_path: Path | None,
    b_path: Path | None,
    random: tuple[int, int, int] | None,
    dtype: str | None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Load (memory-mapped) or generate the operands, validated and of one job dtype.

    Raises:
        RamnetError: As ``check_sources``, ``orchid.load_npy`` and ``orchid.prepare``.
    """
    check_sources(a_path, b_path, random, dtype, None)
    if random is not None:
        assert dtype is not None
        a, b = orchid.random_operands(*random, dtype, seed)
    else:
        assert a_path is not None and b_path is not None
        a = orchid.load_npy(a_path, "A")
        b = orchid.load_npy(b_path, "B")
    return prepare(a, b, dtype)


def save_operands(folder: Path, a: np.ndarray, b: np.ndarray) -> None:
    """Write A.npy and B.npy into ``folder``.

    Raises:
        OutputFileError: They cannot be written.
    """
    orchid.save_npy(folder / "A.npy", a)
    orchid.save_npy(folder / "B.npy", b)
