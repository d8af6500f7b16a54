"""The Spark session RAMNET runs on, and the checks a machine must pass first (pyspark, Java).

Spark runs in a JVM that pyspark starts through ``spark-submit``. Without pyspark or a recent
enough Java, that start fails deep inside Py4J with a long traceback; here each missing piece is
one line (``EngineUnavailableError``, exit 2) that says how to fix it. ``ramnet doctor`` calls the
same checks, which start no JVM (``java -version`` only).

Java is found as Spark's own launcher (``bin/spark-class``) finds it: ``$JAVA_HOME/bin/java`` when
``JAVA_HOME`` is set, else ``java`` on ``PATH``. That variable and ``PATH`` belong to Spark and the
system, not to RAMNET's settings, so they are read here and not through ``ramnet.config``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ramnet._errors import EngineUnavailableError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "INSTALL_JAVA",
    "JAVA_MIN_MAJOR",
    "JavaInfo",
    "check_java",
    "check_pyspark",
    "parse_java_version",
    "spark_session",
]

#: The oldest Java that Spark 4 runs on (Spark 3.5 runs on 8 and later; 17 serves both).
JAVA_MIN_MAJOR = 17
#: How a Debian or Ubuntu machine gets a Java runtime that Spark runs on.
INSTALL_JAVA = "apt-get install openjdk-17-jre-headless"
#: Seconds ``java -version`` may take (a JVM starts in well under one).
JAVA_VERSION_TIMEOUT = 10.0
# The driver JVM's log configuration: errors only (see the file).
_LOG4J2 = Path(__file__).with_name("log4j2.properties")


@dataclass(frozen=True)
class JavaInfo:
    """The Java runtime Spark will start.

    Attributes:
        path: The ``java`` executable.
        version: Its version string, as ``java -version`` prints it (``17.0.15``, ``1.8.0_392``).
        major: The feature release (``17``; ``8`` for ``1.8``).
    """

    path: str
    version: str
    major: int


def check_pyspark() -> str:
    """The installed pyspark's version, read from its metadata (pyspark itself is not imported).

    Returns:
        The version string.

    Raises:
        EngineUnavailableError: pyspark is not installed.
    """
    try:
        return metadata.version("pyspark")
    except metadata.PackageNotFoundError:
        raise EngineUnavailableError(
            "pyspark is not installed: pip install 'ramnet[spark]'"
        ) from None


def _find_java(env: Mapping[str, str]) -> str:
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if not os.access(candidate, os.X_OK):
            raise EngineUnavailableError(
                f"Spark needs Java {JAVA_MIN_MAJOR} or later; JAVA_HOME is {java_home} but "
                f"{candidate} is not an executable: point JAVA_HOME at a Java "
                f"{JAVA_MIN_MAJOR}+ runtime or unset it, or install one with `{INSTALL_JAVA}`"
            )
        return str(candidate)
    found = shutil.which("java", path=env.get("PATH", os.defpath))
    if found is None:
        raise EngineUnavailableError(
            f"Spark needs Java {JAVA_MIN_MAJOR} or later; none was found (JAVA_HOME unset, no "
            f"java on PATH): install it with `{INSTALL_JAVA}`"
        )
    return found


def parse_java_version(text: str) -> tuple[str, int] | None:
    """The version string and major release in ``java -version``'s output, or None.

    Args:
        text: What ``java -version`` printed (it prints to stderr), e.g.
            ``openjdk version "17.0.15" 2025-04-15``.

    Returns:
        (``"17.0.15"``, 17); (``"1.8.0_392"``, 8) for the old ``1.x`` numbering.
    """
    found = re.search(r'version "([^"]+)"', text)
    if found is None:
        return None
    version = found.group(1)
    parts = version.split(".")
    head = parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0]
    digits = re.match(r"\d+", head)
    if digits is None:
        return None
    return version, int(digits.group(0))


def check_java(env: Mapping[str, str] | None = None) -> JavaInfo:
    """Find the Java runtime Spark would start and check that it is recent enough.

    Runs ``java -version`` (no Spark, no JVM kept).

    Args:
        env: The environment to look in (``JAVA_HOME``, ``PATH``); this process's by default.

    Returns:
        The runtime's path, version and major release.

    Raises:
        EngineUnavailableError: No Java, one that does not run, or one older than
            ``JAVA_MIN_MAJOR``; one line that says what to install.
    """
    env = os.environ if env is None else env
    java = _find_java(env)
    try:
        proc = subprocess.run(
            [java, "-version"],
            capture_output=True,
            text=True,
            timeout=JAVA_VERSION_TIMEOUT,
            env=dict(env),
        )
    except subprocess.TimeoutExpired:
        raise EngineUnavailableError(
            f"Spark needs Java {JAVA_MIN_MAJOR} or later; `{java} -version` did not answer in "
            f"{JAVA_VERSION_TIMEOUT:.0f} s: check that Java, or install it with `{INSTALL_JAVA}`"
        ) from None
    except OSError as exc:
        raise EngineUnavailableError(
            f"Spark needs Java {JAVA_MIN_MAJOR} or later; {java} cannot run ({exc.strerror}): "
            f"install it with `{INSTALL_JAVA}`"
        ) from exc
    parsed = parse_java_version(proc.stderr + proc.stdout)
    if proc.returncode != 0 or parsed is None:
        first = (proc.stderr or proc.stdout).strip().splitlines()
        said = f": {first[0]}" if first else ""
        raise EngineUnavailableError(
            f"Spark needs Java {JAVA_MIN_MAJOR} or later; `{java} -version` failed (exit "
            f"{proc.returncode}{said}): install it with `{INSTALL_JAVA}`"
        )
    version, major = parsed
    if major < JAVA_MIN_MAJOR:
        raise EngineUnavailableError(
            f"Spark needs Java {JAVA_MIN_MAJOR} or later; {java} is Java {version}: install a "
            f"newer one with `{INSTALL_JAVA}` and set JAVA_HOME to it"
        )
    return JavaInfo(path=java, version=version, major=major)


def _is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[") or master.startswith("local-cluster")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]


def submitted() -> bool:
    """Whether this process is a driver that ``spark-submit`` started: pyspark then finds the JVM
    gateway spark-submit opened (``PYSPARK_GATEWAY_PORT``), with the master it was given."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def default_master() -> str | None:
    """The master to use when none is given: spark-submit's own (None), else ``local[*]``."""
    return None if submitted() else "local[*]"


