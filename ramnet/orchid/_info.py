"""What ORCHID can run on this machine: the C extension, CPU features, code paths, numba."""

from __future__ import annotations

from typing import Any

from ramnet.orchid import _bindings, _numba_shim


def kernel_info() -> dict[str, Any]:
    """Describe the kernels available here.

    Returns:
        A JSON-ready dict: ``c_extension`` (bool), ``c_extension_error`` (why it failed to load, or
        None), ``cpu_features`` (list), ``paths`` (per kernel family: ``best`` and ``supported``),
        ``numba`` (version or None), ``default_backend``.
    """
    info: dict[str, Any] = {
        "c_extension": _bindings.AVAILABLE,
        "c_extension_error": _bindings.IMPORT_ERROR,
        "numba": _numba_shim.version(),
        "default_backend": "c" if _bindings.AVAILABLE else "numba",
    }
    if _bindings.AVAILABLE:
        info["cpu_features"] = _bindings.cpu_features()
        info["paths"] = {
            family: {
                "best": _bindings.best_path(family),
                "supported": _bindings.supported_paths(family),
            }
            for family in _bindings.KERNEL_FAMILIES
        }
    else:
        info["cpu_features"] = _cpuinfo_flags()
        info["paths"] = {
            family: {"best": "numba-jit", "supported": ["numba-jit"]}
            for family in _bindings.KERNEL_FAMILIES
        }
    return info


def _cpuinfo_flags() -> list[str]:
    # Without the extension, report what the kernel says (Linux only), for the doctor.
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    wanted = {
                        "avx2",
                        "fma",
                        "avx512f",
                        "avx512bw",
                        "avx512_vnni",
                        "avx_vnni",
                        "asimd",
                    }
                    return sorted(wanted.intersection(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []
