"""Option types and choices that several commands share."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

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

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
