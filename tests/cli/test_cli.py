"""The ``ramnet`` command line through Typer's CliRunner, plus a few real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ramnet
from ramnet.cli import app
from ramnet.orchid import _bindings
from tests.conftest import C_AVAILABLE, operands, reference, requires_c

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner: CliRunner, *args: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, list(args))
    # Never a traceback, whatever happened; the runner captured no stray exception.
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def one_json(result) -> dict:  # type: ignore[no-untyped-def]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


def assert_usage_error(result) -> None:  # type: ignore[no-untyped-def]
    """Exit 2, one line on stderr starting with ``error:``, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert result.stdout == ""


# ---- successful runs ----


def test_random_json_run_and_saved_inputs(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(
        runner,
        "run",
        "--mode",
        "sovereign",
        "--random",
        "64x48x80",
        "--dtype",
        "int8",
        "--out",
        "C.npy",
        "--json",
        "--save-inputs",
        "inputs",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    report = one_json(result)
    assert report["shape"] == [64, 80]
    assert report["dtype"] == "int8"
    assert report["out_dtype"] == "int32"
    expected_backend = "c" if C_AVAILABLE else "numba"
    assert report["backend"] == expected_backend
    if C_AVAILABLE:
        assert report["code_path"] == _bindings.best_path("gemm_s8")
    assert isinstance(report["threads"], int) and report["threads"] >= 1
    seconds = report["seconds"]
    for key in ("load", "compute", "save"):
        assert isinstance(seconds[key], float) and seconds[key] >= 0
    assert report["gops"] is None or report["gops"] >= 0
    a = np.load(tmp_path / "inputs" / "A.npy")
    b = np.load(tmp_path / "inputs" / "B.npy")
    assert a.shape == (64, 48) and b.shape == (48, 80)
    assert a.dtype == b.dtype == np.int8
    c = np.load(tmp_path / "C.npy")
    assert c.dtype == np.int32
    np.testing.assert_array_equal(c, reference(a, b))


def test_table_output_without_json(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "run", "--random", "20x30x10", "--dtype", "int16", "--out", "C.npy")
    assert result.exit_code == 0, result.stderr
    assert "backend" in result.stdout and "int16" in result.stdout
    assert np.load(tmp_path / "C.npy").shape == (20, 10)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32", "float64"])
def test_file_mode_each_dtype(runner: CliRunner, tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(7)
    a, b = operands(rng, 33, 65, 17, np.dtype(dtype))
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    result = invoke(runner, "run", "--a", "A.npy", "--b", "B.npy", "--out", "C.npy", "--json")
    assert result.exit_code == 0, result.stderr
    report = one_json(result)
    assert report["dtype"] == dtype
    c = np.load(tmp_path / "C.npy")
    assert report["out_dtype"] == c.dtype.name
    if dtype.startswith("int"):
        assert c.dtype == (np.int32 if dtype == "int8" else np.int64)
        np.testing.assert_array_equal(c, reference(a, b))
    else:
        assert c.dtype == np.dtype(dtype)
        rtol = 1e-4 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(c, reference(a, b), rtol=rtol, atol=rtol)


def test_forced_dtype_on_float_files(runner: CliRunner, tmp_path: Path) -> None:
    np.save(tmp_path / "A.npy", np.full((3, 4), -128.0))
    np.save(tmp_path / "B.npy", np.full((4, 2), 127.0))
    result = invoke(
        runner, "run", "--a", "A.npy", "--b", "B.npy", "--dtype", "int8", "--out", "C.npy", "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert one_json(result)["dtype"] == "int8"
    np.testing.assert_array_equal(np.load(tmp_path / "C.npy"), np.full((3, 2), -128 * 127 * 4))


@pytest.mark.parametrize("backend", [pytest.param("c", marks=requires_c), "numba", "numpy", "auto"])
def test_backend_threads_grid_options(runner: CliRunner, tmp_path: Path, backend: str) -> None:
    result = invoke(
        runner,
        "run",
        "--random",
        "40x50x30",
        "--dtype",
        "int8",
        "--seed",
        "3",
        "--backend",
        backend,
        "--threads",
        "1",
        "--grid",
        "2,3,2",
        "--out",
        "C.npy",
        "--save-inputs",
        ".",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = one_json(result)
    expected = {"auto": "c" if C_AVAILABLE else "numba"}.get(backend, backend)
    assert report["backend"] == expected
    assert report["threads"] == 1
    assert report["grid"] == [2, 3, 2]
    a, b = np.load(tmp_path / "A.npy"), np.load(tmp_path / "B.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "C.npy"), reference(a, b))


def test_environment_and_flag_precedence(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAMNET_BACKEND", "numpy")
    monkeypatch.setenv("RAMNET_THREADS", "1")
    args = ["run", "--random", "8x8x8", "--dtype", "int16", "--out", "C.npy", "--json"]
    report = one_json(invoke(runner, *args))
    assert report["backend"] == "numpy" and report["threads"] == 1
    report = one_json(invoke(runner, *args, "--backend", "numba", "--threads", "2"))
    assert report["backend"] == "numba" and report["threads"] == 2
    (tmp_path / "conf.toml").write_text('backend = "numba"\n')
    monkeypatch.delenv("RAMNET_BACKEND")
    report = one_json(invoke(runner, *args, "--config", "conf.toml"))
    assert report["backend"] == "numba"


def test_seed_reproducibility(runner: CliRunner, tmp_path: Path) -> None:
    def run(seed: str, folder: str) -> tuple[np.ndarray, np.ndarray]:
        result = invoke(
            runner,
            "run",
            "--random",
            "16x24x8",
            "--dtype",
            "int16",
            "--seed",
            seed,
            "--save-inputs",
            folder,
            "--out",
            f"{folder}.npy",
            "--json",
        )
        assert result.exit_code == 0, result.stderr
        return np.load(tmp_path / folder / "A.npy"), np.load(tmp_path / f"{folder}.npy")

    a1, c1 = run("5", "one")
    a2, c2 = run("5", "two")
    a3, c3 = run("6", "three")
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(c1, c2)
    assert not np.array_equal(a1, a3)
    assert not np.array_equal(c1, c3)


# ---- bad input: exit 2, one line, no traceback ----


class _Evil:
    """Unpickling this creates a folder: proof that a file was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (self.marker,))


def _bad_files(tmp: Path) -> None:
    np.save(tmp / "ok.npy", np.ones((3, 3), np.int8))
    np.save(tmp / "ok34.npy", np.ones((3, 4), np.int8))
    np.save(tmp / "complex.npy", np.ones((3, 3), np.complex128))
    np.save(tmp / "str.npy", np.full((3, 3), "ab"))
    np.save(tmp / "bytes.npy", np.full((3, 3), b"ab"))
    evil = np.empty((3, 3), dtype=object)
    evil[...] = 1
    evil[0, 0] = _Evil(str(tmp / "PWNED"))
    np.save(tmp / "object.npy", evil, allow_pickle=True)
    np.save(tmp / "uint8.npy", np.ones((3, 3), np.uint8))
    np.save(tmp / "bool.npy", np.ones((3, 3), bool))
    np.save(tmp / "one_d.npy", np.ones(3, np.int8))
    np.save(tmp / "three_d.npy", np.ones((3, 3, 3), np.int8))
    x = np.ones((3, 3))
    x[1, 2] = np.nan
    np.save(tmp / "nan.npy", x)
    x[1, 2] = np.inf
    np.save(tmp / "inf.npy", x)
    x[1, 2] = -np.inf
    np.save(tmp / "ninf.npy", x)
    np.save(tmp / "half.npy", np.full((3, 3), 2.5))
    np.save(tmp / "big.npy", np.full((3, 3), 128.0))
    np.save(tmp / "bigint.npy", np.full((3, 3), -129, np.int16))
    (tmp / "random.npy").write_bytes(np.random.default_rng(0).bytes(300))
    (tmp / "empty.npy").write_bytes(b"")
    np.save(tmp / "long.npy", np.ones((50, 50), np.int8))
    (tmp / "truncated.npy").write_bytes((tmp / "long.npy").read_bytes()[:700])
    (tmp / "header_only.npy").write_bytes((tmp / "long.npy").read_bytes()[:60])
    (tmp / "somefile.txt").write_text("not a folder")
    (tmp / "bad.toml").write_text("backend = [\n")
    (tmp / "unknown.toml").write_text("backend = 'c'\ncolour = 'blue'\n")
    (tmp / "badvalue.toml").write_text("threads = 0\n")
    (tmp / "adir").mkdir()
    np.savez(tmp / "archive.npz", a=np.ones((3, 3), np.int8))


RUN_AB = ["run", "--out", "C.npy"]
BAD_CASES = {
    "shape-mismatch": (["--a", "ok34.npy", "--b", "ok.npy"], "must equal"),
    "complex": (["--a", "ok.npy", "--b", "complex.npy"], "complex128"),
    "string": (["--a", "str.npy", "--b", "ok.npy"], "<U2"),
    "bytes": (["--a", "bytes.npy", "--b", "ok.npy"], "S2"),
    "object": (["--a", "object.npy", "--b", "ok.npy"], "objects"),
    "uint8": (["--a", "uint8.npy", "--b", "ok.npy"], "uint8"),
    "bool": (["--a", "ok.npy", "--b", "bool.npy"], "bool"),
    "one-d": (["--a", "one_d.npy", "--b", "ok.npy"], "2-D"),
    "three-d": (["--a", "ok.npy", "--b", "three_d.npy"], "2-D"),
    "nan-int8": (["--a", "nan.npy", "--b", "ok.npy", "--dtype", "int8"], "nan"),
    "inf-int8": (["--a", "inf.npy", "--b", "ok.npy", "--dtype", "int8"], "inf"),
    "ninf-int8": (["--a", "ok.npy", "--b", "ninf.npy", "--dtype", "int8"], "-inf"),
    "nan-float": (["--a", "nan.npy", "--b", "ok.npy"], "nan"),
    "inf-float64": (["--a", "inf.npy", "--b", "ok.npy", "--dtype", "float64"], "inf"),
    "fraction-int16": (["--a", "half.npy", "--b", "ok.npy", "--dtype", "int16"], "integers"),
    "range-int8-float": (["--a", "big.npy", "--b", "ok.npy", "--dtype", "int8"], "range"),
    "range-int8-int": (["--a", "ok.npy", "--b", "bigint.npy", "--dtype", "int8"], "range"),
    "missing-file": (["--a", "nope.npy", "--b", "ok.npy"], "nope.npy"),
    "folder-as-input": (["--a", "adir", "--b", "ok.npy"], "adir"),
    "random-bytes": (["--a", "random.npy", "--b", "ok.npy"], "random.npy"),
    "empty-file": (["--a", "empty.npy", "--b", "ok.npy"], "empty.npy"),
    "truncated": (["--a", "ok.npy", "--b", "truncated.npy"], "truncated"),
    "header-only": (["--a", "header_only.npy", "--b", "ok.npy"], "header_only.npy"),
    "npz-archive": (["--a", "archive.npz", "--b", "ok.npy"], "archive.npz"),
    "random-and-files": (
        ["--a", "ok.npy", "--b", "ok.npy", "--random", "3x3x3", "--dtype", "int8"],
        "not both",
    ),
    "only-a": (["--a", "ok.npy"], "--random"),
    "neither": ([], "--random"),
    "random-no-dtype": (["--random", "3x3x3"], "--dtype"),
    "random-12x": (["--random", "12x", "--dtype", "int8"], "12x"),
    "random-0x5x5": (["--random", "0x5x5", "--dtype", "int8"], "0x5x5"),
    "random-text": (["--random", "axbxc", "--dtype", "int8"], "axbxc"),
    "random-negative": (["--random", "-3x3x3", "--dtype", "int8"], "-3x3x3"),
    "save-inputs-with-files": (
        ["--a", "ok.npy", "--b", "ok.npy", "--save-inputs", "x"],
        "--save-inputs",
    ),
    "grid-two": (["--random", "3x3x3", "--dtype", "int8", "--grid", "1,2"], "1,2"),
    "grid-zero": (["--random", "3x3x3", "--dtype", "int8", "--grid", "0,1,1"], "0,1,1"),
    "grid-negative": (["--random", "3x3x3", "--dtype", "int8", "--grid", "1,-1,1"], "1,-1,1"),
    "grid-text": (["--random", "3x3x3", "--dtype", "int8", "--grid", "a,b,c"], "a,b,c"),
    "mode-mesh": (["--random", "3x3x3", "--dtype", "int8", "--mode", "mesh"], "mesh"),
    "config-bad-toml": (
        ["--random", "3x3x3", "--dtype", "int8", "--config", "bad.toml"],
        "bad.toml",
    ),
    "config-unknown-key": (
        ["--random", "3x3x3", "--dtype", "int8", "--config", "unknown.toml"],
        "colour",
    ),
    "config-bad-value": (
        ["--random", "3x3x3", "--dtype", "int8", "--config", "badvalue.toml"],
        "threads",
    ),
    "config-missing": (
        ["--random", "3x3x3", "--dtype", "int8", "--config", "nope.toml"],
        "nope.toml",
    ),
}


@pytest.mark.parametrize(("args", "says"), list(BAD_CASES.values()), ids=list(BAD_CASES))
def test_bad_input_exits_2(runner: CliRunner, tmp_path: Path, args: list[str], says: str) -> None:
    _bad_files(tmp_path)
    result = invoke(runner, *RUN_AB, *args)
    assert_usage_error(result)
    assert says in result.stderr
    assert not (tmp_path / "C.npy").exists()
    assert not (tmp_path / "PWNED").exists(), "an object .npy was unpickled"


@pytest.mark.parametrize(
    "out",
    ["no_such_folder/C.npy", "somefile.txt/C.npy", "adir", "."],
    ids=["missing-folder", "under-a-file", "a-folder", "dot"],
)
def test_unwritable_output(runner: CliRunner, tmp_path: Path, out: str) -> None:
    _bad_files(tmp_path)
    result = invoke(runner, "run", "--random", "3x3x3", "--dtype", "int8", "--out", out)
    assert_usage_error(result)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions"
)
def test_read_only_output_folder(runner: CliRunner, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        result = invoke(runner, "run", "--random", "3x3x3", "--dtype", "int8", "--out", "ro/C.npy")
        assert_usage_error(result)
    finally:
        ro.chmod(0o700)


def test_unwritable_save_inputs(runner: CliRunner, tmp_path: Path) -> None:
    _bad_files(tmp_path)
    result = invoke(
        runner,
        "run",
        "--random",
        "3x3x3",
        "--dtype",
        "int8",
        "--out",
        "C.npy",
        "--save-inputs",
        "somefile.txt/inputs",
    )
    assert_usage_error(result)
    assert not (tmp_path / "C.npy").exists()


# Click-level usage errors: refused before RAMNET's code runs.
CLICK_USAGE = {
    "threads-0": ["--random", "3x3x3", "--dtype", "int8", "--threads", "0"],
    "threads-text": ["--random", "3x3x3", "--dtype", "int8", "--threads", "two"],
    "unknown-backend": ["--random", "3x3x3", "--dtype", "int8", "--backend", "gpu"],
    "unknown-dtype": ["--random", "3x3x3", "--dtype", "int64"],
    "unknown-mode": ["--random", "3x3x3", "--dtype", "int8", "--mode", "cloud"],
    "unknown-option": ["--random", "3x3x3", "--dtype", "int8", "--frobnicate"],
}


@pytest.mark.parametrize("args", list(CLICK_USAGE.values()), ids=list(CLICK_USAGE))
def test_click_usage_errors_exit_2(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    result = invoke(runner, *RUN_AB, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip()
    assert not (tmp_path / "C.npy").exists()


@pytest.mark.parametrize("args", list(CLICK_USAGE.values()), ids=list(CLICK_USAGE))
def test_click_usage_errors_are_one_line(runner: CliRunner, args: list[str]) -> None:
    assert_usage_error(invoke(runner, *RUN_AB, *args))


def test_missing_out_is_usage_error(runner: CliRunner) -> None:
    result = invoke(runner, "run", "--random", "3x3x3", "--dtype", "int8")
    assert result.exit_code == 2
    assert "--out" in result.stderr


# ---- doctor, bench, version, help ----


def test_doctor_json(runner: CliRunner) -> None:
    result = invoke(runner, "doctor", "--json")
    assert result.exit_code == 0, result.stderr
    info = one_json(result)
    kernels = info["kernels"]
    assert kernels["c_extension"] is C_AVAILABLE
    gemm = kernels["paths"]["gemm_s8"]
    assert gemm["best"] in gemm["supported"]
    if C_AVAILABLE:
        assert gemm["best"] == _bindings.best_path("gemm_s8")
        assert set(kernels["paths"]) == {"gemm_s8", "gemm_wide", "stream"}
    assert info["numpy"] == np.__version__
    assert set(info["blas"]) >= {"name", "version"}
    assert info["ramnet"] == ramnet.__version__
    assert info["threads"] >= 1


def test_doctor_table(runner: CliRunner) -> None:
    result = invoke(runner, "doctor")
    assert result.exit_code == 0, result.stderr
    assert "numpy" in result.stdout
    assert ("loaded" if C_AVAILABLE else "MISSING") in result.stdout


def test_doctor_reports_spark(runner: CliRunner) -> None:
    spark = one_json(invoke(runner, "doctor", "--json"))["spark"]
    assert set(spark) == {"pyspark", "java", "ok", "problem"}
    if spark["ok"]:
        assert spark["problem"] is None
        assert spark["pyspark"]
        assert spark["java"]["major"] >= 17
        assert set(spark["java"]) == {"path", "version", "major"}
    else:
        assert "\n" not in spark["problem"]


def test_doctor_without_java(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    result = invoke(runner, "doctor", "--json")
    assert result.exit_code == 0, result.stderr
    spark = one_json(result)["spark"]
    assert spark["java"] is None and spark["ok"] is False
    assert "no java on PATH" in spark["problem"]
    assert "apt-get install openjdk-17-jre-headless" in spark["problem"]
    table = invoke(runner, "doctor")
    assert table.exit_code == 0, table.stderr
    assert "UNAVAILABLE" in table.stdout and "not found" in table.stdout
    assert "apt-get install" in table.stdout


def test_doctor_without_pyspark(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    from ramnet.spark import session

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(session.metadata, "version", missing)
    spark = one_json(invoke(runner, "doctor", "--json"))["spark"]
    assert spark["pyspark"] is None and spark["ok"] is False
    assert spark["problem"] == "pyspark is not installed: pip install 'ramnet[spark]'"
    table = invoke(runner, "doctor").stdout
    assert "ramnet[spark]" in table  # not eaten as Rich markup
    assert "not installed" in table


def test_bench_gemm_json(runner: CliRunner) -> None:
    result = invoke(
        runner, "bench", "gemm", "--size", "64", "--dtype", "int8", "--json", "--repeat", "1"
    )
    assert result.exit_code == 0, result.stderr
    data = one_json(result)
    assert data["size"] == 64 and data["dtype"] == "int8"
    assert data["threads"] >= 1
    assert len(data["rows"]) >= 2
    for row in data["rows"]:
        assert row["n"] >= 1 and row["seconds"] > 0 and row["gops"] > 0 and row["speedup"] > 0
    assert data["rows"][0]["name"].startswith("ramnet")


def test_bench_stream_json(runner: CliRunner) -> None:
    result = invoke(runner, "bench", "stream", "--size", "100000", "--repeat", "1", "--json")
    assert result.exit_code == 0, result.stderr
    data = one_json(result)
    assert data["n"] == 100000 and data["dtype"] == "float64"
    assert [row["op"] for row in data["rows"]] == ["copy", "scale", "add", "triad"]
    for row in data["rows"]:
        assert row["ours_gbs"] > 0 and row["numpy_gbs"] > 0 and row["ratio"] > 0


def test_bench_tables(runner: CliRunner) -> None:
    result = invoke(
        runner, "bench", "stream", "--size", "1000", "--repeat", "1", "--dtype", "float32"
    )
    assert result.exit_code == 0, result.stderr
    assert "triad" in result.stdout
    result = invoke(runner, "bench", "gemm", "--size", "16", "--repeat", "1", "--dtype", "float64")
    assert result.exit_code == 0, result.stderr
    assert "numpy" in result.stdout


def test_bench_bad_dtype(runner: CliRunner) -> None:
    result = invoke(runner, "bench", "stream", "--size", "1000", "--dtype", "int8")
    assert_usage_error(result)


def test_version(runner: CliRunner) -> None:
    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ramnet {ramnet.__version__}"


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["bench", "--help"]])
def test_help(runner: CliRunner, args: list[str]) -> None:
    result = invoke(runner, *args)
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_help_lists_commands(runner: CliRunner) -> None:
    out = invoke(runner, "--help").stdout
    for command in ("run", "doctor", "bench"):
        assert command in out


# ---- real subprocesses ----


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMNET_")}
    env["XDG_CONFIG_HOME"] = str(cwd)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_subprocess_exit_codes(tmp_path: Path) -> None:
    ok = _python(
        "-m",
        "ramnet.cli",
        "run",
        "--random",
        "9x7x5",
        "--dtype",
        "int8",
        "--out",
        "C.npy",
        "--json",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["shape"] == [9, 5]
    assert np.load(tmp_path / "C.npy").shape == (9, 5)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    bad = _python(
        "-m",
        "ramnet.cli",
        "run",
        "--a",
        "bad.npy",
        "--b",
        "bad.npy",
        "--out",
        "D.npy",
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert bad.stdout == ""


def test_cli_import_is_light(tmp_path: Path) -> None:
    code = "import ramnet.cli, sys; print('numba' in sys.modules, 'numpy' in sys.modules)"
    proc = _python("-c", code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    numba_loaded, numpy_loaded = proc.stdout.split()
    assert numba_loaded == "False"
    assert numpy_loaded == "False"
    helped = _python("-m", "ramnet.cli", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "Usage" in helped.stdout


def test_coordinator_start_passes_its_settings(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ramnet.mesh
    from ramnet.commands import _node

    seen = {}
    monkeypatch.setattr(_node, "long_running", lambda: None)
    monkeypatch.setattr(
        ramnet.mesh, "serve", lambda config, host, port: seen.update(config=config, port=port)
    )
    args = ["coordinator", "start", "--data-dir", str(tmp_path / "s"), "--port", "9123"]
    result = invoke(runner, *args, "--write-behind", "2.5", "--lease", "7")
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.write_behind, config.lease_s, config.durable) == (2.5, 7.0, False)
    assert seen["port"] == 9123
    assert invoke(runner, *args).exit_code == 0 and seen["config"].write_behind == 1.0
    refused = invoke(runner, *args, "--write-behind", "-1")
    assert refused.exit_code == 2
