"""The coordinator's HTTP API: paths, and the OpenAPI description it serves.

Every node request is signed (``ramnet.mesh.protocol.auth``); bodies are JSON, or the ``RNWIRE1``
container (``ramnet.mesh.protocol.wire``) where arrays travel. Nothing is ever unpickled.
"""

from __future__ import annotations

from typing import Any

from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE

HEALTH = "/health"
OPENAPI = "/openapi.json"
NODES = "/v1/nodes"
JOBS = "/v1/jobs"
WORK = "/v1/work"
LEDGER = "/v1/ledger"
VALIDATIONS = "/v1/validations"
AUDITS = "/v1/audits"
SHARDS = "/v1/shards"


def audit_report(job_id: str) -> str:
    """Where an auditor posts its report on an optimistic job."""
    return f"{AUDITS}/{job_id}/report"


def shard_result(shard_id: str) -> str:
    """Where a node that only computes (``--no-prove``) posts its partials, without a commit."""
    return f"{SHARDS}/{shard_id}/result"


def verdict(dispute_id: int) -> str:
    """Where a validator posts its verdict."""
    return f"{VALIDATIONS}/{dispute_id}/verdict"


def job(job_id: str) -> str:
    """The status path of a job."""
    return f"{JOBS}/{job_id}"


def job_result(job_id: str) -> str:
    """The result path of a job (the ``C`` array, once settled)."""
    return f"{JOBS}/{job_id}/result"


def shard(shard_id: str) -> str:
    """The status path of a shard."""
    return f"{SHARDS}/{shard_id}"


def shard_commit(shard_id: str) -> str:
    """Where a worker posts the digest of its result."""
    return f"{SHARDS}/{shard_id}/commit"


def shard_release(shard_id: str) -> str:
    """Where a stopping worker hands a shard back."""
    return f"{SHARDS}/{shard_id}/release"


def shard_reveal(shard_id: str) -> str:
    """Where a worker posts its partial tiles, once the commit phase has closed."""
    return f"{SHARDS}/{shard_id}/reveal"


_SIGNED: list[dict[str, list[str]]] = [{"ramnetSignature": []}]
_WIRE = {WIRE_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API."""
    obj = {"type": "object"}
    ok = {"200": {"description": "OK", "content": _json(obj)}}
    wire_ok = {"200": {"description": "OK", "content": _WIRE}}
    errors = {
        "400": {"description": "Malformed request"},
        "401": {"description": "Unsigned or badly signed request"},
        "409": {"description": "Replayed nonce, or a state conflict"},
        "413": {"description": "Body too large"},
    }
    paths: dict[str, Any] = {
        HEALTH: {"get": {"summary": "Readiness", "responses": ok}},
        NODES: {
            "post": {
                "summary": "Register the signing node, grant its starting credit, stake its bond",
                "security": _SIGNED,
                "requestBody": {"content": _json(obj)},
                "responses": {**ok, **errors},
            }
        },
        JOBS: {
            "post": {
                "summary": "Submit a job: A and B as wire arrays, nodes in meta; escrows payment",
                "security": _SIGNED,
                "requestBody": {"content": _WIRE},
                "responses": {**ok, **errors},
            }
        },
        "/v1/jobs/{job_id}": {
            "get": {"summary": "Job status", "security": _SIGNED, "responses": {**ok, **errors}}
        },
        "/v1/jobs/{job_id}/result": {
            "get": {"summary": "C, once settled", "security": _SIGNED, "responses": wire_ok}
        },
        WORK: {
            "get": {
                "summary": "Claim the next shard: its blocks and tiles (no work: shard_id null)",
                "security": _SIGNED,
                "responses": {**wire_ok, **errors},
            }
        },
        "/v1/shards/{shard_id}": {
            "get": {"summary": "Shard state", "security": _SIGNED, "responses": {**ok, **errors}}
        },
        "/v1/shards/{shard_id}/commit": {
            "post": {
                "summary": "Commit to a result's digest",
                "security": _SIGNED,
                "requestBody": {"content": _json(obj)},
                "responses": {**ok, **errors},
            }
        },
        "/v1/shards/{shard_id}/release": {
            "post": {
                "summary": "Hand a shard back (it goes to another node)",
                "security": _SIGNED,
                "responses": {**ok, **errors},
            }
        },
        "/v1/shards/{shard_id}/reveal": {
            "post": {
                "summary": "Reveal the partial tiles after the commit phase",
                "security": _SIGNED,
                "requestBody": {"content": _WIRE},
                "responses": {**ok, **errors},
            }
        },
        "/v1/shards/{shard_id}/result": {
            "post": {
                "summary": "Post the partials of a --no-prove node (no commit; the job goes "
                "optimistic and waits for an auditor)",
                "security": _SIGNED,
                "requestBody": {"content": _WIRE},
                "responses": {**ok, **errors},
            }
        },
        AUDITS: {
            "get": {
                "summary": "The next optimistic job to audit: tiles, every copy's partials, "
                "the copies that must agree (job_id null: none)",
                "security": _SIGNED,
                "responses": {**wire_ok, **errors},
            }
        },
        "/v1/audits/{job_id}/report": {
            "post": {
                "summary": "An audit report: no frauds settles the job; fraud proofs revert "
                "and slash their authors",
                "security": _SIGNED,
                "requestBody": {"content": _json(obj)},
                "responses": {**ok, **errors},
            }
        },
        "/v1/validations": {
            "get": {
                "summary": "The next dispute this validator was drawn for: contested tiles with "
                "Merkle openings, and the claims",
                "security": _SIGNED,
                "responses": {**wire_ok, **errors},
            }
        },
        "/v1/validations/{dispute_id}/verdict": {
            "post": {
                "summary": "A validator's verdict with fraud proofs",
                "security": _SIGNED,
                "requestBody": {"content": _json(obj)},
                "responses": {**ok, **errors},
            }
        },
        LEDGER: {"get": {"summary": "Accounts and conserved totals", "responses": ok}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "RAMNET coordinator", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "ramnetSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Ramnet-Signature",
                    "description": "Ed25519 over method, path, body hash, nonce and timestamp "
                    "(X-Ramnet-Node, X-Ramnet-Nonce, X-Ramnet-Timestamp); a reveal may be signed "
                    "over its shard's commitment ('commitment:' + hex) instead of its body hash",
                }
            }
        },
    }
