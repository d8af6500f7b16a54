"""What the commands of a node share: its settings, its key, and the set-up of a long-running
mesh role (worker, auditor) with its signals and its log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ramnet.commands._common import stderr


def settings(**overrides: Any) -> Any:
    """The settings (environment and config file) with the command's flags on top.

    Args:
        overrides: Flag values by setting name; None leaves a setting as configured.

    Returns:
        A ``ramnet.config.Settings``.

    Raises:
        InvalidInputError: A bad setting.
    """
    from ramnet.config import load_settings

    return load_settings(None, overrides)


def key_path(key_file: Path | None) -> Path:
    """Where the node key lives: ``--key-file``, else ``RAMNET_KEY_FILE`` or the config folder."""
    from ramnet.config import default_key_path, load_settings

    found = load_settings(None, {"key_file": str(key_file) if key_file else None})
    return Path(found.key_file) if found.key_file else default_key_path()


def node_key(key_file: str | None) -> Any:
    """Load the node key, creating one (and saying where, on stderr) if there is none.

    Args:
        key_file: The key's path; None for the default one.

    Returns:
        The ``NodeKey``.

    Raises:
        RamnetError: An unreadable or invalid key file.
    """
    from ramnet.config import default_key_path
    from ramnet.valkyrie import load_or_create_key

    path = Path(key_file) if key_file else default_key_path()
    key, created = load_or_create_key(path)
    if created:
        stderr().print(
            f"created a new node key at {path} (node id {key.node_id})",
            markup=False,
            soft_wrap=True,
        )
    return key


def long_running() -> None:
    """Prepare this process to serve: a node handles one large body after another."""
    # Let it reuse freed memory rather than pay fresh page faults for every buffer (see
    # ramnet.orchid._memory.keep_freed_memory).
    from ramnet.orchid._memory import keep_freed_memory

    keep_freed_memory()


def mesh_node(role: str, found: Any) -> tuple[Any, Any, Callable[[str], None]]:
    """Set up a mesh role's process.

    Args:
        role: The role's name, first on each log line (``worker``, ``auditor``).
        found: The node's settings (coordinator, its CA file, key file).

    Returns:
        The node's signed client (its key loaded or created), an event that SIGTERM and SIGINT
        set, and a function that logs one line on stderr as ``ROLE NODE-ID: ...``.
    """
    import signal
    import threading

    from ramnet.mesh import MeshClient

    key = node_key(found.key_file)
    long_running()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err = stderr()

    def log(line: str) -> None:
        err.print(f"{role} {key.node_id[:12]}: {line}", markup=False, soft_wrap=True)

    client = MeshClient(
        found.coordinator, key, retries=None, retry_for=30, stop=stop, ca_file=found.ca_file
    )
    return client, stop, log
