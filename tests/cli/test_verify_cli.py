"""``ramnet run --trace/--prove`` and ``ramnet verify`` through Typer's CliRunner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ramnet.cli import app
from ramnet.valkyrie import NodeKey, load_key, save_key

PROOF_CHECKS = [
    "format",
    "signature",
    "proof",
    "commitment of A",
    "commitment of B",
    "commitment of C",
    "proof evaluation of A",
    "proof evaluation of B",
    "proof evaluation of C",
    "Freivalds",
]


def _env(tmp: Path) -> dict[str, str | None]:
    """No RAMNET_* settings from outside, and a private config folder."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RAMNET_")}
    env["XDG_CONFIG_HOME"] = str(tmp / "xdg")
    return env


def invoke(tmp: Path, *args: str | Path):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, [str(x) for x in args], env=_env(tmp))
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def one_json(result) -> dict:  # type: ignore[no-untyped-def,type-arg]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


def stderr_line(result) -> str:  # type: ignore[no-untyped-def]
    return result.stderr.replace("\n", " ")


class Job:
    """A sovereign int8 run with a proof, made once for the module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inputs = root / "inputs"
        self.a, self.b = self.inputs / "A.npy", self.inputs / "B.npy"
        self.c = root / "C.npy"
        self.trace = root / "t.bin"
        self.key = root / "node.key"
        result = invoke(
            root,
            "run",
            "--mode",
            "sovereign",
            "--random",
            "40x30x20",
            "--dtype",
            "int8",
            "--save-inputs",
            self.inputs,
            "--out",
            self.c,
            "--trace",
            self.trace,
            "--prove",
            "--key-file",
            self.key,
            "--json",
        )
        assert result.exit_code == 0, result.stderr
        self.report = one_json(result)
        self.stderr = result.stderr


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    return Job(tmp_path_factory.mktemp("job"))


def test_run_writes_trace_with_proof(job: Job) -> None:
    info = job.report["trace"]
    assert info["path"] == str(job.trace)
    assert info["node_id"] == load_key(job.key).node_id
    assert info["proof_bytes"] == 4 + 16 * (3 + 3 * 5)  # K = 30 -> 5 rounds
    assert set(info["commitments"]) == {"a", "b", "c"}
    assert job.report["dtype"] == "int8" and job.report["shape"] == [40, 20]
    assert "created a new node key" in stderr_line(job)
    for path in (job.a, job.b, job.c, job.trace):
        assert path.is_file()
    a, b, c = (np.load(p) for p in (job.a, job.b, job.c))
    np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))


def test_verify_valid(job: Job, tmp_path: Path) -> None:
    result = invoke(tmp_path, "verify", job.trace, "--a", job.a, "--b", job.b, "--c", job.c)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""


def test_verify_json(job: Job, tmp_path: Path) -> None:
    args = ["verify", job.trace, "--a", job.a, "--b", job.b, "--c", job.c, "--json"]
    result = invoke(tmp_path, *args)
    assert result.exit_code == 0
    data = one_json(result)
    assert data["valid"] is True
    assert data["failed"] == []
    assert [c["name"] for c in data["checks"]] == PROOF_CHECKS
    assert all(c["ok"] for c in data["checks"])
    assert data["trace"]["node_id"] == load_key(job.key).node_id
    assert data["trace"]["commitments"] == job.report["trace"]["commitments"]
    assert data["trace"]["shape"] == [40, 20] and data["trace"]["k"] == 30
    # Without the matrices: format, signature and proof only.
    alone = one_json(invoke(tmp_path, "verify", job.trace, "--json"))
    assert alone["valid"] is True
    assert [c["name"] for c in alone["checks"]] == ["format", "signature", "proof"]


def test_verify_rich_table(job: Job, tmp_path: Path) -> None:
    result = invoke(tmp_path, "verify", job.trace, "--a", job.a, "--b", job.b, "--c", job.c)
    assert result.exit_code == 0
    out = result.stdout
    assert "VALID" in out and "INVALID" not in out
    for word in ("check", "result", "Freivalds", "commitment of C", "proof evaluation of A"):
        assert word in out
    assert "┃" in out or "|" in out  # a table, not JSON
    assert not out.lstrip().startswith("{")


def test_verify_security_bits(job: Job, tmp_path: Path) -> None:
    args = ["verify", job.trace, "--a", job.a, "--b", job.b, "--c", job.c, "--json"]
    data = one_json(invoke(tmp_path, *args, "--security-bits", "128"))
    assert data["valid"] is True
    assert "2^-128" in next(c["detail"] for c in data["checks"] if c["name"] == "Freivalds")
    for bad in ("0", "513", "many"):
        assert invoke(tmp_path, *args, "--security-bits", bad).exit_code == 2


def test_verify_tampered_c(job: Job, tmp_path: Path) -> None:
    c = np.load(job.c)
    c[17, 3] += 1
    bad = tmp_path / "C.npy"
    np.save(bad, c)
    result = invoke(tmp_path, "verify", job.trace, "--a", job.a, "--b", job.b, "--c", bad)
    assert result.exit_code == 1
    err = stderr_line(result)
    assert "commitment of C" in err and "Freivalds" in err
    assert "proof evaluation of C" in err
    assert "commitment of A" not in err and "signature" not in err
    assert "INVALID" in result.stdout
    data = one_json(
        invoke(tmp_path, "verify", job.trace, "--a", job.a, "--b", job.b, "--c", bad, "--json")
    )
    assert data["valid"] is False
    assert set(data["failed"]) == {"commitment of C", "proof evaluation of C", "Freivalds"}


def test_verify_swapped_or_misshapen_matrices(job: Job, tmp_path: Path) -> None:
    swapped = invoke(tmp_path, "verify", job.trace, "--a", job.b, "--b", job.a, "--json")
    assert swapped.exit_code == 1
    assert set(one_json(swapped)["failed"]) == {"commitment of A", "commitment of B"}
    wide = tmp_path / "wide.npy"
    np.save(wide, np.load(job.c).astype(np.int64))
    result = invoke(tmp_path, "verify", job.trace, "--c", wide)
    assert result.exit_code == 1
    assert "commitment of C" in stderr_line(result)


def test_verify_tampered_trace(job: Job, tmp_path: Path) -> None:
    data = bytearray(job.trace.read_bytes())
    data[-1] ^= 0x40
    bad = tmp_path / "t.bin"
    bad.write_bytes(data)
    result = invoke(tmp_path, "verify", bad, "--a", job.a, "--b", job.b, "--c", job.c)
    assert result.exit_code == 1
    assert "signature" in stderr_line(result)
    bad.write_bytes(b"")
    empty = invoke(tmp_path, "verify", bad)
    assert empty.exit_code == 1
    assert "format" in stderr_line(empty)


def test_verify_missing_trace_exit_2(tmp_path: Path) -> None:
    result = invoke(tmp_path, "verify", tmp_path / "missing.bin")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "missing.bin" in stderr_line(result)
    folder = invoke(tmp_path, "verify", tmp_path)
    assert folder.exit_code == 2


def test_verify_unreadable_matrix_exit_2(job: Job, tmp_path: Path) -> None:
    result = invoke(tmp_path, "verify", job.trace, "--a", job.trace)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    missing = invoke(tmp_path, "verify", job.trace, "--b", tmp_path / "none.npy")
    assert missing.exit_code == 2
    truncated = tmp_path / "cut.npy"
    truncated.write_bytes(job.c.read_bytes()[:100])
    assert invoke(tmp_path, "verify", job.trace, "--c", truncated).exit_code == 2


def test_verify_usage_errors(tmp_path: Path) -> None:
    assert invoke(tmp_path, "verify").exit_code == 2
    assert invoke(tmp_path, "verify", "t.bin", "--nope").exit_code == 2


def test_prove_without_trace_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "C.npy"
    key = tmp_path / "k"
    result = invoke(
        tmp_path,
        "run",
        "--random",
        "8x8x8",
        "--dtype",
        "int8",
        "--out",
        out,
        "--prove",
        "--key-file",
        key,
    )
    assert result.exit_code == 2
    assert "--trace" in stderr_line(result)
    assert not out.exists() and not key.exists()


def _float_prove(tmp_path: Path, key: Path):  # type: ignore[no-untyped-def]
    out, trace = tmp_path / "C.npy", tmp_path / "t.bin"
    args = ["run", "--random", "16x12x8", "--dtype", "float32", "--out", out, "--trace", trace]
    result = invoke(tmp_path, *args, "--prove", "--key-file", key)
    return result, out, trace


def test_prove_float32_exit_2_writes_nothing(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    save_key(NodeKey.generate(), key)
    before = key.read_bytes()
    result, out, trace = _float_prove(tmp_path, key)
    assert result.exit_code == 2
    assert result.stdout == ""
    err = stderr_line(result)
    assert "float32" in err and "exact" in err
    assert not out.exists() and not trace.exists()
    assert key.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key"]


def test_refused_prove_creates_no_key(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    result, _, _ = _float_prove(tmp_path, key)
    assert result.exit_code == 2
    assert not key.exists()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_float_trace_verifies_with_range_check(tmp_path: Path, dtype: str) -> None:
    inputs, out, trace, key = (
        tmp_path / "in",
        tmp_path / "C.npy",
        tmp_path / "t.bin",
        tmp_path / "k",
    )
    result = invoke(
        tmp_path,
        "run",
        "--random",
        "24x300x10",
        "--dtype",
        dtype,
        "--save-inputs",
        inputs,
        "--out",
        out,
        "--trace",
        trace,
        "--key-file",
        key,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert one_json(result)["trace"]["proof_bytes"] == 0
    args = ["verify", trace, "--a", inputs / "A.npy", "--b", inputs / "B.npy", "--c", out]
    data = one_json(invoke(tmp_path, *args, "--json"))
    assert data["valid"] is True, data
    names = [c["name"] for c in data["checks"]]
    assert "range check" in names and "Freivalds" not in names and "proof" not in names
    c = np.load(out)
    c[5, 5] += np.asarray(abs(c[5, 5]) * 1e-2 + 1.0, c.dtype)
    bad = tmp_path / "bad.npy"
    np.save(bad, c)
    args[-1] = bad
    result = invoke(tmp_path, *args)
    assert result.exit_code == 1
    assert "range check" in stderr_line(result)


def _prove_and_verify(tmp_path: Path, *operands: str | Path) -> dict:  # type: ignore[type-arg]
    out, trace, key = tmp_path / "C.npy", tmp_path / "t.bin", tmp_path / "k"
    args = ["run", *operands, "--out", out, "--trace", trace, "--prove", "--key-file", key]
    result = invoke(tmp_path, *args, "--json")
    assert result.exit_code == 0, result.stderr
    a, b = (tmp_path / "in" / "A.npy", tmp_path / "in" / "B.npy")
    args = ["verify", trace, "--a", a, "--b", b, "--c", out, "--json"]
    data = one_json(invoke(tmp_path, *args))
    assert data["valid"] is True, data
    assert [c["name"] for c in data["checks"]] == PROOF_CHECKS
    return data


def test_int16_random_prove_and_verify(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    data = _prove_and_verify(
        tmp_path, "--random", "13x17x11", "--dtype", "int16", "--save-inputs", inputs
    )
    assert data["trace"]["dtype"] == "int16"


def test_int32_files_within_bound_prove_and_verify(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    inputs = tmp_path / "in"
    inputs.mkdir()
    bound = 2**27  # K * bound^2 = 17 * 2^54 < 2^60
    np.save(inputs / "A.npy", rng.integers(-bound, bound, (13, 17), dtype=np.int32))
    np.save(inputs / "B.npy", rng.integers(-bound, bound, (17, 11), dtype=np.int32))
    data = _prove_and_verify(tmp_path, "--a", inputs / "A.npy", "--b", inputs / "B.npy")
    assert data["trace"]["dtype"] == "int32"


def test_int32_random_prove_verifies(tmp_path: Path) -> None:
    # --random int32 operands span +-sqrt((2^60 - 1) / K): within what the proof covers.
    out, trace, key = tmp_path / "C.npy", tmp_path / "t.bin", tmp_path / "k"
    args = ["run", "--random", "8x8x8", "--dtype", "int32", "--out", out, "--trace", trace]
    result = invoke(tmp_path, *args, "--prove", "--key-file", key, "--save-inputs", tmp_path)
    assert result.exit_code == 0, result.stderr
    a, b = tmp_path / "A.npy", tmp_path / "B.npy"
    result = invoke(tmp_path, "verify", trace, "--a", a, "--b", b, "--c", out)
    assert result.exit_code == 0, result.stderr


# ---- verify's values, converted without pydantic (commands._options.PlainValues) ----

INT_SPELLINGS = [40, 1, 512, "40", "007", "0", "1", "512", "513", "-5", "+40", " 40", "40 "]
INT_SPELLINGS += ["4_0", "40.0", "1e3", "abc", "", "４０", "99999999999999999999", "9" * 5000, None]
PATH_SPELLINGS = ["t.bin", "", ".", "missing/x.npy", " a ", "~/x", "./in", "//x", "a\x00b", None]


def _converted(runtime: object, value: object, param: object, ctx: object) -> tuple[str, str]:
    """What a conversion makes of a value: its result, or its error message."""
    try:
        got = runtime.coerce(value, param=param, ctx=ctx)  # type: ignore[attr-defined]
    except Exception as exc:  # the BadParameter Typer would report
        return (type(exc).__name__, exc.format_message())  # type: ignore[attr-defined]
    return (type(got).__name__, repr(got))


def test_verify_values_convert_as_typer_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    coercion = pytest.importorskip("typer._coercion")  # Typers before 0.29 do not use pydantic
    from ramnet.commands._options import _PlainConversion

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.bin").write_bytes(b"")
    (tmp_path / "in").mkdir()
    group = typer.main.get_command(app)
    command = group.commands["verify"]  # type: ignore[attr-defined]
    ctx = command.make_context("verify", ["t.bin"], parent=group.make_context("ramnet", ["verify"]))
    params = [*command.get_params(ctx), *group.get_params(ctx)]
    plain = {p.name: p for p in params if isinstance(p._runtime_param, _PlainConversion)}
    # Every value verify and the root group take: the trace, --a/--b/--c, --security-bits,
    # --threads, --json and --help of both, --version.
    names = {"trace", "a", "b", "c", "security_bits", "threads", "as_json", "help", "version"}
    assert set(plain) == names
    for param in params:
        annotation = param.type_descriptor.annotation
        values: list[object] = {int: INT_SPELLINGS, Path: PATH_SPELLINGS}.get(
            annotation, [True, False, None]
        )
        for value in values:
            ours = _converted(param._runtime_param, value, param, ctx)
            typers = _converted(
                coercion.build_runtime_param(param.type_descriptor), value, param, ctx
            )
            assert ours == typers, (param.name, value)
