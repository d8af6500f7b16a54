"""A build without the C extension: everything runs on the numba kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["ramnet.orchid._native"] = None  # importing it now raises ImportError
    import numpy as np
    import ramnet
    from ramnet import orchid
    from ramnet.orchid import _backends, _bindings

    info = orchid.kernel_info()
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (37, 53), dtype=np.int8)
    b = rng.integers(-128, 128, (53, 29), dtype=np.int8)
    c = ramnet.matmul(a, b)
    exact = bool(np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64)))
    a16 = rng.integers(-(2**15), 2**15, (9, 11), dtype=np.int16)
    b16 = rng.integers(-(2**15), 2**15, (11, 7), dtype=np.int16)
    exact16 = bool(np.array_equal(ramnet.matmul(a16, b16), a16.astype(np.int64) @ b16))
    x = np.zeros(1000); y = np.arange(1000.0); z = np.ones(1000)
    orchid.triad(x, y, z, 3.0)
    triad_ok = bool(np.array_equal(x, y + 3.0 * z))
    try:
        ramnet.matmul(a, b, backend="c")
        c_error = None
    except ramnet.BackendUnavailableError as exc:
        c_error = type(exc).__name__
    print(json.dumps({
        "available": _bindings.AVAILABLE,
        "import_error": _bindings.IMPORT_ERROR,
        "c_extension": info["c_extension"],
        "c_extension_error": info["c_extension_error"],
        "default_backend": info["default_backend"],
        "best": info["paths"]["gemm_s8"]["best"],
        "backend": _backends.resolve("auto", a.dtype).name,
        "dtype": c.dtype.name,
        "exact": exact,
        "exact16": exact16,
        "triad_ok": triad_ok,
        "c_error": c_error,
    }))
    """
)


def _run_script(script: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter (no RAMNET_* settings, its own config folder) and
    return the JSON object on its last line of output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMNET_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_without_c_extension(tmp_path: Path) -> None:
    out = _run_script(SCRIPT, tmp_path)
    assert out["available"] is False
    assert out["import_error"]
    assert out["c_extension"] is False
    assert out["c_extension_error"]
    assert out["default_backend"] == "numba"
    assert out["best"] == "numba-jit"
    assert out["backend"] == "numba"
    assert out["dtype"] == "int32"
    assert out["exact"] is True
    assert out["exact16"] is True
    assert out["triad_ok"] is True
    assert out["c_error"] == "BackendUnavailableError"


def test_doctor_without_c_extension(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ramnet.orchid._native'] = None; "
        "sys.argv = ['ramnet', 'doctor', '--json']; from ramnet.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMNET_")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["kernels"]["c_extension"] is False
    assert info["kernels"]["default_backend"] == "numba"


TRACE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["ramnet.orchid._native"] = None  # importing it now raises ImportError
    import numpy as np
    from ramnet import orchid
    from ramnet.orchid import _tiles
    from ramnet.valkyrie import NodeKey, TraceRecorder, verify_trace, write_trace

    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, (300, 70), dtype=np.int8)
    b = rng.integers(-128, 128, (70, 90), dtype=np.int8)
    recorder = TraceRecorder(threads=2)
    c = orchid.matmul(a, b, hooks=[recorder])
    key = NodeKey.generate()
    write_trace("t.bin", recorder.build(key, prove=True, threads=2), key)
    good = verify_trace("t.bin", a, b, c, threads=2)
    bad_c = c.copy()
    bad_c[5, 7] += 1
    bad = verify_trace("t.bin", a, b, bad_c, threads=2)
    print(json.dumps({
        "hash_paths": _tiles.hash_paths(),
        "valid": good.valid,
        "failed": sorted(bad.failed),
    }))
    """
)


def test_trace_and_verify_without_c_extension(tmp_path: Path) -> None:
    # Leaves hashed with the blake3 package, weighted sums on numba, strip by strip.
    out = _run_script(TRACE_SCRIPT, tmp_path)
    assert out["hash_paths"] == []
    assert out["valid"] is True
    assert out["failed"] == ["Freivalds", "commitment of C", "proof evaluation of C"]
