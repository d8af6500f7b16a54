"""The coordinator's API under a property-based run generated from its own typed /openapi.json
(schemathesis), against a real coordinator process on 127.0.0.1.

Every operation of the document is fuzzed with valid (positive) and invalid (negative) requests;
each request is signed by a real key registered first, by a fresh unregistered key, or left as
generated (unsigned). The RNWIRE1 routes also get hypothesis-made containers (well formed,
truncated or with a flipped byte) with arbitrary metadata and arrays, and every JSON route a body
nested far deeper than any parser's stack. For every reply: no status of 500 or more; after a
refused one (4xx), nothing stored (the rows of every table but the replay nonces, the blob files,
the ledger's totals); and at the end no traceback or internal error in the coordinator's log.

Time-bounded for CI: a few dozen examples per operation, derandomized so that a failure repeats.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ramnet.mesh.protocol.auth import AuthError, sign_request
from ramnet.mesh.protocol.routes import ROUTES, Route, openapi_path
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE, pack
from ramnet.valkyrie import NodeKey
from tests.mesh_procs import Mesh

EXAMPLES = 20  # per operation and generation mode: about 650 requests in all
WIRE_EXAMPLES = 150
FAST_WAIT = 0.05  # a generated long poll within range is held this long at most
# Rows a refused request must not add or change. The replay nonces are left out: a validly
# signed request records its nonce before its body is looked at, by design (auth.py).
TABLES = ("nodes", "jobs", "shards", "disputes", "accounts", "escrows", "movements")
SIGNERS = ("registered", "fresh", "as generated")


@dataclass
class Target:
    """The coordinator under test, its key, and what it has stored so far."""

    mesh: Mesh
    key: NodeKey
    schema: Any
    client: Any
    stored: dict[str, Any]

    @property
    def log(self) -> str:
        return (self.mesh.folder / "coord.log").read_text(errors="replace")


def stored_state(data_dir: Path) -> dict[str, Any]:
    """What the coordinator holds: rows per table, the ledger's totals, the blob files."""
    conn = sqlite3.connect(f"file:{data_dir / 'state.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        found: dict[str, Any] = {
            table: conn.execute(f"SELECT count(*), total(rowid) FROM {table}").fetchone()
            for table in TABLES
        }
        found["totals"] = conn.execute("SELECT minted, burned FROM ledger_totals").fetchone()
        found["balances"] = conn.execute(
            "SELECT total(balance), total(bond), total(slashed) FROM accounts"
        ).fetchone()
    finally:
        conn.close()
    blobs = data_dir / "blobs"
    found["blobs"] = sorted(str(p.relative_to(blobs)) for p in blobs.rglob("*") if p.is_file())
    return found


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    import httpx

    # RNWIRE1 bodies are bytes to schemathesis: generated as binary strings, sent as they are.
    schemathesis.serializer.alias(WIRE_CONTENT_TYPE, "application/octet-stream")
    mesh = Mesh(tmp_path_factory.mktemp("fuzz"))
    mesh.start_coordinator()
    client = httpx.Client(base_url=mesh.url, timeout=30)
    try:
        document = client.get("/openapi.json").json()
        key = NodeKey.generate()
        reply = send(client, key, "POST", "/v1/nodes", json.dumps({"bond": 10}).encode())
        assert reply.status_code == 200, reply.text
        yield Target(
            mesh,
            key,
            schemathesis.openapi.from_dict(document),
            client,
            stored_state(mesh.folder / "s"),
        )
    finally:
        client.close()
        mesh.stop()


def send(
    client: Any,
    key: NodeKey | None,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Any:
    """Send one request, signed by ``key`` over exactly the target and body that go out."""
    headers = dict(headers or {})
    if body and "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    if key is not None:
        # A target no node could sign (too long, not ASCII) goes out unsigned.
        with contextlib.suppress(AuthError):
            headers.update(sign_request(key, method, target, body))
    return client.request(method, target, content=body, headers=headers)


def _query_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) or value is None:
        return str(value)
    return json.dumps(value)


def _quick(query: dict[str, Any]) -> dict[str, Any]:
    # A valid wait would hold the long poll up to 5 s: keep the run short, not the checks.
    wait = query.get("wait")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool) and 0 <= wait <= 5:
        query = {**query, "wait": min(float(wait), FAST_WAIT)}
    return query


def send_case(target: Target, case: Any, signer: str) -> Any:
    """Send a generated case, signed as ``signer`` says."""
    import httpx

    case.query = _quick(dict(case.query or {}))
    kwargs = case.as_transport_kwargs(base_url=target.mesh.url)
    headers = {
        name: value
        for name, value in kwargs.get("headers", {}).items()
        if not name.lower().startswith("x-schemathesis")
    }
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
    else:
        raw = kwargs.get("data", kwargs.get("content", b""))
        body = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
    path = httpx.URL(kwargs["url"]).raw_path.decode("ascii")
    params = kwargs.get("params") or {}
    if params:
        pairs = [
            (str(name), _query_text(item))
            for name, value in params.items()
            for item in (value if isinstance(value, list) else [value])
        ]
        path += ("&" if "?" in path else "?") + urllib.parse.urlencode(pairs)
    key = {"registered": target.key, "fresh": NodeKey.generate(), "as generated": None}[signer]
    if key is not None:
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("x-ramnet-")}
    return send(target.client, key, kwargs["method"], path, body, headers)


