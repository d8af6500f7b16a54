"""``ramnet run --mode spark`` and ``ramnet verify`` of its Zarr results, on a real ``local[2]``
Spark (one session for the module: Spark takes seconds to start), small sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ramnet.cli import app

zarr = pytest.importorskip("zarr")  # the engine's stores need zarr 3 (Python 3.11+)
pytest.importorskip("pyspark")

pytestmark = pytest.mark.usefixtures("clean_env")

MASTER = "local[2]"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One session for every test here: the command's own getOrCreate finds it."""
    from ramnet.spark.session import spark_session

    yield spark_session(MASTER)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def spark_run(runner: CliRunner, *args: str) -> Any:
    return invoke(runner, "run", "--mode", "spark", "--master", MASTER, *args)


def one_json(result: Any) -> dict[str, Any]:
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


def assert_one_line_error(result: Any, *needles: str) -> str:
    """Exit 2, one ``error:`` line on stderr that contains every needle, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""
    return str(lines[0])


def read(path: Path) -> np.ndarray:
    if path.suffix == ".zarr":
        return np.asarray(zarr.open_array(str(path), mode="r")[...])
    return np.load(path)


def write_zarr(path: Path, values: np.ndarray, chunks: tuple[int, int]) -> None:
    array = zarr.create_array(
        store=str(path), shape=values.shape, chunks=chunks, dtype=values.dtype
    )
    array[...] = values


def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


# ---- successful runs ----


def test_random_int8_to_zarr_exact_with_json_report(
    spark: Any, runner: CliRunner, tmp_path: Path
) -> None:
    result = spark_run(
        runner,
        "--random",
        "96x80x72",
        "--dtype",
        "int8",
        "--seed",
        "7",
        "--save-inputs",
        "inputs",
        "--out",
        "C.zarr",
        "--trace",
        "t.bin",
        "--key-file",
        "node.key",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = one_json(result)
    assert report["mode"] == "spark"
    assert report["shape"] == [96, 72]
    assert report["a_shape"] == [96, 80] and report["b_shape"] == [80, 72]
    assert report["dtype"] == "int8" and report["out_dtype"] == "int32"
    assert report["nodes"] == 3 and len(report["slots"]) == 3
    assert report["master"] == MASTER
    assert report["executors"]
    assert report["faults_caught"] == 0 and report["recomputed"] == []
    assert report["partials_checked"] >= 1
    assert report["audit_blocks"] >= 1
    assert set(report["seconds"]) >= {"compute", "check", "assemble", "total"}
    assert report["trace"]["path"] == "t.bin"
    a, b = read(tmp_path / "inputs" / "A.zarr"), read(tmp_path / "inputs" / "B.zarr")
    c = read(tmp_path / "C.zarr")
    assert c.dtype == np.int32
    np.testing.assert_array_equal(c, exact(a, b))
    # The trace verifies against the Zarr stores, and a tampered C does not.
    ok = invoke(runner, "verify", "t.bin", "--a", "inputs/A.zarr", "--b", "inputs/B.zarr")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    ok = invoke(runner, "verify", "t.bin", "--c", "C.zarr", "--json")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert one_json(ok)["valid"] is True
    zarr.open_array(str(tmp_path / "C.zarr"), mode="r+")[5, 7] += 1
    bad = invoke(runner, "verify", "t.bin", "--c", "C.zarr")
    assert bad.exit_code == 1
    assert "invalid" in bad.stderr


def test_npy_and_zarr_operands_exact_with_table(
    spark: Any, runner: CliRunner, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(-300, 300, (96, 80), dtype=np.int16)
    b = rng.integers(-300, 300, (80, 72), dtype=np.int16)
    np.save(tmp_path / "A.npy", a)
    write_zarr(tmp_path / "B.zarr", b, (40, 36))  # fits --grid 2,2,2 (K and N halves)
    result = spark_run(runner, "--a", "A.npy", "--b", "B.zarr", "--grid", "2,2,2", "--out", "C.npy")
    assert result.exit_code == 0, result.stderr
    assert "C = A·B on Spark" in result.stdout
    assert "faults caught" in result.stdout and "2x2x2" in result.stdout
    np.testing.assert_array_equal(read(tmp_path / "C.npy"), exact(a, b))


@pytest.mark.parametrize("fault", ["zeros", "off-by-one", "random"])
def test_injected_fault_is_caught_and_c_stays_exact(
    spark: Any, runner: CliRunner, tmp_path: Path, fault: str
) -> None:
    result = spark_run(
        runner,
        "--random",
        "96x80x72",
        "--dtype",
        "int8",
        "--save-inputs",
        "in",
        "--out",
        "C.zarr",
        "--inject-fault",
        fault,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = one_json(result)
    assert report["faults_caught"] >= 1
    assert report["recomputed"], report
    for redo in report["recomputed"]:
        assert redo["executor"] and redo["recomputed_on"]
    c = read(tmp_path / "C.zarr")
    np.testing.assert_array_equal(
        c, exact(read(tmp_path / "in/A.zarr"), read(tmp_path / "in/B.zarr"))
    )


# ---- bad input: one line, exit 2, nothing under --out ----


def test_shape_mismatch(spark: Any, runner: CliRunner, tmp_path: Path) -> None:
    np.save(tmp_path / "A.npy", np.ones((6, 5), np.int8))
    np.save(tmp_path / "B.npy", np.ones((4, 3), np.int8))
    result = spark_run(runner, "--a", "A.npy", "--b", "B.npy", "--out", "C.zarr")
    assert_one_line_error(result, "A's columns (5) must equal B's rows (4)")
    assert not (tmp_path / "C.zarr").exists()


def test_missing_store(spark: Any, runner: CliRunner, tmp_path: Path) -> None:
    np.save(tmp_path / "B.npy", np.ones((4, 3), np.int8))
    result = spark_run(runner, "--a", "nothere.zarr", "--b", "B.npy", "--out", "C.zarr")
    assert_one_line_error(result, "nothere.zarr")
    assert not (tmp_path / "C.zarr").exists()


def test_chunking_that_does_not_fit_the_grid(spark: Any, runner: CliRunner, tmp_path: Path) -> None:
    write_zarr(tmp_path / "A.zarr", np.ones((96, 80), np.int8), (7, 5))
    write_zarr(tmp_path / "B.zarr", np.ones((80, 72), np.int8), (40, 36))
    result = spark_run(
        runner, "--a", "A.zarr", "--b", "B.zarr", "--grid", "2,2,2", "--out", "C.zarr"
    )
    assert_one_line_error(result, "A")
    assert not (tmp_path / "C.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.zarr", "B.zarr"]  # no work left


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--nodes", "4"], ["--nodes", "multiple of 3"]),
        (["--inject-fault", "bogus"], ["--inject-fault"]),
        (["--prove", "--trace", "t.bin"], ["--prove"]),
        (["--coordinator", "http://127.0.0.1:1"], ["--coordinator", "--mode mesh"]),
        (["--save-inputs", "in", "--a", "A.npy", "--b", "B.npy"], ["--save-inputs"]),
    ],
)
def test_bad_options(runner: CliRunner, args: list[str], needles: list[str]) -> None:
    base = ["--out", "C.zarr"]
    if "--a" not in args:
        base += ["--random", "12x10x8", "--dtype", "int8"]
    result = spark_run(runner, *base, *args)
    assert_one_line_error(result, *needles)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--master", "local[2]"], ["--master", "--mode spark"]),
        (["--inject-fault", "zeros"], ["--inject-fault", "--mode spark"]),
    ],
)
def test_spark_options_outside_spark(
    runner: CliRunner, args: list[str], needles: list[str]
) -> None:
    result = invoke(
        runner, "run", "--random", "12x10x8", "--dtype", "int8", "--out", "C.npy", *args
    )
    assert_one_line_error(result, *needles)


def test_java_missing_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAMNET_", "JAVA_"))}
    env["PATH"] = str(tmp_path)  # no java anywhere; Python is called by its full path
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ramnet.cli",
            "run",
            "--mode",
            "spark",
            "--random",
            "12x10x8",
            "--dtype",
            "int8",
            "--out",
            "C.zarr",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: Spark needs Java 17 or later"), lines[0]
    assert "apt-get install openjdk-17-jre-headless" in lines[0]
    assert not (tmp_path / "C.zarr").exists()
