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


def report() -> dict[str, Any]:
    """Describe Python, numpy and its BLAS, the compiler, the kernels and the code paths.

    Returns:
        A JSON-ready dict; ``kernels`` is ``ramnet.orchid.kernel_info()``.
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
    }
