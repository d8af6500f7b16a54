"""Shard results and C: the partials at hand, their deferred write to the blob store
(``write_behind``), the last few assembled results, and C's download.

A revealed result waits in memory for ``write_behind`` seconds before it is written: a job that
settles sooner stores C and never writes its partials. The worker keeps a revealed result until
it is reported stored, so a coordinator killed in between awaits those reveals again
(``reopen_lost_reveals``).

C is stored twice: its blob, and a replica of it (``BlobStore.put_replica``) written before the
job's tiles and partials are dropped, so C never rests on one file alone. A second copy costs one
more write of C's bytes, off the settling path; keeping the partials instead would cost more (a
settled job's partials were mostly never written, ``write_behind``, and hold C's bytes three
times over with the audit copies). A download from disk serves whichever copy is intact and
rewrites the other. C goes only to its job's consumer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from ramnet._errors import RamnetError
from ramnet.mesh.coordinator.damage import log
from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.writeback import WriteBehind
from ramnet.mesh.protocol.wire import pack, pack_parts, unpack
from ramnet.mesh.rules.settle import chosen, copy_key
from ramnet.mesh.rules.shard import assemble
from ramnet.mesh.state.blobs import BlobError, BlobStore
from ramnet.mesh.state.errors import NotAllowedError, ShardStateError
from ramnet.mesh.state.records import FINAL_JOB_STATES, Shard
from ramnet.mesh.state.store import Store
from ramnet.orchid import BlockProduct
from ramnet.valkyrie._hash import digest

__all__ = ["CLostError", "OnLost", "Partials", "Results"]

#: One copy's partials by block.
Partials = dict[BlockProduct, np.ndarray]
#: What handles a revealed result whose blob cannot be read back: (shard, error) -> the error the
#: request answers with (``Damage.result_lost``).
OnLost = Callable[[Shard, BlobError], Exception]


class CLostError(RamnetError):
    """Both stored copies of a settled job's C are damaged: it cannot be served (410 Gone, so
    that a consumer does not retry)."""

    http_status = 410


class Results:
    """The shard results and C's of a coordinator: in memory, in the blob store, or on their way.

    Args:
        store: The state store.
        blobs: The blob store.
        inputs: The jobs' tiles and plans (C of an old job is assembled from its partials).
        write_behind: Seconds a revealed result waits before it is written (0: at once).
        max_body: The largest wire container read back from the blob store.
        on_lost: Called when a revealed result's blob is missing or fails its digest; what it
            returns is raised (None: the blob store's error is raised as it is).
    """

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        inputs: JobInputs,
        *,
        write_behind: float,
        max_body: int,
        on_lost: OnLost | None = None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._inputs = inputs
        self._max_body = max_body
        self._on_lost = on_lost
        self._lost_c: set[str] = set()  # jobs whose C was reported lost (once each)
        # Held from storing a blob to recording who refers to it, and while a settled job's
        # blobs are dropped: a blob another job has just stored is never dropped under it.
        self.blob_refs = threading.Lock()
        # Jobs whose checks passed and whose C is in memory, while C is stored and the workers
        # are paid ("checked"): the consumer downloads C meanwhile, it does not wait for the disk.
        self.checked: set[str] = set()
        # Hot copies of what is also on disk: a job's revealed partials until it settles, and the
        # last few assembled results. After a restart, everything is re-read.
        self._partials: dict[str, dict[int, Partials]] = {}
        self._results: dict[str, np.ndarray] = {}
        # Revealed results not yet in the blob store: digest -> (job id, wire container).
        self._unwritten: dict[str, tuple[str, Any]] = {}
        # Those of them known by a provisional name (a reveal signed over its commitment, whose
        # body was never hashed): name -> shard number, renamed to the digest once written.
        self.provisional: dict[str, int] = {}
        self._write_delay = write_behind
        self.writes = WriteBehind(report=_report_write_failure)

    def close(self) -> None:
        """Write what is still waiting to be written (the state store stays open)."""
        self.writes.close()
        for blob in list(self._unwritten):  # a write that failed earlier gets a last try
            try:
                self.write(blob)
            except Exception as exc:
                _report_write_failure(exc)

    def reopen_lost_reveals(self, lease_s: float) -> None:
        """After a restart: reopen the reveal of every revealed shard of an unsettled job whose
        result never reached the blob store, for ``lease_s`` seconds."""
        # Results revealed shortly before the process died may never have reached the blob
        # store (``write_behind``). Their shards go back to ``committed`` with the reveal open
        # for a lease: the worker keeps a revealed result until the coordinator reports it
        # stored (``shard_view``), and reveals it again. A worker that does not (it died too)
        # loses the shard at the deadline, and it is computed again, as for any late reveal.
        deadline = time.time() + lease_s
        # Only jobs that can still end: a cancelled or failed job's lost reveals are not awaited.
        unsettled = [
            job for job, _ in self._store.jobs_holding_inputs() if job.state not in FINAL_JOB_STATES
        ]
        for job in unsettled:
            for shard in self._store.list_shards(job_id=job.job_id, state="revealed"):
                if not self._blobs.has(str(shard.result_digest)):
                    self._store.reopen_reveal(shard.shard_id, deadline)

    # ---- partials ----------------------------------------------------------------------------

    def copy_key(self, shard: Shard) -> int:
        """``copy_key`` of a stored shard: its slot, or slot + the plan's nodes for a mirror."""
        return copy_key(self._store.get_job(shard.job_id).spec.plan_nodes, shard.slot, shard.role)

    def keep(self, shard: Shard, partials: Partials) -> None:
        """Keep a revealed shard's partials at hand until its job settles."""
        self._partials.setdefault(shard.job_id, {})[self.copy_key(shard)] = partials

    def forget_copies(self, job_id: str, keys: Collection[int]) -> None:
        """Drop the partials of these copies of a job from memory (they were rejected)."""
        cache = self._partials.get(job_id, {})
        for key in keys:
            cache.pop(key, None)

    def forget(self, job_id: str) -> None:
        """Drop a settled job's partials from memory."""
        self._partials.pop(job_id, None)

    def revealed(self, job_id: str) -> tuple[dict[int, Partials], dict[int, str]]:
        """Each revealed copy's partials (from memory, or re-read from the blob store) and the
        node that revealed it, both keyed by ``copy_key``.

        Raises:
            Exception: What ``on_lost`` returns for a result blob that is missing or corrupt
                (``ResultLostError``: its slot is computed again); without it, the ``BlobError``.
        """
        cached = self._partials.get(job_id, {})
        reveals: dict[int, Partials] = {}
        nodes_of: dict[int, str] = {}
        for shard in self._store.list_shards(job_id=job_id, state="revealed"):
            key = self.copy_key(shard)
            if key in cached:
                reveals[key] = cached[key]
            else:
                waiting = self._unwritten.get(str(shard.result_digest))
                body = waiting[1] if waiting else self._read_result(shard)
                _, arrays = unpack(body, max_bytes=self._max_body)
                reveals[key] = {
                    BlockProduct(*map(int, name.split("/")[1:])): x for name, x in arrays.items()
                }
            nodes_of[key] = str(shard.node_id)
        return reveals, nodes_of

    def _read_result(self, shard: Shard) -> bytes:
        try:
            return self._blobs.get(str(shard.result_digest))
        except BlobError as exc:
            if self._on_lost is None:
                raise
            raise self._on_lost(shard, exc) from exc

    def commits(self, job_id: str) -> dict[int, str]:
        """Each revealed copy's commitment, by copy key (as ``revealed``)."""
        return {
            self.copy_key(s): str(s.commit_hash)
            for s in self._store.list_shards(job_id=job_id, state="revealed")
        }

    # ---- storing a result, now or later --------------------------------------------------------

    def put(
        self,
        job_id: str,
        partials: Mapping[BlockProduct, np.ndarray],
        body: bytes | None,
        body_hash: str | None = None,
        *,
        shard: Shard | None = None,
    ) -> str:
        """Store a shard's result; returns its blob name. The caller holds ``blob_refs``.

        Args:
            job_id: Its job.
            partials: The result.
            body: The wire container it came in (None: packed anew).
            body_hash: The body's hash, if checking its signature computed it.
            shard: The revealed shard (its result is written behind); None writes it at once.
        """
        # The result's wire container as a blob (packed anew when it did not come as one); a
        # body's hash from checking its signature is its blob name, so it is not hashed again.
        # A revealed ``shard``'s result is written after ``write_behind`` seconds unless the job
        # no longer needs it by then (the revealing worker keeps it until then); one that was
        # not hashed (a reveal signed over its commitment) goes by a provisional name until it
        # is written, and is hashed only then: a job that settles first never hashes it.
        # Without ``shard`` it is written at once.
        if body is None:
            body = pack({}, {f"p/{b.i}/{b.j}/{b.k}": x for b, x in partials.items()})
        if (
            shard is None
            or self._write_delay <= 0
            or self._store.get_job(job_id).state in ("disputed", "optimistic")
        ):  # a job off the quick path: its results go to disk at once
            return self._blobs.put(body, digest=body_hash)
        blob = body_hash
        if blob is None:
            blob = _provisional_name(shard)
            self.provisional[blob] = shard.shard_id
        self._unwritten[blob] = (job_id, body)
        self.writes.schedule(self._write_delay, job_id, lambda: self.write(blob))
        return blob

    def write(self, blob: str) -> None:
        """Write a result that waits in memory to the blob store (none: its job took it)."""
        with self.blob_refs:
            waiting = self._unwritten.get(blob)
            if waiting is None:  # its job settled and no longer needs it
                return
            shard = self.provisional.get(blob)
            if shard is None:
                self._blobs.put(waiting[1], digest=blob)
            else:
                self._store.rename_result(shard, blob, self._blobs.put(waiting[1]))
                del self.provisional[blob]
            del self._unwritten[blob]

    def stored(self, shard: Shard) -> bool:
        """Whether a revealed result is on disk, or its job settled and no longer needs it: the
        worker that revealed it may then forget it."""
        if shard.state not in ("revealed", "accepted"):
            return False
        if str(shard.result_digest) not in self._unwritten:
            return True
        return self._store.get_job(shard.job_id).state == "settled"

    def drop_inputs(self, job_id: str, c_blob: str) -> None:
        """Drop a settled job's tiles and partials from the blob store (and those still waiting
        to be written): nothing reads them again, as C is stored.

        This keeps the blob folder from growing by every job's inputs. On the reference VM it is
        also what makes writes cheap: a file written into recycled page cache cost 16 ms per
        68 MiB against 160 ms into fresh pages (a throwaway timing; see docs/mesh.md).
        """
        job = self._store.get_job(job_id)
        mine = {*job.spec.tiles_a.values(), *job.spec.tiles_b.values()}
        mine |= {
            str(s.result_digest)
            for s in self._store.list_shards(job_id=job_id)
            if s.result_digest is not None
        }
        with self.blob_refs:
            for other, digests in self._store.jobs_holding_inputs(besides=job_id):
                mine -= {*other.spec.tiles_a.values()}
                mine -= {*other.spec.tiles_b.values()}
                mine -= set(digests)
            mine.discard(c_blob)
            for blob in mine:
                waiting = self._unwritten.get(blob)
                if waiting is not None and waiting[0] == job_id:
                    del self._unwritten[blob]
                    self.provisional.pop(blob, None)
                self._blobs.delete(blob)

    def secure(self, job_id: str, c_blob: str, c: np.ndarray) -> None:
        """Store the replica of a settled job's C, then drop its tiles and partials: C is never
        left on one file alone while nothing else could rebuild it.

        Raises:
            BlobError: The replica cannot be written (the inputs are kept).
        """
        # The same bytes as C's blob (packing is deterministic), so they are not hashed again.
        self._blobs.put_replica(pack_parts({}, {"C": c}), c_blob, trusted=True)
        self.drop_inputs(job_id, c_blob)

    # ---- C --------------------------------------------------------------------------------------

    def remember(self, job_id: str, c: np.ndarray) -> None:
        """Keep a job's C in memory, with the last few others."""
        self._results[job_id] = c
        while len(self._results) > 4:
            self._results.pop(next(iter(self._results)))

    def download(
        self, job_id: str, reader: str | None = None
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """C of a settled job, or of a checked one (its C is being stored).

        Args:
            job_id: The job.
            reader: The node asking: only the job's consumer may read C (None: a caller in this
                process, unchecked).

        Raises:
            NotAllowedError: ``reader`` is not the job's consumer.
            ShardStateError: The job has not settled or been checked.
            CLostError: Both stored copies of C are damaged.
        """
        if reader is not None and self._store.get_job(job_id).consumer != reader:
            raise NotAllowedError(f"job {job_id}'s result goes to its consumer only")
        c = self._results.get(job_id)
        if c is not None and job_id in self.checked:
            return {"job_id": job_id}, {"C": c}
        job = self._store.get_job(job_id)
        if job.state != "settled":
            raise ShardStateError(f"job {job_id} is {job.state}, not settled")
        if job_id not in self._results and job.result_blob is not None:
            _, arrays = unpack(self._read_c(job_id, job.result_blob), max_bytes=self._max_body)
            self.remember(job_id, arrays["C"])
        elif job_id not in self._results:  # settled before C was stored (or just before a crash)
            plan, grid = self._inputs.plan(job_id, job.spec)
            reveals, _ = self.revealed(job_id)
            picked = chosen(plan, reveals)
            primaries = {b: picked[plan.owner(b)][b] for b in grid.blocks()}
            self.remember(job_id, assemble(grid, primaries, np.dtype(job.spec.out_dtype)))
        return {"job_id": job_id}, {"C": self._results[job_id]}

    def _read_c(self, job_id: str, blob: str) -> bytes:
        # C's bytes from whichever copy is intact (the other rewritten from it). When the primary
        # was intact the replica was not read: it is checked off the request path.
        try:
            data, repaired = self._blobs.get_redundant(blob)
        except BlobError as exc:
            if job_id not in self._lost_c:
                self._lost_c.add(job_id)
                log(f"job {job_id}'s C is lost: {exc}")
            raise CLostError(f"job {job_id}'s C is lost: both stored copies are damaged") from exc
        if repaired is not None:
            log(f"job {job_id}'s C: {repaired}")
        else:
            self.writes.schedule(
                0.0, f"replica:{job_id}", lambda: self._check_replica(job_id, blob)
            )
        return data

    def _check_replica(self, job_id: str, blob: str) -> None:
        repaired = self._blobs.check_replica(blob)
        if repaired is not None:
            log(f"job {job_id}'s C: {repaired}")


def _provisional_name(shard: Shard) -> str:
    # Unique to the shard and its commitment, and no blob's digest (a different hash input).
    tag = b"RNPENDING1\x00" + str(shard.shard_id).encode() + b"\x00"
    return digest(tag, str(shard.commit_hash).encode()).hex()


def _report_write_failure(exc: BaseException) -> None:
    # The result stays in memory (close tries it again); say so rather than lose it quietly.
    log(f"a deferred blob write failed: {exc}")
