"""Option types and choices that several commands share, and ``PlainValues``, a command class
that converts plain ``Path`` and ``int`` values without pydantic."""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer


class BackendChoice(str, Enum):
    auto = "auto"
    c = "c"
    numba = "numba"
    numpy = "numpy"


class DType(str, Enum):
    int8 = "int8"
    int16 = "int16"
    int32 = "int32"
    float32 = "float32"
    float64 = "float64"


KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", help="Key file (default: RAMNET_KEY_FILE or the config folder)."),
]

CoordinatorOption = Annotated[
    str | None,
    typer.Option("--coordinator", help="Coordinator URL (default: RAMNET_COORDINATOR or config)."),
]

CaFileOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        help="PEM CA certificates to trust for an https coordinator (default: RAMNET_CA_FILE,"
        " else the system's store).",
        metavar="PEM",
    ),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


class _PlainConversion:
    """Converts the common spellings of one parameter's value without pydantic; anything else
    goes to Typer's own conversion, which gives the same value or the same error message."""

    def __init__(self, param: Any, convert: Callable[[Any], Any]) -> None:
        self._param = param
        self._convert = convert

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:  # as Typer's conversion of a single value
            return None
        plain = self._convert(value)
        if plain is not None:
            return plain
        from typer._coercion import build_runtime_param

        return build_runtime_param(self._param.type_descriptor).coerce(value, param=param, ctx=ctx)


def _plain_int(low: int | None, high: int | None) -> Callable[[Any], int | None]:
    def convert(value: Any) -> int | None:
        if type(value) is int:
            number = value
        elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
            number = int(value)  # pydantic reads an ASCII decimal the same way
        else:
            return None
        if (low is not None and number < low) or (high is not None and number > high):
            return None  # Typer's conversion words the range error
        return number

    return convert


def _plain_path(readable: bool) -> Callable[[Any], Path | None]:
    def convert(value: Any) -> Path | None:
        if not isinstance(value, str):
            return None
        path = Path(value)  # what pydantic makes of a str
        try:
            os.stat(path)
        except OSError:
            return path  # a path that need not exist
        except ValueError:
            return None  # a NUL byte: Typer's conversion words the error
        if readable and not os.access(path, os.R_OK):
            return None  # Typer's conversion words the error
        return path

    return convert


def _plain_bool(value: Any) -> bool | None:
    return value if type(value) is bool else None


def _plain_conversion(param: Any) -> _PlainConversion | None:
    """The plain conversion of one parameter, or None where Typer's own must run: anything but a
    single ``bool``, ``int`` (possibly ranged, not clamped) or ``Path`` (no checks but the
    readable one)."""
    descriptor: Any = getattr(param, "type_descriptor", None)
    info = getattr(descriptor, "parameter_info", None)
    if info is None or not hasattr(param, "_runtime_param"):
        return None  # a Typer that converts without pydantic: nothing to do
    if param.nargs != 1 or param.multiple or info.parser is not None:
        return None
    annotation = descriptor.annotation
    if annotation is bool:
        return _PlainConversion(param, _plain_bool)
    if annotation is int and not getattr(info, "clamp", False):
        return _PlainConversion(param, _plain_int(info.min, info.max))
    plain_path = (
        annotation is Path
        and info.path_type is None
        and info.file_okay
        and info.dir_okay
        and not (info.exists or info.writable or info.resolve_path or info.allow_dash)
    )
    if plain_path:
        return _PlainConversion(param, _plain_path(bool(info.readable)))
    return None


def use_plain_values(params: list[Any]) -> None:
    """Give each plain ``bool``, ``int`` or ``Path`` parameter of a command (or group) a
    conversion without pydantic (see ``PlainValues``); leave the others to Typer."""
    for param in params:
        plain = _plain_conversion(param)
        if plain is not None and param._runtime_param is None:
            param._runtime_param = plain


class ConvertsPlainValues:
    """Mixin for a Typer command or group: its parameters, and its ``--help`` flag made on first
    use, convert plain values without pydantic (``use_plain_values``)."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        use_plain_values(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        """The ``--help`` flag, made on first use, converted without pydantic as well."""
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            use_plain_values([option])
        return option


class PlainValues(ConvertsPlainValues, typer.core.TyperCommand):
    """A command whose plain ``bool``, ``int`` and ``Path`` values are converted without pydantic.

    Typer 0.29 converts every value, even an option left out, through a pydantic
    ``TypeAdapter``: importing pydantic and building the adapters takes about 90 ms, more than
    ``ramnet verify`` takes to check a 24 MiB job. A value left out stays None, a flag its bool,
    a ``Path`` given as a string and an ``int`` given as ASCII digits within its range are
    converted as pydantic would; every other value goes to Typer's own conversion, so values,
    errors and help are unchanged. Typers that do not use pydantic are left alone.
    """
