"""Long polls: a request held until the state it waits for is there, or its time is up.

Every state change of the coordinator calls ``Polls.notify``; a waiting request re-checks at once
then, and every ``RECHECK`` seconds for changes that come with time alone (a lease running out).
No request is held longer than ``MAX_WAIT`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["MAX_WAIT", "RECHECK", "Polls"]

T = TypeVar("T")

MAX_WAIT = 5.0  # longest a long poll is held, seconds
# A long poll re-checks this often even when nothing was notified (leases expire with time). Each
# check is a few SQLite queries: at 0.25 s an idle coordinator with 3 polling workers spent
# about 14 ms of CPU per second on them.
RECHECK = 1.0


class Polls:
    """The condition long polls wait on, and the count of notifications that tells a poll
    whether it missed one while it was checking."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self._changes = 0  # counts notifications, under ``changed``

    def notify(self) -> None:
        """Wake every waiting poll: the state changed."""
        with self.changed:
            self._changes += 1
            self.changed.notify_all()

    def wait_for(self, ready: Callable[[], T], wait: float) -> T:
        """Call ``ready()`` until it returns something truthy or ``wait`` seconds pass: again
        after every state change, and every ``RECHECK`` seconds for changes that come with time
        alone (a lease running out).

        Args:
            ready: What the poll waits for; its last value is returned.
            wait: Seconds to wait at most (capped at ``MAX_WAIT``; 0 checks once).

        Returns:
            The first truthy value of ``ready()``, or its last value when time ran out.
        """
        deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
        while True:
            # ready() runs outside the condition's lock: it may change state and notify (settle),
            # and holding the lock then would deadlock against a thread that settles and
            # notifies. A notification in between is not missed: the count shows it.
            with self.changed:
                seen = self._changes
            value = ready()
            left = deadline - time.monotonic()
            if value or left <= 0:
                return value
            with self.changed:
                if self._changes == seen:
                    self.changed.wait(min(left, RECHECK))
