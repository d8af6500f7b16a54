"""The UI's forms read into requests, each mistake one sentence tied to the field that caused it.

The checks here are the ones a person can fix on the page (a shape, a missing file, a node
count); whatever the runners refuse afterwards is shown as the form's own error line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ramnet._errors import InvalidInputError
from ramnet.ui.runners import MeshRequest, Operands, SovereignRequest

DTYPES = ("int8", "int16", "int32", "float32", "float64")
MODES = ("sovereign", "mesh")
SOURCES = ("random", "paths", "upload")
REDUNDANCIES = ("auto", "mirror", "none")


class FieldError(InvalidInputError):
    """One field's mistake: the sentence shown next to it.

    Attributes:
        field: The field's name (``form`` for the form as a whole).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Workspace:
    """Where one job's files go.

    Attributes:
        folder: The job's own folder (C.npy, trace.bin, and A.npy and B.npy of random operands).
    """

    folder: Path

    @property
    def out(self) -> Path:
        """C's path."""
        return self.folder / "C.npy"

    @property
    def trace(self) -> Path:
        """The trace's path."""
        return self.folder / "trace.bin"


def text(values: Mapping[str, object], name: str) -> str:
    """A text field's value, stripped ('' when absent or not text)."""
    value = values.get(name)
    return value.strip() if isinstance(value, str) else ""


def checked(values: Mapping[str, object], name: str) -> bool:
    """Whether a checkbox was ticked."""
    return text(values, name) not in ("", "off", "false", "0")


def choice(values: Mapping[str, object], name: str, allowed: tuple[str, ...], label: str) -> str:
    """A radio or select value, which must be one of ``allowed``.

    Raises:
        FieldError: Another value.
    """
    value = text(values, name) or allowed[0]
    if value not in allowed:
        raise FieldError(name, f"{label} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def integer(values: Mapping[str, object], name: str, label: str, default: int, low: int) -> int:
    """An integer field (``default`` when empty) of at least ``low``.

    Raises:
        FieldError: Not a whole number, or below ``low``.
    """
    raw = text(values, name)
    if not raw:
        return default
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise FieldError(name, f"{label} must be a whole number, not {raw!r}.")
    value = int(raw)
    if value < low:
        raise FieldError(name, f"{label} must be at least {low}.")
    return value


def parse_shape(raw: str) -> tuple[int, int, int]:
    """``MxKxN`` as three positive integers.

    Raises:
        FieldError: Anything else (field ``shape``).
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*[xX×]\s*(\d+)\s*", raw)
    if match is None:
        raise FieldError("shape", f"The shape must be MxKxN, for example 512x512x512, not {raw!r}.")
    m, k, n = (int(g) for g in match.groups())
    if min(m, k, n) < 1:
        raise FieldError("shape", "Each dimension of the shape must be at least 1.")
    return m, k, n


def npy_path(values: Mapping[str, object], name: str, label: str) -> Path:
    """A path typed into a field: an existing ``.npy`` file on this machine.

    Raises:
        FieldError: Empty, missing, not a file, or not ``.npy``.
    """
    raw = text(values, name)
    if not raw:
        raise FieldError(name, f"Give the path of {label} (a .npy file on this machine).")
    path = Path(raw).expanduser()
    if path.suffix.lower() != ".npy":
        raise FieldError(name, f"{label} must be a .npy file, not {path.name!r}.")
    if not path.is_file():
        raise FieldError(name, f"There is no file at {path}.")
    return path.resolve()


def operands(
    values: Mapping[str, object], uploads: Mapping[str, Path | None]
) -> tuple[Operands, bool]:
    """The operands the run form names.

    Args:
        values: The form's text fields.
        uploads: ``a_file`` and ``b_file``: where the uploaded files were saved (None: none).

    Returns:
        The operands, and whether they are random.

    Raises:
        FieldError: The first mistake.
    """
    source = choice(values, "source", SOURCES, "The operands' source")
    dtype = text(values, "dtype") or None
    if dtype is not None and dtype not in DTYPES:
        raise FieldError("dtype", f"The dtype must be one of {', '.join(DTYPES)}.")
    if source == "random":
        shape = parse_shape(text(values, "shape") or "")
        seed = integer(values, "seed", "The seed", 0, 0)
        if dtype is None:
            raise FieldError("dtype", "Random operands need a dtype.")
        return Operands(random=shape, dtype=dtype, seed=seed), True
    if source == "paths":
        a = npy_path(values, "a_path", "A")
        b = npy_path(values, "b_path", "B")
        return Operands(a_path=a, b_path=b, dtype=dtype), False
    found = {}
    for name, label in (("a_file", "A"), ("b_file", "B")):
        path = uploads.get(name)
        if path is None:
            raise FieldError(name, f"Choose the .npy file of {label} to upload.")
        found[name] = path
    return Operands(a_path=found["a_file"], b_path=found["b_file"], dtype=dtype), False


def sovereign_request(
    values: Mapping[str, object], uploads: Mapping[str, Path | None], space: Workspace
) -> SovereignRequest:
    """The sovereign job the run form asks for.

    Raises:
        FieldError: The first mistake.
    """
    ops, random = operands(values, uploads)
    trace = checked(values, "trace")
    prove = checked(values, "prove")
    if prove and not trace:
        raise FieldError("prove", "A proof goes into the trace: tick “Write a signed trace” too.")
    return SovereignRequest(
        operands=ops,
        out=space.out,
        trace=space.trace if trace else None,
        prove=prove,
        save_inputs=space.folder if random else None,
    )


def mesh_request(
    values: Mapping[str, object], uploads: Mapping[str, Path | None], space: Workspace
) -> MeshRequest:
    """The mesh job the run form asks for.

    Raises:
        FieldError: The first mistake.
    """
    coordinator = text(values, "coordinator")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", coordinator):
        raise FieldError(
            "coordinator", "The coordinator must be a URL such as http://127.0.0.1:9000."
        )
    nodes = integer(values, "nodes", "Nodes", 3, 1)
    if nodes % 3:
        raise FieldError("nodes", f"Nodes must be a multiple of 3 (3, 6, 9, ...), not {nodes}.")
    redundancy = choice(values, "redundancy", REDUNDANCIES, "Redundancy")
    if redundancy == "mirror" and nodes < 6:
        raise FieldError("redundancy", "Mirrored triads need at least 6 nodes.")
    ops, _ = operands(values, uploads)
    return MeshRequest(
        operands=ops,
        out=space.out,
        coordinator=coordinator.rstrip("/"),
        nodes=nodes,
        redundancy=None if redundancy == "auto" else redundancy,
    )
