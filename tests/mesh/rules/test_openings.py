"""Validators judge only what was committed to: the job's tiles (Merkle openings against the
roots fixed at submission) and the workers' own results (opened against their commitments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet import orchid
from ramnet.mesh import Worker
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.worker import _misbehave
from ramnet.mesh.protocol.messages import JobSubmission, RegisterRequest, Verdict
from ramnet.mesh.rules.disputes import bad_tiles, claim_opens, judge
from ramnet.mesh.rules.tilecommit import commit_tiles, open_tile_path, verify_tile_path
from ramnet.valkyrie import NodeKey
from tests.mesh.coordinator.test_service import _commit_and_reveal, _work


@settings(max_examples=40, deadline=None)
@given(
    p=st.integers(1, 5),
    r=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(["int8", "int16", "int32", "float32"]),
)
def test_every_tile_opens_and_nothing_else_does(p: int, r: int, seed: int, dtype: str) -> None:
    rng = np.random.default_rng(seed)
    tiles = {
        (x, y): rng.integers(-9, 9, (1 + (x + y) % 3, 2 + y % 2)).astype(dtype)
        for x in range(p)
        for y in range(r)
    }
    root, levels = commit_tiles("a", tiles, (p, r))
    for (x, y), tile in tiles.items():
        path = open_tile_path(levels, (p, r), x, y)
        assert verify_tile_path("a", root, (p, r), x, y, tile, path)
        assert not verify_tile_path("b", root, (p, r), x, y, tile, path)  # kind is bound in
        flipped = tile.copy()
        flipped.flat[0] += 1
        assert not verify_tile_path("a", root, (p, r), x, y, flipped, path)
        assert not verify_tile_path("a", root, (p, r), x, y, tile.astype("int64"), path)
        if p * r > 1:
            other = ((x + 1) % p, y) if p > 1 else (x, (y + 1) % r)
            assert not verify_tile_path("a", root, (p, r), *other, tile, path)
            assert not verify_tile_path("a", root, (p, r), x, y, tile, path[:-1])
        assert not verify_tile_path("a", root, (p, r), x, y, tile, ["zz"] * (len(path) or 1))
        assert not verify_tile_path("a", root, (p, r), p, y, tile, path)


def _disputed_job(tmp_path: Path) -> tuple[Coordinator, str, str]:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path))
    workers = [NodeKey.generate().node_id for _ in range(3)]
    validator, consumer = NodeKey.generate().node_id, NodeKey.generate().node_id
    for node in workers:
        coord.register(node, RegisterRequest(bond=10))
    coord.register(validator, RegisterRequest(bond=10, validator=True))
    coord.register(consumer, RegisterRequest(bond=0))
    a, b = orchid.random_operands(50, 40, 30, "int8", seed=3)
    job = coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})
    assert job["commitments"]["a"] and job["commitments"]["b"]
    work = {w: _work(coord, w) for w in workers}
    shard, honest = work[workers[2]]
    work[workers[2]] = (shard, _misbehave("off-by-one", honest, []))
    _commit_and_reveal(coord, work)
    return coord, job["job_id"], validator


def test_a_validation_package_opens_against_the_commitments(tmp_path: Path) -> None:
    coord, _, validator = _disputed_job(tmp_path)
    meta, arrays = coord.validation(validator)
    assert meta["dispute_id"] is not None
    assert bad_tiles(meta, arrays) == []
    assert meta["claims"] and all(claim_opens(c, arrays[c["name"]]) for c in meta["claims"])
    # Only the contested blocks' tiles are sent.
    sent = {n for n in arrays if n[0] in "ab"}
    wanted = {f"a/{i}/{k}" for i, _, k in meta["blocks"]} | {
        f"b/{k}/{j}" for _, j, k in meta["blocks"]
    }
    assert sent == wanted
    # A swapped tile, a broken path, or a claim that is not what its worker committed: caught.
    name = sorted(sent)[0]
    forged = {**arrays, name: arrays[name] + 1}
    assert bad_tiles(meta, forged) == [name]
    broken = {**meta, "openings": {**meta["openings"], name: []}}
    assert meta["openings"][name] and bad_tiles(broken, arrays) == [name]
    claim = meta["claims"][0]
    assert not claim_opens(claim, arrays[claim["name"]] + 1)
    assert not claim_opens({**claim, "commit": "00" * 32}, arrays[claim["name"]])
    assert not claim_opens({"block": "junk"}, arrays[claim["name"]])
    coord.close()


class _Client:
    """Serves one validation package, records verdicts."""

    def __init__(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.package = (meta, arrays)
        self.verdicts: list[dict[str, Any]] = []

    def get_wire(self, path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return self.package

    def post_json(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.verdicts.append(body)
        return {"outcome": "recorded"}


def test_the_validator_refuses_tiles_that_do_not_open(tmp_path: Path) -> None:
    coord, _, validator = _disputed_job(tmp_path)
    meta, arrays = coord.validation(validator)
    logs: list[str] = []
    honest = _Client(meta, dict(arrays))
    Worker(honest, validator=True, log=logs.append).validate()
    assert len(honest.verdicts) == 1 and len(honest.verdicts[0]["frauds"]) >= 1
    # As the app hands it over: the body the worker posted, decoded into its message.
    verdict = msgspec.convert(honest.verdicts[0], Verdict)
    assert coord.verdict(validator, meta["dispute_id"], verdict)["outcome"] == "upheld"
    name = next(n for n in arrays if n.startswith("b/"))
    tampered = _Client(meta, {**arrays, name: np.zeros_like(arrays[name])})
    Worker(tampered, validator=True, log=logs.append).validate()
    assert tampered.verdicts == []
    assert any("refused" in line and name in line for line in logs)
    coord.close()


def test_the_judgement_is_a_rule_with_plain_values(tmp_path: Path) -> None:
    # rules.disputes.judge: the package in, the fraud proofs out, no client and no clock.
    coord, _, validator = _disputed_job(tmp_path)
    meta, arrays = coord.validation(validator)
    frauds, notes = judge(meta, arrays)
    assert frauds and notes == []
    cheater = {
        claim["node"] for claim in meta["claims"] if claim["node"] in {f["node"] for f in frauds}
    }
    assert len(cheater) == 1  # the off-by-one worker, and no one else
    # A claim that is not what its worker committed to is ignored, with a note saying so.
    claim = meta["claims"][0]
    forged_claim = {**arrays, claim["name"]: arrays[claim["name"]] + 1}
    _, notes = judge(meta, forged_claim)
    assert notes == [f"claim {claim['name']} does not open; ignored"]
    # Tiles that do not open against the job's commitments: no verdict at all.
    name = next(n for n in arrays if n.startswith("a/"))
    refused, notes = judge(meta, {**arrays, name: np.zeros_like(arrays[name])})
    assert refused is None and name in notes[0] and notes[0].startswith("refused: ")
    coord.close()