def check_reply(target: Target, reply: Any, what: str) -> None:
    """No 5xx; after a refusal, nothing stored."""
    assert reply.status_code < 500, f"{what}: {reply.status_code} {reply.text}"
    now = stored_state(target.mesh.folder / "s")
    if 400 <= reply.status_code < 500:
        assert now == target.stored, f"{what}: refused ({reply.status_code}) yet stored something"
    target.stored = now


def _has_inputs(route: Route) -> bool:
    return bool(route.params or route.query or route.request or route.signed)


@pytest.mark.parametrize(
    ("route", "mode"),
    [
        pytest.param(route, mode, id=f"{route.name}-{mode}")
        for route in ROUTES
        for mode in ("positive", "negative")
        # Nothing of a route without parameters, body or signature can be made invalid.
        if mode == "positive" or _has_inputs(route)
    ],
)
def test_generated_requests_are_answered_without_a_server_error(
    target: Target, route: Route, mode: str
) -> None:
    operation = target.schema[openapi_path(route)][route.method]

    @given(
        case=operation.as_strategy(schemathesis.GenerationMode(mode)),
        signer=st.sampled_from(SIGNERS),
    )
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any, signer: str) -> None:
        reply = send_case(target, case, signer)
        check_reply(target, reply, f"{mode} {signer}: {case.as_curl_command()}")

    fuzz()
    assert "Traceback" not in target.log
    assert "internal error" not in target.log


_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
_VALUES = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_META = st.fixed_dictionaries(
    {},
    optional={
        "nodes": st.integers(-3, 12) | _VALUES,
        "redundancy": st.sampled_from(["mirror", "none"]) | _VALUES,
        "request_id": st.text("0123456789abcdef", min_size=0, max_size=70) | _VALUES,
        "shard_id": st.text(max_size=8) | _VALUES,
        "extra": _VALUES,
    },
)
_DTYPES = st.sampled_from(["int8", "int16", "int32", "int64", "float32", "float64", "uint8"])
_ARRAYS = st.dictionaries(
    st.sampled_from(["A", "B", "C", "0:0:0", "x"]),
    _DTYPES.flatmap(
        lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))
    ),
    max_size=3,
)
_WIRE_ROUTES = [r for r in ROUTES if r.size == "arrays"]


@st.composite
def _submissions(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    # Close to a real job, so that intake itself is reached: odd shapes (empty, 1-D, K that
    # does not match), node counts around the valid ones, either dtype of the pair.
    m, k, n, k2 = (draw(st.integers(0, 9)) for _ in range(4))
    k2 = draw(st.sampled_from([k, k2]))
    kinds = draw(st.lists(st.sampled_from(["int8", "int16", "float32", "float64"]), min_size=2))
    meta = {"nodes": draw(st.sampled_from([3, 6, 9, 0, -3, 4])), "request_id": "ab" * 16}
    if draw(st.booleans()):
        meta["redundancy"] = draw(st.sampled_from(["mirror", "none"]))
    a = np.ones((m, k) if draw(st.booleans()) else (m,), dtype=kinds[0])
    return meta, {"A": a, "B": np.ones((k2, n), dtype=kinds[1])}


@given(
    route=st.sampled_from(_WIRE_ROUTES),
    body=st.tuples(_META, _ARRAYS) | _submissions(),
    damage=st.sampled_from(["none", "truncate", "flip"]),
    where=st.floats(0, 1),
    shard=st.sampled_from(["1", "2", "999", "x"]),
)
@settings(
    max_examples=WIRE_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_wire_bodies_are_answered_without_a_server_error(
    target: Target,
    route: Route,
    body: tuple[dict[str, Any], dict[str, np.ndarray]],
    damage: str,
    where: float,
    shard: str,
) -> None:
    meta, arrays = body
    try:
        sent = bytearray(pack(meta, arrays))
    except Exception:  # what pack refuses no node sends: a JSON text instead
        sent = bytearray(json.dumps(meta, default=str).encode())
    at = min(int(where * len(sent)), len(sent) - 1)
    if damage == "truncate":
        del sent[at:]
    elif damage == "flip" and sent:
        sent[at] ^= 0xFF
    path = route.path.replace("{shard_id}", shard)
    reply = send(
        target.client,
        target.key,
        route.method,
        path,
        bytes(sent),
        {"Content-Type": WIRE_CONTENT_TYPE},
    )
    check_reply(target, reply, f"{route.name} {damage} meta={meta!r}")
    assert "Traceback" not in target.log


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.request is not None and r.size == "small"],
    ids=lambda r: r.name,
)
@pytest.mark.parametrize("depth", [1_000, 10_000])
def test_deeply_nested_json_is_a_400(target: Target, route: Route, depth: int) -> None:
    path = route.path.replace("{shard_id}", "1").replace("{dispute_id:int}", "1")
    path = path.replace("{job_id}", "0" * 32)
    for body in ("[" * depth, '{"a":' * depth + "1" + "}" * depth):
        reply = send(target.client, target.key, route.method, path, body.encode())
        assert reply.status_code == 400, reply.text
        check_reply(target, reply, f"{route.name} nested {depth}")
    assert "Traceback" not in target.log
