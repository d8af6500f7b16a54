"""What the dashboard's templates are given: the store's read-only rows (``dashboard_queries``),
the ledger's conserved totals, the entries of each dispute's fraud proofs (read from the
verdict's blob) and the plots' data, as plain values. Reads, never writes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ramnet._errors import RamnetError
from ramnet.mesh.coordinator.dashboard.plots import plot_data
from ramnet.mesh.state.blobs import BlobStore
from ramnet.mesh.state.dashboard_queries import (
    JobDetail,
    Overview,
    fingerprint,
    read_job,
    read_overview,
)
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import Dispute
from ramnet.mesh.state.store import Store

__all__ = ["FraudEntry", "Reader", "VerdictView"]

#: The newest jobs listed on the main page.
JOBS_SHOWN = 50
#: The newest ledger movements listed on the main page.
MOVEMENTS_SHOWN = 50
#: Verdicts kept decoded (a verdict's blob never changes: it is named by its hash).
_VERDICTS_KEPT = 256
#: The largest verdict blob read (a verdict is a few fraud proofs' entries, never arrays).
_VERDICT_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class FraudEntry:
    """One entry of a fraud proof: the partial's author and copy, the block, and the wrong
    entry (row, col, the value claimed and the correct one) or the wrong shape."""

    node: str
    copy: int | None
    block: tuple[int, ...]
    row: int | None
    col: int | None
    claimed: float | None
    correct: float | None
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class VerdictView:
    """A resolved dispute's verdict: who judged it and the fraud proofs' entries.

    Attributes:
        judged_by: ``"validator"`` or ``"coordinator"`` (none took the dispute in time).
        frauds: The entries; problem: why they could not be read (None when they were).
    """

    judged_by: str
    frauds: list[FraudEntry]
    problem: str | None = None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _ints(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not all(_int_or_none(v) is not None for v in value):
        return None
    return tuple(value)


def _entry(found: Any) -> FraudEntry | None:
    if not isinstance(found, dict):
        return None
    return FraudEntry(
        node=str(found.get("node", "")),
        copy=_int_or_none(found.get("copy")),
        block=_ints(found.get("block")) or (),
        row=_int_or_none(found.get("row")),
        col=_int_or_none(found.get("col")),
        claimed=_num_or_none(found.get("claimed")),
        correct=_num_or_none(found.get("correct")),
        shape=_ints(found.get("shape")),
    )


class Reader:
    """Reads what the dashboard shows from the coordinator's state.

    Args:
        store, ledger, blobs: The coordinator's state (only read).
    """

    def __init__(self, store: Store, ledger: Ledger, blobs: BlobStore) -> None:
        self._store = store
        self._ledger = ledger
        self._blobs = blobs
        self._verdicts: dict[str, VerdictView] = {}
        self._lock = threading.Lock()

    def fingerprint(self) -> str:
        """``dashboard_queries.fingerprint`` of the state now."""
        return fingerprint(self._store)

    def data_version(self) -> int:
        """``Store.data_version`` on the calling thread's connection (changes when another
        connection wrote): the poller, which only reads, skips the fingerprint while it holds."""
        return self._store.data_version()

    def overview(
        self, now: float | None = None, *, since: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The main page's context: ``overview`` (``dashboard_queries.Overview``), ``ledger``
        (``{"totals": Ledger.totals()}``: the conserved totals), ``banned_nodes`` (how many of
        its nodes are banned), ``verdicts`` (dispute id -> ``VerdictView``), ``plots``
        (``plot_data``), ``fingerprint`` and ``now``.

        Args:
            now: The time the plots end at (default: now).
            since: A context this returned earlier, for the event streams: what did not change
                since is taken from it (``read_overview(since=...)``), the ledger and the plots
                included; the plots then end where they ended (their section is drawn again only
                when their events change).

        Returns:
            The context.
        """
        now = time.time() if now is None else now
        kept: Mapping[str, Any] = since or {}
        before: Overview | None = kept.get("overview")
        overview: Overview = read_overview(
            self._store, jobs_limit=JOBS_SHOWN, movements_limit=MOVEMENTS_SHOWN, since=before
        )

        def same(part: str) -> bool:  # read_overview kept that part of ``before`` as it was
            return before is not None and getattr(overview, part) is getattr(before, part)

        ledger = kept["ledger"] if same("movements") else {"totals": self._ledger.totals()}
        plots = kept["plots"] if same("timeline") else plot_data(overview.timeline, now)
        verdicts = kept["verdicts"] if same("disputes") else self._verdicts_of(overview.disputes)
        return {
            "overview": overview,
            "ledger": ledger,
            # Counted here, not by the summary's template: Jinja's filters take ~25 µs for it.
            "banned_nodes": sum(node.banned for node in overview.nodes),
            "verdicts": verdicts,
            "plots": plots,
            "fingerprint": overview.fingerprint,
            "now": now,
        }

    def job(self, job_id: str, now: float | None = None) -> dict[str, Any]:
        """One job's page context: ``detail`` (``dashboard_queries.JobDetail``), ``verdicts``
        and ``now``.

        Raises:
            StoreInputError: Not a job id (400).
            NotFoundError: No such job (404).
        """
        detail: JobDetail = read_job(self._store, job_id)
        return {
            "detail": detail,
            "verdicts": self._verdicts_of(detail.disputes),
            "fingerprint": detail.fingerprint,
            "now": time.time() if now is None else now,
        }

    def _verdicts_of(self, disputes: list[Dispute]) -> dict[int, VerdictView]:
        return {
            d.dispute_id: self._verdict(d.verdict_digest)
            for d in disputes
            if d.verdict_digest is not None
        }

    def _verdict(self, digest: str) -> VerdictView:
        with self._lock:
            known = self._verdicts.get(digest)
        if known is not None:
            return known
        view = self._read_verdict(digest)
        with self._lock:
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[digest] = view
        return view

    def _read_verdict(self, digest: str) -> VerdictView:
        # The verdict's record, as the coordinator stored it (coordinator.disputes): the
        # validator (None when the coordinator judged) and the fraud proofs' entries.
        try:
            if self._blobs.size(digest) > _VERDICT_MAX_BYTES:
                return VerdictView("?", [], "the verdict is larger than a verdict can be")
            record = json.loads(self._blobs.get(digest))
        except (RamnetError, OSError, ValueError) as exc:
            return VerdictView("?", [], f"the verdict cannot be read: {exc}")
        if not isinstance(record, dict):
            return VerdictView("?", [], "the verdict is not a JSON object")
        judged_by = "validator" if record.get("validator") else "coordinator"
        frauds = record.get("frauds")
        entries = [e for e in map(_entry, frauds if isinstance(frauds, list) else []) if e]
        return VerdictView(judged_by, entries)
