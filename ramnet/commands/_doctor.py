"""``ramnet doctor``: what this installation can do, as a JSON-ready dict."""

from __future__ import annotations

import platform
import shutil
import sys
import sysconfig
from typing import Any


def _blas() -> dict[str, Any]:
    import numpy as np

    try:
        config = np.show_config(mode="dicts")  # numpy >= 1.25
        blas = config["Build Dependencies"]["blas"]
        return {"name": blas.get("name"), "version": blas.get("version")}
    except Exception:  # older numpy, or a build without this metadata
        return {"name": None, "version": None}


#: What a frozen executable says for Spark (packaging/pyinstaller.spec leaves the engine out).
NO_SPARK_IN_EXECUTABLE = "this executable has no Spark engine; pip install 'ramnet[spark]'"


def spark() -> dict[str, Any]:
    """Whether this machine can run ``ramnet run --mode spark``, without starting a JVM.

    Returns:
        ``pyspark`` (its version or None), ``java`` (``path``, ``version``, ``major`` or None),
        ``ok``, and ``problem``: the first thing missing, one line that says how to fix it.
    """
    from ramnet._errors import EngineUnavailableError

    info: dict[str, Any] = {"pyspark": None, "java": None, "ok": False, "problem": None}
    try:
        from ramnet.spark import session
    except ImportError:  # the one-file executable leaves ramnet.spark out
        info["problem"] = NO_SPARK_IN_EXECUTABLE
        return info
    problems = []
    try:
        info["pyspark"] = session.check_pyspark()
    except EngineUnavailableError as exc:
        problems.append(str(exc))
    try:
        java = session.check_java()
        info["java"] = {"path": java.path, "version": java.version, "major": java.major}
    except EngineUnavailableError as exc:
        problems.append(str(exc))
    info["ok"] = not problems
    info["problem"] = problems[0] if problems else None
    return info


def report() -> dict[str, Any]:
    """Describe Python, numpy and its BLAS, the compiler, the kernels, the code paths and Spark.

    Returns:
        A JSON-ready dict; ``kernels`` is ``ramnet.orchid.kernel_info()``, ``spark`` is
        ``spark()``.
    """
    import numpy as np

    from ramnet import __version__, orchid

    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    # A frozen executable (packaging/pyinstaller.spec) builds nothing: its compiler is moot.
    frozen = bool(getattr(sys, "frozen", False))
    return {
        "ramnet": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "blas": _blas(),
        "frozen": frozen,
        "compiler": {
            "name": None if frozen else cc,
            "found": not frozen and shutil.which(cc) is not None,
        },
        "threads": orchid.default_threads(),
        "kernels": orchid.kernel_info(),
        "spark": spark(),
    }
