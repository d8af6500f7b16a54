"""The worker loop: register, claim shards, compute them with ORCHID, commit, reveal.

A library object: it prints nothing; ``log`` receives one line per event. While it computes a
shard or a dispute's blocks it sends heartbeats (``nodes.heartbeat``), so that the coordinator
does not take it for gone.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np

from ramnet.mesh.nodes.heartbeat import Heartbeat
from ramnet.mesh.nodes.validator import validate_one
from ramnet.mesh.protocol.auth import bound_by
from ramnet.mesh.protocol.routes import url
from ramnet.mesh.rules.shard import compute_shard, result_digest, tile_map
from ramnet.orchid import BlockProduct

Log = Callable[[str], None]
# What computes a shard: (blocks, A tiles by (i, k), B tiles by (k, j)) -> {block: partial}.
# The unified worker runs ORCHID in-process; the sidecar proxy hands the work to its daemon.
Compute = Callable[
    [list[BlockProduct], dict[tuple[int, int], np.ndarray], dict[tuple[int, int], np.ndarray]],
    dict[BlockProduct, np.ndarray],
]
LONG_POLL = 1.0  # seconds the coordinator may hold a poll: prompt, yet SIGTERM is served fast
MAX_UNSTORED = 4  # revealed results kept until the coordinator has stored them
VALIDATOR_POLL = 0.1


MISBEHAVIOURS = ("random", "off-by-one", "zeros", "replay", "crash", "stall", "lie")


def _misbehave(
    strategy: str, partials: dict[BlockProduct, np.ndarray], previous: list[np.ndarray]
) -> dict[BlockProduct, np.ndarray]:
    # Testing aid: turn honest partials into the chosen kind of wrong ones.
    rng = np.random.default_rng()
    out = {}
    for t, (block, x) in enumerate(sorted(partials.items(), key=lambda kv: (kv[0].i, kv[0].j))):
        if strategy == "random":
            info = np.iinfo(x.dtype) if x.dtype.kind == "i" else None
            y = (
                rng.integers(info.min // 2, info.max // 2, x.shape, dtype=x.dtype)
                if info is not None
                else rng.standard_normal(x.shape).astype(x.dtype)
            )
        elif strategy == "zeros":
            y = np.zeros_like(x)
        elif strategy == "off-by-one":
            y = x.copy()
            if t == 0 and y.size:
                y.flat[rng.integers(y.size)] += 1
        else:  # replay: an earlier result of the same shape, for another block or job
            same = [p for p in previous if p.shape == x.shape and p.dtype == x.dtype]
            y = same[t % len(same)].copy() if same else np.zeros_like(x)
        out[block] = y
    return out


class Worker:
    """One provider node.

    Args:
        client: A ``MeshClient`` signed with the node's key.
        bond: The bond to stake on registration.
        validator: Join the validator pool.
        payout_address: Where payments go (bound to the node id by the coordinator).
        binding: The node's wallet binding document (``ramnet keys bind``), presented at
            registration: the coordinator checks it and records its address as the bound payout
            address, or refuses the registration.
        backend: ORCHID backend for the GEMMs.
        threads: Block products computed at once.
        poll: Seconds between polls when there is no work.
        log: Receives one line per event.
        compute: What computes a shard's partials (None: ORCHID in this process, with
            ``backend`` and ``threads``); the sidecar proxy passes its daemon's.
        prove: False: a node that only computes (the asymmetric topology): results are posted
            without commit-reveal, and their jobs wait in ``optimistic`` for an auditor.
        misbehave: A testing aid (``ramnet worker start --misbehave``): ``random``, ``off-by-one``
            (one entry of one block +1), ``zeros`` (skips the work), ``replay`` (results computed
            earlier for other blocks), ``crash`` (exits mid-shard), ``stall`` (never answers);
            for validators, ``lie`` (accuses an honest node and clears the cheater).
    """

    def __init__(
        self,
        client: Any,
        *,
        bond: int = 0,
        validator: bool = False,
        payout_address: str | None = None,
        backend: str = "auto",
        threads: int = 1,
        poll: float = 0.2,
        log: Log | None = None,
        misbehave: str | None = None,
        compute: Compute | None = None,
        prove: bool = True,
        binding: dict[str, Any] | None = None,
    ) -> None:
        if misbehave is not None and misbehave not in MISBEHAVIOURS:
            from ramnet._errors import InvalidInputError

            raise InvalidInputError(
                f"--misbehave must be one of {', '.join(MISBEHAVIOURS)}, got {misbehave!r}"
            )
        self.misbehave = misbehave
        self._previous: list[np.ndarray] = []
        self.client = client
        self.bond = bond
        self.validator = validator
        self.payout_address = payout_address
        self.binding = binding
        self.backend = backend
        self.threads = threads
        self.poll = poll
        self.log: Log = log or (lambda line: None)
        self.done = 0
        self.prove = prove
        #: This process's name at the coordinator (one key, one process).
        self.instance = secrets.token_hex(8)
        self._committed: dict[str, dict[str, np.ndarray]] = {}  # shard id -> partials to reveal
        # Shard id -> its commitment, which a reveal is signed over (the partials are not hashed
        # again for the signature); kept while the shard is committed or unstored.
        self._commitments: dict[str, str] = {}
        # Revealed results the coordinator has not stored yet (it writes them a moment later, or
        # never if the job settles first): kept so that they can be revealed again should the
        # coordinator restart in between.
        self._unstored: dict[str, dict[str, np.ndarray]] = {}
        self._revealed: set[str] = set()
        self._just_seen: set[str] = set()
        self.compute: Compute = compute or self._compute_here
        self.heartbeat = Heartbeat(client, self.log)

    def _compute_here(
        self,
        blocks: list[BlockProduct],
        tiles_a: dict[tuple[int, int], np.ndarray],
        tiles_b: dict[tuple[int, int], np.ndarray],
    ) -> dict[BlockProduct, np.ndarray]:
        return compute_shard(blocks, tiles_a, tiles_b, backend=self.backend, threads=self.threads)

    def register(self) -> dict[str, Any]:
        """Register with the coordinator (idempotent) and stake the bond."""
        request: dict[str, Any] = {
            "bond": self.bond,
            "validator": self.validator,
            "payout_address": self.payout_address,
            "prove": self.prove,
            # One key, one process: the coordinator refuses this key while another live
            # process uses it.
            "instance": self.instance,
        }
        if self.binding is not None:  # only when there is one: older coordinators know no field
            request["binding"] = self.binding
        reply: dict[str, Any] = self.client.post_json(
            url("register"),
            request,
            # Idempotent (the bond is topped up to its target), so it is retried like a GET
            # when the connection breaks mid-request, as when the coordinator is restarting.
            idempotent=True,
        )
        self.log(f"registered: balance {reply.get('balance')}, bond {reply.get('bond')}")
        return reply

    def validate(self) -> bool:
        """Settle one dispute this validator was drawn for (``nodes.validator``). Returns False
        when there was none."""
        with self.heartbeat.beating():
            return validate_one(
                self.client, backend=self.backend, log=self.log, lie=self.misbehave == "lie"
            )

    def step(self, stop: threading.Event) -> bool:
        """Settle a dispute (validators), or claim and finish one shard. Returns False when
        there was nothing to do."""
        if self.validator and self.validate():
            return True
        for done in [s for s in self._commitments if s not in self._committed | self._unstored]:
            del self._commitments[done]
        # Shards whose state the last step's own requests just told: not asked again at once.
        seen, self._just_seen = self._just_seen, set()
        if self._unstored:
            self._check_unstored(skip=seen)
        if self._committed and self._poll_committed(0, skip=seen):
            return True
        # A validator looks for disputes between polls for work: it polls briefly, so a dispute
        # it is drawn for waits at most that long.
        poll = VALIDATOR_POLL if self.validator else LONG_POLL
        wait = 0.0 if self._committed else poll
        meta, arrays = self.client.get_wire(url("claim", {"wait": wait}))
        shard_id = meta.get("shard_id")
        if not shard_id:
            # Nothing new: wait for a committed shard's reveal to open instead.
            return bool(self._committed) and self._poll_committed(poll)
        blocks = [BlockProduct(*map(int, b)) for b in meta["blocks"]]
        self.log(f"shard {shard_id}: {len(blocks)} block products of job {meta['job_id']}")
        if self.misbehave == "crash":
            self.log(f"shard {shard_id}: crashing (--misbehave crash)")
            os._exit(3)
        if self.misbehave == "stall":
            self.log(f"shard {shard_id}: stalling (--misbehave stall)")
            stop.wait()
            return True
        with self.heartbeat.beating(shard_id):
            partials = self.compute(blocks, tile_map(arrays, "a"), tile_map(arrays, "b"))
        if self.misbehave is not None:
            honest = list(partials.values())
            partials = _misbehave(self.misbehave, partials, self._previous)
            self._previous = honest
        if not self.prove:  # only computes: no commitment; an auditor checks the job later
            self.client.post_wire(
                url("shard_result", shard_id=shard_id),
                {"shard_id": shard_id},
                {f"p/{b.i}/{b.j}/{b.k}": partials[b] for b in blocks},
                idempotent=True,
            )
            self.done += 1
            self.log(f"shard {shard_id}: submitted (unproven)")
            return True
        digest = result_digest(partials).hex()
        # Committing the same digest twice is a no-op, so a commit cut off by a coordinator
        # restart is simply sent again.
        reply = self.client.post_json(
            url("shard_commit", shard_id=shard_id), {"digest": digest}, idempotent=True
        )
        # Commit-reveal: the partials leave only once every copy of the job's audit blocks has
        # been committed, so no worker can copy another's result. Meanwhile this node may take
        # more shards (with mirrors or more slots than workers, the phase closes only then).
        self._committed[shard_id] = {f"p/{b.i}/{b.j}/{b.k}": partials[b] for b in blocks}
        self._commitments[shard_id] = digest
        self._settle_view(shard_id, reply)
        self._just_seen.add(shard_id)
        return True

    def _settle_view(self, shard_id: str, reply: dict[str, Any]) -> bool:
        # Act on a committed shard's view: reveal it once the reveal is open, drop it once it is
        # expired or rejected. Returns whether it left the committed list.
        if reply.get("state") in ("expired", "rejected"):
            self.log(f"shard {shard_id}: {reply['state']}")
            self._committed.pop(shard_id, None)
            return True
        if not reply.get("reveal"):
            return False
        # Kept until the coordinator has stored it, including while this reveal is on the wire:
        # a reveal cut off by a coordinator restart is sent again from here.
        payload = self._committed.pop(shard_id)
        self._keep_unstored(shard_id, payload)
        self._reveal_kept(shard_id)
        self.log(f"shard {shard_id}: revealed")
        return True

    def _keep_unstored(self, shard_id: str, payload: dict[str, np.ndarray]) -> None:
        self._unstored[shard_id] = payload
        while len(self._unstored) > MAX_UNSTORED:  # a bound on memory, oldest first
            self._unstored.pop(next(iter(self._unstored)))

    def _reveal_kept(self, shard_id: str) -> None:
        if self._reveal(shard_id, self._unstored[shard_id]).get("stored"):
            self._unstored.pop(shard_id, None)
        self._just_seen.add(shard_id)
        if shard_id not in self._revealed:  # counted once, however many times it was sent
            self._revealed.add(shard_id)
            self.done += 1

    def _check_unstored(self, skip: AbstractSet[str] = frozenset()) -> None:
        # Forget revealed results the coordinator has stored (or no longer wants); reveal again
        # those it did not get or lost in a restart (their shards await the reveal again).
        for shard_id in [s for s in self._unstored if s not in skip]:
            reply = self.client.get_json(url("shard_view", shard_id=shard_id))
            state = reply.get("state")
            if state == "committed" and reply.get("reveal"):
                self._reveal_kept(shard_id)
                self.log(f"shard {shard_id}: revealed again (the coordinator had lost it)")
            elif reply.get("stored") or state not in ("revealed", "committed"):
                self._unstored.pop(shard_id)

    def _poll_committed(self, wait: float, skip: AbstractSet[str] = frozenset()) -> bool:
        # Look at every committed shard once (the first with a long poll of ``wait``).
        moved = False
        for n, shard_id in enumerate([s for s in self._committed if s not in skip]):
            reply = self.client.get_json(
                url("shard_view", {"wait": wait if n == 0 else 0}, shard_id=shard_id)
            )
            moved = self._settle_view(shard_id, reply) or moved
        return moved

    def hand_back(self) -> None:
        """Stopping: reveal what may be revealed, hand the other committed shards back (they
        go to another node)."""
        for shard_id in list(self._committed):
            reply = self.client.get_json(url("shard_view", shard_id=shard_id))
            if not self._settle_view(shard_id, reply):
                self.client.post_json(url("shard_release", shard_id=shard_id), {})
                self._committed.pop(shard_id, None)
                self.log(f"shard {shard_id}: handed back")

    def _reveal(self, shard_id: str, payload: dict[str, np.ndarray]) -> dict[str, Any]:
        # A reveal cut off by a coordinator restart is sent again; if the first one had landed,
        # the second is refused as not awaited, which means it is done. Returns the
        # coordinator's answer (``stored``: whether the result is already on its disk).
        from ramnet.mesh.nodes.client import MeshRequestError

        try:
            commitment = self._commitments.get(shard_id)
            reply: dict[str, Any] = self.client.post_wire(
                url("shard_reveal", shard_id=shard_id),
                {"shard_id": shard_id},
                payload,
                idempotent=True,
                signed_body=None if commitment is None else bound_by(commitment),
            )
            return reply
        except MeshRequestError as exc:
            if getattr(exc, "status", None) != 409:
                raise
            view: dict[str, Any] = self.client.get_json(url("shard_view", shard_id=shard_id))
            if view.get("state") != "revealed":
                raise
            return view

    def run(self, stop: threading.Event, *, max_shards: int | None = None) -> int:
        """Work until ``stop`` is set (or ``max_shards`` are done). Returns shards revealed.

        Raises:
            MeshRequestError: Registration refused, or the node was banned (a proven fraud
                slashed its bond; registering with a bond again lifts the ban).
        """
        from ramnet.mesh.nodes.client import MeshRequestError

        self.register()
        while not stop.is_set():
            if max_shards is not None and self.done >= max_shards:
                break
            try:
                worked = self.step(stop)
            except MeshRequestError as exc:
                if exc.status != 403:
                    self.log(f"error: {exc}")
                    worked = False
                    time.sleep(min(2.0, self.poll * 5))
                elif "not registered" in str(exc):
                    # The coordinator lost this node (a fresh data folder): register again.
                    self.log(f"registering again: {exc}")
                    self.register()
                    worked = False
                else:  # banned, a proven cheater: no request will be served until it stakes again
                    self.log(f"stopping: {exc}")
                    raise
            except Exception as exc:  # the coordinator may be restarting: back off, go on
                self.log(f"error: {exc}")
                worked = False
                time.sleep(min(2.0, self.poll * 5))
            if not worked and stop.wait(0.01):
                break
        try:
            self.hand_back()
        except Exception as exc:  # the coordinator is gone: its leases will expire the shards
            self.log(f"error: {exc}")
        return self.done
