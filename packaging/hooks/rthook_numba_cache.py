"""PyInstaller runtime hook: point ``NUMBA_CACHE_DIR`` at a per-user folder unless it is set.

numba caches compiled kernels next to their source by default, which in a frozen executable is a
read-only temporary folder that vanishes on exit. The cache goes to
``$XDG_CACHE_HOME/ramnet/numba``, else ``~/.cache/ramnet/numba`` (``~`` from ``HOME``, else the
password database, as for ``ramnet``'s config folder), else, when there is no usable home (no
passwd entry, a missing or read-only home), to ``ramnet-<uid>/numba`` in the temporary folder.
Nothing is created here: numba makes the folder when it first writes to it.

The executable built by ``packaging/pyinstaller.spec`` leaves numba out (the C kernels serve), so
today this only matters if a build ever bundles numba; it costs nothing at start-up.
"""


def _numba_cache_dir() -> str:
    import os
    import tempfile

    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, "ramnet", "numba")
    home = os.path.expanduser("~")
    if os.path.isabs(home) and os.path.isdir(home) and os.access(home, os.W_OK | os.X_OK):
        return os.path.join(home, ".cache", "ramnet", "numba")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"ramnet-{uid}", "numba")


def _install() -> None:
    import os

    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = _numba_cache_dir()


_install()
