"""The thread that keeps a coordinator's open disputes moving, so that every dispute ends: it calls
``Disputes.tend`` every second (draw a validator for a dispute that has none or lost its own,
judge here one that waited ``validator_wait`` seconds), whether or not anyone is polling."""

from __future__ import annotations

import sys
import threading
import traceback

from ramnet.mesh.coordinator.disputes import Disputes

__all__ = ["DisputeWatch"]


class DisputeWatch:
    """The thread that keeps open disputes moving (``Disputes.tend``) every ``interval`` seconds
    until ``stop``.

    Args:
        disputes: What it tends.
        interval: Seconds between looks.
    """

    def __init__(self, disputes: Disputes, interval: float = 1.0) -> None:
        self._disputes = disputes
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispute-watch", daemon=True)

    def start(self) -> None:
        """Start looking."""
        self._thread.start()

    def stop(self) -> None:
        """Stop looking (waits for a judgement under way to finish)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._interval):
            try:
                self._disputes.tend()
                failing = False
            except Exception as exc:  # logged once per run of failures, then tried again
                if not failing:
                    print(
                        "coordinator: tending the open disputes failed:"
                        f" {type(exc).__name__}: {exc}",
                        file=sys.stderr,
                        flush=True,
                    )
                    traceback.print_exception(exc, file=sys.stderr)
                failing = True
