"""Lend this machine: one local ``ramnet worker start`` process, started and stopped from the
page, and what the coordinator's ledger says about it.

The worker runs in its own process group; stopping it sends SIGTERM (it finishes the shard in
hand) and, after ``STOP_GRACE_S``, SIGKILL to the group. On Linux the worker also gets SIGTERM
when the UI process dies however it dies (``PR_SET_PDEATHSIG``); ``close`` stops it when the UI
exits normally.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ramnet._errors import InvalidInputError

#: Seconds a stopping worker has to finish its shard before it is killed.
STOP_GRACE_S = 10.0
#: Log lines kept for the page.
LOG_LINES = 40


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker runs.

    Attributes:
        coordinator: The coordinator's URL.
        bond: The bond it stakes.
        validator: Whether it also joins the validator pool.
        key_file: Its own key file (created if missing).
        threads: Compute threads (None: the worker's default).
        binding: A wallet binding file of its key, presented at registration (None: none).
    """

    coordinator: str
    bond: int
    validator: bool
    key_file: Path
    threads: int | None = None
    binding: Path | None = None


class WorkerBusyError(InvalidInputError):
    """A worker is already running (one per UI)."""

    http_status = 409


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalWorker:
    """The one worker process this UI lends.

    Args:
        ramnet_argv: How to start ``ramnet`` (the frozen executable, or Python with the CLI).
    """

    def __init__(self, ramnet_argv: Sequence[str]) -> None:
        self._argv = list(ramnet_argv)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._options: WorkerOptions | None = None
        self._node_id: str | None = None
        self._log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._shards_done = 0
        self._first_balance: int | None = None

    @property
    def options(self) -> WorkerOptions | None:
        """The running (or last) worker's options."""
        return self._options

    def start(self, options: WorkerOptions) -> str:
        """Start the worker.

        The PR_SET_PDEATHSIG of the child follows the thread that forked it, so call this from a
        thread that lives as long as the UI (the server's event loop).

        Args:
            options: How it runs.

        Returns:
            Its node id (its key is created first when missing).

        Raises:
            WorkerBusyError: One is already running.
            RamnetError: Its key file cannot be read or created.
        """
        from ramnet.valkyrie import load_or_create_key

        with self._lock:
            if self.running:
                raise WorkerBusyError("a worker is already running: stop it first")
            key, _ = load_or_create_key(options.key_file)
            if options.binding is not None:
                check_worker_binding(options.binding, key.node_id)
            argv = [
                *self._argv,
                "worker",
                "start",
                "--coordinator",
                options.coordinator,
                "--bond",
                str(options.bond),
                "--key-file",
                str(options.key_file),
            ]
            if options.validator:
                argv.append("--validator")
            if options.threads:
                argv += ["--threads", str(options.threads)]
            if options.binding is not None:
                argv += ["--binding", str(options.binding)]
            self._log.clear()
            self._shards_done = 0
            self._first_balance = None
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, "COLUMNS": "200"},
            )
            self._options, self._node_id = options, key.node_id
            threading.Thread(
                target=self._read_log, args=(self._process,), name="ui-worker-log", daemon=True
            ).start()
            return key.node_id

    @property
    def running(self) -> bool:
        """Whether the worker process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """Stop the worker: SIGTERM, then SIGKILL to its group after ``grace_s``.

        Returns:
            Its exit status (None: there was none).
        """
        with self._lock:
            process = self._process
            if process is None:
                return None
            if process.poll() is None:
                self._signal(process, signal.SIGTERM)
                try:
                    process.wait(grace_s)
                except subprocess.TimeoutExpired:
                    self._signal(process, signal.SIGKILL)
                    process.wait()
            # Anything it started in its group goes with it.
            self._signal(process, signal.SIGKILL)
            return process.returncode

    close = stop

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def _read_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._log.append(line)
            if line.endswith((": revealed", ": submitted (unproven)")):
                self._shards_done += 1

    def status(self, ledger: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the page shows.

        Args:
            ledger: The coordinator's ledger view (``LedgerView``), or None when unknown.

        Returns:
            ``running``, ``pid``, ``returncode``, ``node_id``, ``options``, ``shards_done``,
            ``log`` (the last lines), and from the ledger ``account`` (bond, balance, slashed)
            and ``earned`` (balance gained since it started).
        """
        process = self._process
        account = None
        if ledger is not None and self._node_id is not None:
            for entry in ledger.get("accounts", ()):
                if entry.get("node_id") == self._node_id:
                    account = entry
        earned = None
        if account is not None:
            if self._first_balance is None:
                self._first_balance = int(account["balance"])
            earned = int(account["balance"]) - self._first_balance
        return {
            "running": self.running,
            "pid": None if process is None else process.pid,
            "returncode": None if process is None else process.poll(),
            "node_id": self._node_id,
            "options": self._options,
            "shards_done": self._shards_done,
            "log": list(self._log),
            "account": account,
            "earned": earned,
        }


def read_ledger(coordinator: str) -> dict[str, Any]:
    """The coordinator's ledger (accounts and totals), asked once, without retries.

    Raises:
        MeshUnavailableError: The coordinator does not answer.
        MeshRequestError: It refuses.
    """
    from ramnet.mesh import MeshClient
    from ramnet.mesh.protocol.routes import url

    with MeshClient(coordinator, None, retries=None, retry_for=2.0) as client:
        reply: dict[str, Any] = client.get_json(url("ledger"))
        return reply


def check_worker_binding(path: Path, node_id: str) -> None:
    """Check a binding file before a worker presents it: readable, valid, and of its key.

    Raises:
        FieldError: Any of these fails (field ``binding``), as one sentence.
    """
    from ramnet.ui.forms import FieldError
    from ramnet.valkyrie._binding712 import BindingFormatError, check_binding, read_binding

    try:
        check = check_binding(read_binding(path.read_bytes()))
    except OSError as exc:
        raise FieldError("binding", f"Cannot read {path}: {exc.strerror or exc}.") from exc
    except BindingFormatError as exc:
        raise FieldError("binding", f"{path.name} is {exc}.") from exc
    if not check.valid:
        raise FieldError("binding", f"The binding is invalid: {check.problems[0]}.")
    if check.node_id != node_id:
        raise FieldError(
            "binding",
            f"The binding is for node {check.node_id[:12]}…, not this worker's key"
            f" {node_id[:12]}…: bind the worker's key (ramnet keys bind --key-file).",
        )