def spark_session(
    master: str | None = None,
    *,
    app_name: str = "ramnet",
    conf: dict[str, str] | None = None,
    log_level: str = "FATAL",
) -> SparkSession:
    """Get (or start) the Spark session RAMNET runs on, after checking pyspark and Java.

    For a ``local`` master the driver binds to 127.0.0.1 and the Spark UI is off (nothing
    listens beyond this machine), and the workers run this process's Python (the one RAMNET is
    installed in) unless ``PYSPARK_PYTHON`` says otherwise. The driver JVM logs fatal errors only
    (``log4j2.properties`` beside this module) and writes its output into a temporary file, not
    the terminal, so Spark's own warnings do not flood it. Prints nothing itself.

    Args:
        master: Spark's master URL: ``local[*]``, ``local[2]``, ``spark://HOST:7077``, ``yarn``,
            ``k8s://...``; None: the master ``spark-submit`` was given when it started this
            process, else ``local[*]`` (``default_master``).
        app_name: The application's name in the cluster's UI.
        conf: More Spark settings; they override RAMNET's defaults.
        log_level: The session's log level. FATAL by default: at ERROR, Spark logs a traceback
            for every failed task, and RAMNET reports a failed job itself in one line.

    Returns:
        The active ``SparkSession`` (an existing one is reused, as Spark's builder does).

    Raises:
        EngineUnavailableError: No pyspark, no usable Java, or a JVM that did not start (one
            line, the reason Spark gave).
    """
    check_pyspark()
    from pyspark.sql import SparkSession

    if master is None and submitted():
        # spark-submit started the JVM with the user's master and settings: join it as it is.
        try:
            session = SparkSession.builder.appName(app_name).getOrCreate()
        except Exception as exc:
            raise EngineUnavailableError(
                f"cannot join spark-submit's Spark: {_one_line(exc)}"
            ) from exc
        session.sparkContext.setLogLevel(log_level)
        return session
    master = master or "local[*]"
    check_java()

    # Spark splits these options as a shell would: quote a path with spaces.
    log4j = f"file:{_LOG4J2}"
    log4j = f'"{log4j}"' if any(ch.isspace() for ch in log4j) else log4j
    settings = {
        "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile={log4j}",
        # RAMNET draws its own progress bar; Spark's would write over it.
        "spark.ui.showConsoleProgress": "false",
    }
    if _is_local(master):
        settings.update(
            {
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.ui.enabled": "false",
            }
        )
        # pyspark starts its workers with PYSPARK_PYTHON, else whatever `python3` is on PATH,
        # which need not have RAMNET installed.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        _start_jvm(settings | {"spark.master": master, "spark.app.name": app_name})
        session = builder.getOrCreate()
    except EngineUnavailableError:
        raise
    except Exception as exc:  # Py4J and pyspark raise their own classes, or RuntimeError
        raise EngineUnavailableError(
            f"Spark did not start (master {master}): {_one_line(exc)}"
        ) from exc
    session.sparkContext.setLogLevel(log_level)
    return session


def _start_jvm(settings: dict[str, str]) -> None:
    """Start pyspark's JVM (once per process) with its output in an unnamed temporary file.

    Left to pyspark, the JVM writes to this process's terminal: a JVM warning at every start,
    whatever its Python workers print, and, when it cannot start, Java's own lines before
    pyspark's "Java gateway process exited". Here a JVM that does not start becomes one line
    that quotes the first thing it said.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return  # started already: the JVM lives as long as this process
    conf = SparkConf(loadDefaults=False)
    for key, value in settings.items():
        conf.set(key, value)
    # The JVM keeps its own descriptor of the file for its life; once ours closes, nothing on
    # disk is left behind.
    with tempfile.TemporaryFile(prefix="ramnet-spark-") as output:
        try:
            gateway = launch_gateway(  # type: ignore[no-untyped-call]
                conf, popen_kwargs={"stdout": output, "stderr": output}
            )
        except Exception as exc:
            output.seek(0)
            said = [
                line.strip()
                for line in output.read().decode(errors="replace").splitlines()
                if line.strip() and not line.startswith("WARNING: Using incubator modules")
            ]
            reason = said[0][:300] if said else _one_line(exc)
            raise EngineUnavailableError(
                f"Spark's JVM did not start (master {settings['spark.master']}): {reason}"
            ) from exc
    SparkContext._ensure_initialized(gateway=gateway)
