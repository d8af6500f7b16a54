"""The typed records kept as JSON in the state store (a job's spec, a shard's blocks, a
dispute's claims and outcome): the exact text stored, what a spec stored by an older version
reads as, and a corrupt record as a ``StoreError``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest

from ramnet._errors import InvalidInputError
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.messages import JobSubmission, RegisterRequest
from ramnet.mesh.state.errors import StoreError
from ramnet.mesh.state.records import DisputeClaims, DisputeOutcome, JobSpec, NewShard
from ramnet.mesh.state.rows import json_text
from ramnet.mesh.state.store import Store
from ramnet.valkyrie import NodeKey

CONSUMER = "c" * 64

SPEC = JobSpec(
    m=4,
    k=6,
    n=5,
    dtype="int8",
    out_dtype="int32",
    nodes=6,
    plan_nodes=3,
    redundancy="mirror",
    edges=((0, 2, 4), (0, 5), (0, 6)),
    tiles_a={"0/0": "ta0", "1/0": "ta1"},
    tiles_b={"0/0": "tb0"},
    commit_a="ca",
    commit_b="cb",
    audit_salt="5a5a",
    audit_per_triad=1,
    price=22,
    request_id="req-é",
)
#: The exact text stored for SPEC: what every version wrote for it (``json.dumps`` with sorted
#: keys, no spaces, non-ASCII escaped). Stores move between versions both ways only while this
#: holds.
SPEC_TEXT = (
    '{"audit_per_triad":1,"audit_salt":"5a5a","commit_a":"ca","commit_b":"cb","dtype":"int8",'
    '"edges":[[0,2,4],[0,5],[0,6]],"k":6,"m":4,"n":5,"nodes":6,"out_dtype":"int32",'
    '"plan_nodes":3,"price":22,"redundancy":"mirror","request_id":"req-\\u00e9",'
    '"tiles_a":{"0/0":"ta0","1/0":"ta1"},"tiles_b":{"0/0":"tb0"}}'
)
#: SPEC as the previous version built it (a dict) and read it back (``json.loads``).
SPEC_DICT = {
    "m": 4,
    "k": 6,
    "n": 5,
    "dtype": "int8",
    "out_dtype": "int32",
    "nodes": 6,
    "plan_nodes": 3,
    "redundancy": "mirror",
    "edges": [[0, 2, 4], [0, 5], [0, 6]],
    "tiles_a": {"0/0": "ta0", "1/0": "ta1"},
    "tiles_b": {"0/0": "tb0"},
    "commit_a": "ca",
    "commit_b": "cb",
    "audit_salt": "5a5a",
    "audit_per_triad": 1,
    "price": 22,
    "request_id": "req-é",
}
#: A spec as the first mesh version stored it: no mirrors, commitments or audit count yet.
FIRST_SPEC_TEXT = (
    '{"audit_salt":"5a5a","dtype":"int8","edges":[[0,2,4],[0,5],[0,6]],"k":6,"m":4,"n":5,'
    '"nodes":3,"out_dtype":"int32","price":22,"request_id":"r",'
    '"tiles_a":{"0/0":"ta0","1/0":"ta1"},"tiles_b":{"0/0":"tb0"}}'
)

CLAIMS = DisputeClaims(
    round=1,
    failed=[("n1", (0, 1, 2))],
    blocks=[(0, 1, 2), (1, 0, 0)],
    slots={"0": "n0", "1": "n1"},
)
CLAIMS_TEXT = (
    '{"blocks":[[0,1,2],[1,0,0]],"failed":[["n1",[0,1,2]]],"round":1,"slots":{"0":"n0","1":"n1"}}'
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db", synchronous="NORMAL")
    s.register_node(CONSUMER, now=1.0)
    yield s
    s.close()


def _raw_job(store: Store, job_id: str, spec_text: str) -> None:
    # A row as another version (or a damaged file) left it: written around the Store's checks.
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, consumer, spec, state, created_at, updated_at)"
            " VALUES (?, ?, ?, 'sharded', 1.0, 1.0)",
            (job_id, CONSUMER, spec_text),
        )


def _stored(store: Store, sql: str, *args: object) -> str:
    with store.snapshot() as conn:
        return str(conn.execute(sql, args).fetchone()[0])


# --------------------------------------------------------------------------------------------
# What is stored


def test_a_spec_is_stored_as_the_pinned_text_and_reads_back(store: Store) -> None:
    store.create_job("j", CONSUMER, SPEC, [NewShard(0, [(0, 1, 2), (3, 4, 5)])])
    assert _stored(store, "SELECT spec FROM jobs WHERE job_id = ?", "j") == SPEC_TEXT
    assert _stored(store, "SELECT blocks FROM shards WHERE job_id = ?", "j") == "[[0,1,2],[3,4,5]]"
    assert store.get_job("j").spec == SPEC
    assert store.list_shards("j")[0].blocks == [(0, 1, 2), (3, 4, 5)]
    # Both ways with the previous version, which stored json.dumps of a dict and read json.loads:
    assert json.dumps(SPEC_DICT, sort_keys=True, separators=(",", ":")) == SPEC_TEXT
    assert json.loads(SPEC_TEXT) == SPEC_DICT
    # A spec the previous version stored is this version's spec: a retried create_job matches.
    _raw_job(store, "old", SPEC_TEXT)
    assert store.get_job("old").spec == SPEC
    assert store.create_job("old", CONSUMER, SPEC).state == "sharded"


def test_dispute_claims_and_outcomes_are_stored_as_the_pinned_text(store: Store) -> None:
    store.create_job("j", CONSUMER, SPEC)
    d = store.open_dispute("j", CLAIMS)
    assert _stored(store, "SELECT claims FROM disputes") == CLAIMS_TEXT
    assert store.get_dispute(d.dispute_id).claims == CLAIMS
    lied = store.resolve_dispute(d.dispute_id, DisputeOutcome("validator lied"))
    assert _stored(store, "SELECT outcome FROM disputes") == '{"outcome":"validator lied"}'
    assert lied.outcome is not None and lied.outcome.as_json() == {"outcome": "validator lied"}
    e = store.open_dispute("j", msgspec.structs.replace(CLAIMS, round=2))
    upheld = store.resolve_dispute(e.dispute_id, DisputeOutcome("upheld", ["n1"]))
    text = _stored(store, "SELECT outcome FROM disputes WHERE dispute_id = ?", e.dispute_id)
    assert text == '{"outcome":"upheld","slashed":["n1"]}'
    assert upheld.outcome is not None
    assert upheld.outcome.as_json() == {"outcome": "upheld", "slashed": ["n1"]}
    assert json_text("claims", CLAIMS, DisputeClaims) == CLAIMS_TEXT


# --------------------------------------------------------------------------------------------
# What older versions stored


def test_a_spec_stored_by_the_first_version_reads_with_todays_defaults(store: Store) -> None:
    _raw_job(store, "first", FIRST_SPEC_TEXT)
    spec = store.get_job("first").spec
    assert (spec.plan_nodes, spec.redundancy, spec.audit_per_triad) == (3, "none", 1)
    assert (spec.commit_a, spec.commit_b) == (None, None)
    assert (spec.m, spec.k, spec.n, spec.nodes, spec.price) == (4, 6, 5, 3, 22)
    # Before audit counts were stored, with mirrors: the plan's node count is kept.
    mirrors = json.loads(SPEC_TEXT)
    del mirrors["audit_per_triad"]
    _raw_job(store, "mirrors", json.dumps(mirrors, sort_keys=True, separators=(",", ":")))
    spec = store.get_job("mirrors").spec
    assert (spec.nodes, spec.plan_nodes, spec.audit_per_triad) == (6, 3, 1)


def test_a_dispute_without_failed_partials_reads_as_none_failed(store: Store) -> None:
    store.create_job("j", CONSUMER, SPEC)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO disputes (job_id, claims, state, created_at) VALUES (?, ?, 'open', 1.0)",
            ("j", '{"blocks":[[0,0,0]],"round":0,"slots":{}}'),
        )
    assert store.list_disputes("j")[0].claims.failed == []


def test_a_job_stored_by_the_first_version_is_served_by_the_coordinator(tmp_path: Path) -> None:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, default_credit=10_000))
    consumer = NodeKey.generate().node_id
    coord.register(consumer, RegisterRequest(bond=0))
    a, b = np.ones((40, 30), np.int8), np.ones((30, 20), np.int8)
    reply = coord.submit(consumer, JobSubmission(nodes=3, request_id="r"), {"A": a, "B": b})
    job_id = reply["job_id"]
    stored = json.loads(_stored(coord.store, "SELECT spec FROM jobs WHERE job_id = ?", job_id))
    assert set(stored) == set(SPEC_DICT)  # the keys the previous version wrote, no others
    # The same job as the first version would have stored it: the replies read its defaults.
    for key in ("plan_nodes", "redundancy", "commit_a", "commit_b", "audit_per_triad"):
        del stored[key]
    with coord.store.transaction() as conn:
        conn.execute("UPDATE jobs SET spec = ? WHERE job_id = ?", (json.dumps(stored), job_id))
    again = coord.submit(consumer, JobSubmission(nodes=3, request_id="r"), {"A": a, "B": b})
    assert again == reply | {"redundancy": "none", "commitments": {"a": None, "b": None}}
    status = coord.status(job_id)
    assert (status["shape"], status["k"], status["nodes"]) == ([40, 20], 30, 3)
    coord.close()


# --------------------------------------------------------------------------------------------
# A corrupt store


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (SPEC_TEXT.replace('"k":6,', '"k":6,"grid":[1,1,1],'), "unknown field `grid`"),
        (SPEC_TEXT.replace('"m":4', '"m":"4"'), r"Expected `int`, got `str` - at `\$.m`"),
        (SPEC_TEXT.replace('"price":22,', ""), "missing required field `price`"),
        (SPEC_TEXT.replace('"edges":[[0,2,4],[0,5],[0,6]]', '"edges":[[0,4]]'), r"\$.edges"),
        ("[]", "Expected `object`"),
        ("not JSON", "malformed"),
    ],
)
def test_a_corrupt_spec_is_a_store_error(store: Store, text: str, reason: str) -> None:
    _raw_job(store, "bad", text)
    for read in (lambda: store.get_job("bad"), lambda: store.list_jobs()):
        with pytest.raises(StoreError, match=reason) as info:
            read()
        assert "corrupt state store: the spec of job bad does not decode" in str(info.value)
        assert not isinstance(info.value, InvalidInputError)  # not the caller's bad input


def test_corrupt_blocks_claims_and_outcomes_are_store_errors(store: Store) -> None:
    store.create_job("j", CONSUMER, SPEC, [NewShard(0, [(0, 0, 0)])])
    d = store.open_dispute("j", CLAIMS)
    with store.transaction() as conn:
        conn.execute("UPDATE shards SET blocks = '[[0,0]]'")
    with pytest.raises(StoreError, match="the blocks of shard 1 does not decode"):
        store.get_shard(1)
    with store.transaction() as conn:
        conn.execute('UPDATE disputes SET claims = \'{"round": "1"}\'')
    with pytest.raises(StoreError, match=f"the claims of dispute {d.dispute_id}"):
        store.get_dispute(d.dispute_id)
    with store.transaction() as conn:
        conn.execute("UPDATE disputes SET claims = ?, outcome = '{}'", (CLAIMS_TEXT,))
    with pytest.raises(StoreError, match=f"the outcome of dispute {d.dispute_id}"):
        store.list_disputes()
