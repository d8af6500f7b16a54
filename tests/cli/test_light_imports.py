"""What the command line loads: building the app, ``--help`` and parsing load no heavy library and
no layer below the CLI; ``ramnet verify`` loads no mesh, no server and no pydantic.

These are tests of what is imported, in a fresh process each, not of how long it takes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ramnet.cli import app

# Loaded by none of: `import ramnet.cli`, any `--help`, a usage error.
HEAVY = (
    "numpy",
    "numba",
    "starlette",
    "uvicorn",
    "msgspec",
    "ramnet.mesh",
    "ramnet.valkyrie",
    "ramnet.orchid",
    "ramnet.sidecar",
    "eth_account",  # wallet binding: about a second to import, only where a binding is made
)
# Rich's renderables that only output needs (Typer's own help draws with rich.table).
RENDERING = ("rich.table", "rich.progress", "rich.live")

# Runs `ramnet ARGV...` as the executable does (or only imports ramnet.cli when ARGV is empty),
# then writes the names of the loaded modules, one line, to the file named by the first argument.
_PROBE = """
import sys
out, argv = sys.argv[1], sys.argv[2:]
code = 0
if argv:
    sys.argv = ["ramnet", *argv]
    from ramnet.cli import main
    try:
        main()
    except SystemExit as exc:
        code = exc.code
else:
    import ramnet.cli
with open(out, "w") as f:
    f.write(" ".join(sorted(sys.modules)))
sys.exit(code)
"""


pytestmark = pytest.mark.usefixtures("clean_env")  # no RAMNET_* settings, an empty config folder


def _loaded(tmp: Path, *argv: str) -> tuple[int, set[str]]:
    """Run ``ramnet ARGV`` in a fresh process: its exit code and the modules it loaded."""
    out = tmp / "modules.txt"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *argv],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, set(out.read_text().split())


def _under(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


def test_building_the_app_loads_nothing_heavy(tmp_path: Path) -> None:
    code, loaded = _loaded(tmp_path)
    assert code == 0
    assert "ramnet.commands.run" in loaded  # the probe did build the app
    assert _under(loaded, *HEAVY, *RENDERING) == set()


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["run", "--help"], 0),
        (["verify", "--help"], 0),
        (["coordinator", "start", "--help"], 0),
        (["keys"], 0),
        (["run", "--bogus"], 2),
        (["worker", "start", "--threads", "0"], 2),
    ],
)
def test_help_and_parsing_load_nothing_heavy(tmp_path: Path, argv: list[str], code: int) -> None:
    exit_code, loaded = _loaded(tmp_path, *argv)
    assert exit_code == code
    assert _under(loaded, *HEAVY) == set()


def test_verify_loads_no_mesh_and_no_server(tmp_path: Path) -> None:
    made = CliRunner().invoke(
        app,
        [
            "run",
            "--random",
            "12x10x8",
            "--dtype",
            "int8",
            "--save-inputs",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "C.npy"),
            "--trace",
            str(tmp_path / "t.bin"),
            "--prove",
            "--key-file",
            str(tmp_path / "k.key"),
            "--json",
        ],
    )
    assert made.exit_code == 0, made.output
    code, loaded = _loaded(
        tmp_path, "verify", "t.bin", "--a", "in/A.npy", "--b", "in/B.npy", "--c", "C.npy", "--json"
    )
    assert code == 0
    assert "ramnet.valkyrie" in loaded  # it did verify
    # pydantic: Typer 0.29 converts every value through it (about 90 ms); verify's values and
    # the root group's are converted without it (ramnet.commands._options.PlainValues).
    forbidden = ("ramnet.mesh", "ramnet.sidecar", "starlette", "uvicorn", "numba", "msgspec")
    assert _under(loaded, *forbidden, "pydantic", "pydantic_core", "typer._adapters") == set()
    # JSON output needs no Rich at all; the table needs its table and console only.
    assert _under(loaded, "rich") == set()
    code, loaded = _loaded(
        tmp_path, "verify", "t.bin", "--a", "in/A.npy", "--b", "in/B.npy", "--c", "C.npy"
    )
    assert code == 0
    assert {"rich.table", "rich.console"} <= loaded
    assert _under(loaded, *forbidden, "pydantic", "pydantic_core", "typer._adapters") == set()
    assert _under(loaded, "rich.progress", "rich.live", "rich.traceback") == set()
