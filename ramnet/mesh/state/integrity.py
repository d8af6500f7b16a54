"""The coordinator's state checked before it is served, and its ledger watched while it is.

``check_state`` runs SQLite's ``quick_check`` (the file's structure: pages, indexes, constraints)
and ``foreign_key_check`` (no row refers to a missing one), compares the counts the triggers keep
with the tables (``counts.count_problems``), then the ledger's invariant:
conservation (``minted == balances + bonds + escrow + burned``, what ``ledger show`` reports as
``conserved``) and the replay of every movement against the stored accounts, escrows and totals
(``Ledger.verify``), which also finds an edit that happens to keep the totals. ``coordinator
start`` refuses a state that fails any of them (``CorruptStateError``: one line, exit 1): a
coordinator that served it would pay, refund and slash from wrong balances.

While the coordinator runs, ``LedgerWatch`` reports (once per distinct totals) a ledger that is no
longer conserved, for example a row edited on disk, instead of serving ``conserved: false``
silently.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ramnet.mesh.state.counts import count_problems
from ramnet.mesh.state.errors import StoreError
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.store import Store

__all__ = ["CorruptStateError", "LedgerWatch", "check_state", "check_state_file"]


class CorruptStateError(StoreError):
    """The coordinator's stored state fails its integrity checks: it is not served."""


def check_state(store: Store, ledger: Ledger) -> list[str]:
    """Every integrity problem of a store and its ledger, one line each (empty: none).

    Args:
        store: The state store.
        ledger: The ledger in it.

    Returns:
        The problems: SQLite's own findings first, then the ledger's.
    """
    problems: list[str] = []
    try:
        with store.snapshot() as conn:
            found = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
            if found != ["ok"]:
                problems.append(f"SQLite's quick_check: {found[0]}")
                return problems  # the rest would read a damaged file
            orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
            if orphans:
                table, row, parent = orphans[0][0], orphans[0][1], orphans[0][2]
                problems.append(
                    f"{len(orphans)} row(s) refer to missing rows (first: {table} row {row},"
                    f" of {parent})"
                )
            problems.extend(count_problems(conn))
        totals = ledger.show()["totals"]
        if not totals["conserved"]:
            problems.append(f"the ledger is not conserved: {_totals_line(totals)}")
        problems.extend(f"the ledger's history disagrees: {p}" for p in ledger.verify())
    except sqlite3.DatabaseError as exc:
        problems.append(f"SQLite cannot read it: {exc}")
    return problems


def check_state_file(path: str | Path) -> None:
    """Open the state store at ``path`` (if it exists), check it (``check_state``) and close it.

    Raises:
        CorruptStateError: A problem was found (the first named, with how many more).
    """
    path = Path(path)
    if not path.exists():
        return  # a new coordinator: nothing to check
    try:
        store = Store(path, synchronous="NORMAL")
    except StoreError as exc:
        raise CorruptStateError(f"refusing to serve the state in {path}: {exc}") from exc
    try:
        problems = check_state(store, Ledger(store))
    finally:
        store.close()
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CorruptStateError(f"refusing to serve the state in {path}: {problems[0]}{more}")


class LedgerWatch:
    """The ledger's view as ``Ledger.show`` gives it, with a warning when it is not conserved.

    Args:
        ledger: The ledger.
        warn: Called with one line when the totals stop being conserved (again only when they
            change: a poller does not repeat it).
    """

    def __init__(self, ledger: Ledger, warn: Callable[[str], None]) -> None:
        self._ledger = ledger
        self._warn = warn
        self._reported: tuple[int, ...] | None = None

    def show(self) -> dict[str, Any]:
        """``Ledger.show()``, after warning if its totals are not conserved."""
        view = self._ledger.show()
        totals = view.get("totals")
        # A view without its totals is not this check's to judge: the reply's own check (its
        # message) refuses it.
        if isinstance(totals, dict) and totals.get("conserved") is False:
            key = tuple(int(totals[k]) for k in ("minted", "burned", "escrow", "balances", "bonds"))
            if key != self._reported:
                self._reported = key
                self._warn(
                    "warning: the ledger is not conserved (a row changed outside the"
                    f" coordinator?): {_totals_line(totals)}"
                )
        return view


def _totals_line(totals: dict[str, Any]) -> str:
    held = totals["balances"] + totals["bonds"] + totals["escrow"] + totals["burned"]
    return (
        f"minted {totals['minted']} != balances {totals['balances']} + bonds {totals['bonds']}"
        f" + escrow {totals['escrow']} + burned {totals['burned']} = {held}"
    )
