"""What the commands of a node share: its settings, its key, and the set-up of a long-running
mesh role (worker, auditor) with its signals, its log, and its hold on its key (one key, one
process)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ramnet.commands._common import stderr

# Lock files held for the process's life (a closed file would let go of its lock).
_HELD: list[Any] = []
#: Seconds a serving process waits for its key's previous process to go silent at the
#: coordinator (a restart) before it gives up (a second process on the key).
KEY_PATIENCE = 25.0


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
    hold_key(found.key_file)
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


def hold_key(key_file: str | None) -> None:
    """Take this machine's lock on a node key for this process's life: one key, one process.

    The lock is an ``flock`` on ``<key>.lock`` beside the key, let go when the process ends
    however it ends.

    Args:
        key_file: The key's path; None for the default one.

    Raises:
        ConfigError: Another process on this machine holds the key (one line saying to give
            each process its own ``--key-file``).
    """
    import fcntl

    from ramnet._errors import ConfigError
    from ramnet.config import default_key_path

    path = Path(key_file) if key_file else default_key_path()
    lock = path.with_name(path.name + ".lock")
    handle = open(lock, "a")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        which = "the default key" if key_file is None else "the key"
        raise ConfigError(
            f"another ramnet process on this machine already runs with {which} {path}:"
            " give each worker its own --key-file"
        ) from None
    _HELD.append(handle)


def when_key_free(start: Callable[[], Any], stop: Any, log: Callable[[str], None]) -> Any:
    """Run a serving role (``start`` registers first), waiting while the coordinator still sees
    the key's previous process alive (a restart within its node timeout), at most
    ``KEY_PATIENCE`` seconds, and saying so once.

    Args:
        start: The role's run (``lambda: worker.run(stop)``); only its registration raises.
        stop: The process's stop event (ends the wait).
        log: Where the wait is said.

    Returns:
        What ``start`` returned.

    Raises:
        MeshRequestError: Still refused after ``KEY_PATIENCE`` seconds: another live process
            uses the key (its one-line error), or any other refusal.
    """
    from ramnet.mesh import MeshRequestError

    deadline = time.monotonic() + KEY_PATIENCE
    said = False
    while True:
        try:
            return start()
        except MeshRequestError as exc:
            in_use = exc.status == 409 and "in use by another" in str(exc)
            if not in_use or time.monotonic() >= deadline or stop.is_set():
                raise
            if not said:
                log(
                    f"waiting up to {KEY_PATIENCE:.0f} s for the key's other process to stop: {exc}"
                )
                said = True
            stop.wait(1.0)
