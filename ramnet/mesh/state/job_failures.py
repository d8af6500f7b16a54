"""A job that cannot end because its stored state is damaged (a tile blob that fails its digest):
it ``failed``, with the reason, and its consumer gets the unspent escrow back.

One transaction does it all, so a crash leaves the job either as it was or failed and refunded.
"""

from __future__ import annotations

from ramnet.mesh.state.checks import check_job_id, clock
from ramnet.mesh.state.errors import NotFoundError
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import FINAL_JOB_STATES
from ramnet.mesh.state.store import Store

__all__ = ["fail_job"]


def fail_job(
    store: Store, ledger: Ledger, job_id: str, reason: str, *, now: float | None = None
) -> bool:
    """Fail a job that has not ended: it becomes ``failed`` with ``reason`` (so nobody claims its
    pending shards), its held shards are ``expired`` (a commit or reveal of one is refused), and
    what its escrow holds goes back to its consumer (ref ``refund:<job>:failed``).

    Args:
        store: The state store.
        ledger: The ledger in it.
        job_id: The job.
        reason: Recorded with the job (its status shows it).

    Returns:
        True if this call failed the job; False if it had already ended (settled, cancelled or
        failed), in which case nothing changed.

    Raises:
        NotFoundError: No such job.
    """
    check_job_id(job_id)
    t = clock(now)
    with store.transaction() as conn:
        row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job {job_id}")
        if row["state"] in FINAL_JOB_STATES:
            return False
        conn.execute(
            "UPDATE jobs SET state = 'failed', reason = ?, updated_at = ? WHERE job_id = ?",
            (reason, t, job_id),
        )
        # Held shards expire (a pending one holds no node, and a final job's are never claimed).
        conn.execute(
            "UPDATE shards SET state = 'expired', updated_at = ? WHERE job_id = ?"
            " AND state IN ('assigned', 'committed')",
            (t, job_id),
        )
        ledger.refund(job_id, ref=f"refund:{job_id}:failed", now=t)
    return True
