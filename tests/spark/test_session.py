"""The Spark session and the checks before it: pyspark present, a Java that Spark runs on, and a
JVM that does not start, each as one line that says how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ramnet._errors import EngineUnavailableError
from ramnet.spark import session
from ramnet.spark.session import INSTALL_JAVA, check_java, check_pyspark, parse_java_version


def _fake_java(folder: Path, version_line: str) -> Path:
    """A JAVA_HOME whose bin/java prints ``version_line`` for -version and fails otherwise."""
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-version" ]; then echo \'{version_line}\' >&2; exit 0; fi\n'
        "echo 'Error: the fake java runs nothing' >&2\n"
        "exit 1\n"
    )
    java.chmod(0o755)
    return folder


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def test_no_java_anywhere_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailableError) as info:
        check_java({"PATH": str(tmp_path)})  # JAVA_HOME unset, nothing named java on PATH
    text = _one_line(info.value)
    assert "Java 17 or later" in text
    assert "JAVA_HOME unset, no java on PATH" in text
    assert INSTALL_JAVA in text and "apt-get" in text


def test_java_home_without_java_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailableError) as info:
        check_java({"JAVA_HOME": str(tmp_path / "jdk"), "PATH": os.defpath})
    text = _one_line(info.value)
    assert f"JAVA_HOME is {tmp_path / 'jdk'}" in text
    assert INSTALL_JAVA in text


def test_old_java_is_refused_with_its_version(tmp_path: Path) -> None:
    home = _fake_java(tmp_path / "jdk8", 'java version "1.8.0_392"')
    with pytest.raises(EngineUnavailableError) as info:
        check_java({"JAVA_HOME": str(home), "PATH": os.defpath})
    text = _one_line(info.value)
    assert "is Java 1.8.0_392" in text
    assert "Java 17 or later" in text and INSTALL_JAVA in text


def test_old_java_on_path_is_refused(tmp_path: Path) -> None:
    home = _fake_java(tmp_path / "jdk11", 'openjdk version "11.0.21" 2023-10-17')
    with pytest.raises(EngineUnavailableError, match=r"is Java 11\.0\.21"):
        check_java({"PATH": str(home / "bin")})


def test_java_that_prints_no_version_is_refused(tmp_path: Path) -> None:
    home = _fake_java(tmp_path / "odd", "this is not a version")
    with pytest.raises(EngineUnavailableError) as info:
        check_java({"JAVA_HOME": str(home)})
    assert "-version` failed" in _one_line(info.value)


def test_java_home_wins_over_path(tmp_path: Path) -> None:
    home = _fake_java(tmp_path / "jdk21", 'openjdk version "21.0.2" 2024-01-16')
    found = check_java({"JAVA_HOME": str(home), "PATH": os.environ.get("PATH", "")})
    assert found.path == str(home / "bin" / "java")
    assert (found.version, found.major) == ("21.0.2", 21)


def test_this_machine_has_a_java_spark_runs_on() -> None:
    found = check_java()
    assert found.major >= 17
    assert Path(found.path).exists()
    assert found.version.split(".")[0] == str(found.major)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('openjdk version "17.0.15" 2025-04-15', ("17.0.15", 17)),
        ('java version "1.8.0_392"', ("1.8.0_392", 8)),
        ('openjdk version "21" 2023-09-19', ("21", 21)),
        ('openjdk version "22-ea" 2024-03-19', ("22-ea", 22)),
        ("no version here", None),
    ],
)
def test_parse_java_version(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_java_version(text) == expected


def test_missing_pyspark_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(session.metadata, "version", missing)
    with pytest.raises(EngineUnavailableError) as info:
        check_pyspark()
    assert _one_line(info.value) == "pyspark is not installed: pip install 'ramnet[spark]'"


def test_pyspark_version_is_reported() -> None:
    pytest.importorskip("pyspark")
    assert check_pyspark() == metadata.version("pyspark")


def test_a_jvm_that_does_not_start_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    # A fresh process: pyspark starts its JVM once per process, and this one may have one.
    home = _fake_java(tmp_path / "jdk", 'openjdk version "17.0.1" 2021-10-19')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env["JAVA_HOME"] = str(home)
    code = (
        "from ramnet.spark.session import spark_session\n"
        "from ramnet._errors import EngineUnavailableError\n"
        "try:\n"
        "    spark_session('local[1]')\n"
        "except EngineUnavailableError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # the JVM's own lines went to its log file, not the terminal
    assert proc.stdout.splitlines() == [
        "Spark's JVM did not start (master local[1]): Error: the fake java runs nothing"
    ]


def test_local_session_binds_loopback_without_ui() -> None:
    pytest.importorskip("pyspark")
    spark = session.spark_session("local[2]")
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert conf.get("spark.ui.enabled") == "false"
    assert spark.sparkContext.uiWebUrl is None
    assert spark.sparkContext.parallelize(range(8), 2).map(lambda x: x * x).sum() == 140
