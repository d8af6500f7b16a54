"""A cluster run as the README shows it: ``spark-submit`` runs RAMNET's driver file, and
``run --mode spark`` without ``--master`` joins the master spark-submit was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ramnet.spark import session
from ramnet.spark.submit import driver_path

pyspark = pytest.importorskip("pyspark")


def test_the_driver_file_is_the_ramnet_command() -> None:
    path = driver_path()
    assert path.name == "__main__.py" and path.is_file()
    out = subprocess.run(
        [sys.executable, "-m", "ramnet.spark.submit"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(path)


def test_default_master_follows_spark_submit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert session.default_master() == "local[*]"
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "12345")
    assert session.submitted() and session.default_master() is None


def test_spark_submit_runs_a_checked_job(tmp_path: Path) -> None:
    try:
        session.check_java()
    except Exception as exc:
        pytest.skip(f"no usable Java: {exc}")
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (70, 50)).astype(np.int8)
    b = rng.integers(-128, 128, (50, 40)).astype(np.int8)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    proc = subprocess.run(
        [
            str(submit),
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            str(driver_path()),
            "run",
            "--mode",
            "spark",
            "--a",
            "A.npy",
            "--b",
            "B.npy",
            "--out",
            "C.npy",
            "--inject-fault",
            "zeros",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert report["master"] == "local[2]"  # spark-submit's, not a default of RAMNET's
    assert report["faults_caught"] >= 1
    c = np.load(tmp_path / "C.npy")
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
