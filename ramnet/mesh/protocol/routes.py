"""The coordinator's HTTP API, written once: the route table, and what is derived from it.

``ROUTES`` lists every route: its name, method, path template, request and reply (a JSON message,
an RNWIRE1 body with typed metadata, or nothing), whether it is signed, its summary and the class
of its body's size. From the table come the coordinator's Starlette routes
(``ramnet.mesh.coordinator.app``), the OpenAPI document it serves (``openapi``) and every path a
node requests (``url``); no path is written anywhere else.

Every node request is signed (``ramnet.mesh.protocol.auth``); bodies are JSON, or the ``RNWIRE1``
container (``ramnet.mesh.protocol.wire``) where arrays travel. Nothing is ever unpickled.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ramnet._errors import InvalidInputError
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE

if TYPE_CHECKING:
    import msgspec

__all__ = [
    "JSON_CONTENT_TYPE",
    "PAGES",
    "ROUTES",
    "Json",
    "Page",
    "Route",
    "Wire",
    "openapi",
    "openapi_path",
    "page",
    "page_url",
    "route",
    "url",
]

JSON_CONTENT_TYPE = "application/json"


def _message(name: str) -> type[msgspec.Struct]:
    # The messages (and msgspec) load when a server or the document needs them: a node only
    # builds paths, and its start would pay about 8 ms for them (python -X importtime).
    found: type[msgspec.Struct] = getattr(
        importlib.import_module("ramnet.mesh.protocol.messages"), name
    )
    return found


@dataclass(frozen=True)
class Json:
    """A JSON body: one message of ``protocol.messages``, by name."""

    name: str

    @property
    def message(self) -> type[msgspec.Struct]:
        """The message."""
        return _message(self.name)


@dataclass(frozen=True)
class Wire:
    """An RNWIRE1 body: arrays, and metadata that is one message of ``protocol.messages``, by
    name."""

    name: str

    @property
    def meta(self) -> type[msgspec.Struct]:
        """The metadata's message."""
        return _message(self.name)


@dataclass(frozen=True)
class Route:
    """One route of the API.

    Attributes:
        name: What the route is called (the OpenAPI operationId; ``url`` takes it).
        method: GET or POST (a GET route also answers HEAD).
        path: The path template, Starlette's: ``{name}`` or ``{name:int}`` for a parameter.
        reply: What a success carries.
        summary: One line for the OpenAPI document.
        request: What the body carries (None: nothing is read from it).
        signed: Whether the request must be signed by a node (``auth``).
        query: The query parameters it takes (``wait``: seconds of a long poll).
        size: The class of its body: ``small`` (JSON or nothing) or ``arrays`` (an upload).
        bound: Whether it may be signed over its shard's commitment instead of its body's hash
            (a reveal: ``auth.bound_by``).
    """

    name: str
    method: Literal["GET", "POST"]
    path: str
    reply: Json | Wire
    summary: str
    request: Json | Wire | None = None
    signed: bool = True
    query: tuple[str, ...] = ()
    size: Literal["small", "arrays"] = "small"
    bound: bool = False

    @property
    def params(self) -> dict[str, str]:
        """The path parameters: name -> Starlette convertor (``str`` or ``int``)."""
        return {name: kind or "str" for name, kind in _PARAM.findall(self.path)}


_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")
_WAIT = ("wait",)

ROUTES: tuple[Route, ...] = (
    Route("health", "GET", "/health", Json("Health"), "Readiness", signed=False),
    Route("openapi", "GET", "/openapi.json", Json("ApiDocument"), "This document", signed=False),
    Route(
        "ledger",
        "GET",
        "/v1/ledger",
        Json("LedgerView"),
        "Accounts and conserved totals",
        signed=False,
    ),
    Route(
        "register",
        "POST",
        "/v1/nodes",
        Json("Registered"),
        "Register the signing node, grant its starting credit, stake its bond",
        request=Json("RegisterRequest"),
    ),
    Route(
        "submit_job",
        "POST",
        "/v1/jobs",
        Json("JobSubmitted"),
        "Submit a job: A and B as wire arrays, nodes in meta; escrows payment",
        request=Wire("JobSubmission"),
        size="arrays",
    ),
    Route(
        "job_list", "GET", "/v1/jobs", Json("JobList"), "The signing consumer's jobs, newest first"
    ),
    Route("job_status", "GET", "/v1/jobs/{job_id}", Json("JobStatus"), "Job status", query=_WAIT),
    Route(
        "job_cancel",
        "POST",
        "/v1/jobs/{job_id}/cancel",
        Json("JobCancelled"),
        "Cancel a job that has not settled (its consumer only); refunds the unspent escrow",
        request=Json("CancelRequest"),
    ),
    Route("job_result", "GET", "/v1/jobs/{job_id}/result", Wire("JobResult"), "C, once settled"),
    Route(
        "claim",
        "GET",
        "/v1/work",
        Wire("ClaimedShard"),
        "Claim the next shard: its blocks and tiles (no work: shard_id null)",
        query=_WAIT,
    ),
    Route(
        "next_validation",
        "GET",
        "/v1/validations",
        Wire("ValidationPackage"),
        "The next dispute this validator was drawn for: contested tiles with Merkle openings, "
        "and the claims",
        query=_WAIT,
    ),
    Route(
        "verdict",
        "POST",
        "/v1/validations/{dispute_id:int}/verdict",
        Json("VerdictReply"),
        "A validator's verdict with fraud proofs",
        request=Json("Verdict"),
    ),
    Route(
        "shard_view",
        "GET",
        "/v1/shards/{shard_id}",
        Json("ShardView"),
        "Shard state",
        query=_WAIT,
    ),
    Route(
        "heartbeat",
        "POST",
        "/v1/heartbeat",
        Json("HeartbeatReply"),
        "Show the signing node is alive while it computes (any signed request does); lists the "
        "shards it still holds",
    ),
    Route(
        "shard_commit",
        "POST",
        "/v1/shards/{shard_id}/commit",
        Json("ShardView"),
        "Commit to a result's digest",
        request=Json("CommitRequest"),
    ),
    Route(
        "shard_release",
        "POST",
        "/v1/shards/{shard_id}/release",
        Json("ShardReleased"),
        "Hand a shard back (it goes to another node)",
        request=Json("ReleaseRequest"),
    ),
    Route(
        "shard_reveal",
        "POST",
        "/v1/shards/{shard_id}/reveal",
        Json("ShardResultReply"),
        "Reveal the partial tiles after the commit phase",
        request=Wire("PartialsMeta"),
        size="arrays",
        bound=True,
    ),
    Route(
        "shard_result",
        "POST",
        "/v1/shards/{shard_id}/result",
        Json("ShardResultReply"),
        "Post the partials of a --no-prove node (no commit; the job goes optimistic and waits "
        "for an auditor)",
        request=Wire("PartialsMeta"),
        size="arrays",
    ),
    Route(
        "next_audit",
        "GET",
        "/v1/audits",
        Wire("AuditPackage"),
        "The next optimistic job to audit: tiles, every copy's partials, the copies that must "
        "agree (job_id null: none)",
        query=_WAIT,
    ),
    Route(
        "audit_report",
        "POST",
        "/v1/audits/{job_id}/report",
        Json("AuditReportReply"),
        "An audit report: no frauds settles the job; fraud proofs revert and slash their authors",
        request=Json("AuditReport"),
    ),
)

_BY_NAME = {r.name: r for r in ROUTES}


@dataclass(frozen=True)
class Page:
    """One route of the coordinator's dashboard: HTML and events for people, outside the JSON
    API. A page is a read-only GET (it also answers HEAD), never signed, open to anyone
    (``coordinator.admission`` admits it), and not in the OpenAPI document, whose every
    operation takes and gives typed messages.

    Attributes:
        name: What the page is called (``page_url`` takes it).
        path: The path template, Starlette's (``{name:path}``: the rest of the path).
        summary: One line saying what it shows.
    """

    name: str
    path: str
    summary: str


PAGES: tuple[Page, ...] = (
    Page("dashboard", "/dashboard", "The dashboard: nodes, jobs, disputes, ledger and plots"),
    Page("dashboard_job", "/dashboard/jobs/{job_id}", "One job: its shards, timings, disputes"),
    Page(
        "dashboard_events",
        "/dashboard/events",
        "Server-sent events: the dashboard's changed sections, each time the state changes",
    ),
    Page(
        "dashboard_static",
        "/dashboard/static/{name:path}",
        "The dashboard's stylesheet and scripts (served by the coordinator itself)",
    ),
)

_PAGES_BY_NAME = {p.name: p for p in PAGES}


def page(name: str) -> Page:
    """The dashboard page called ``name``.

    Raises:
        KeyError: No such page.
    """
    return _PAGES_BY_NAME[name]


def page_url(name: str, /, **params: str) -> str:
    """The path of dashboard page ``name`` with ``params`` filled in (as given: a ``path``
    parameter keeps its slashes).

    Raises:
        KeyError: No such page.
        InvalidInputError: Missing or extra parameters.
    """
    spec = _PAGES_BY_NAME[name]
    wanted = {found.group(1) for found in _PARAM.finditer(spec.path)}
    if set(params) != wanted:
        raise InvalidInputError(f"page {name} takes {sorted(wanted)}, not {sorted(params)}")
    return _PARAM.sub(lambda found: str(params[found.group(1)]), spec.path)


def route(name: str) -> Route:
    """The route called ``name``.

    Raises:
        KeyError: No such route.
    """
    return _BY_NAME[name]


def url(name: str, query: Mapping[str, float | str] | None = None, **params: str | int) -> str:
    """The request target of route ``name``: its path with ``params`` filled in, and ``query``.

    Numbers in the query are written as ``{:g}`` writes them (``wait=1``, ``wait=0.5``).

    Args:
        name: The route.
        query: Query parameters, among those the route takes.
        params: Every path parameter of the route.

    Returns:
        The path from the coordinator's base URL, e.g. ``/v1/shards/7/commit``.

    Raises:
        KeyError: No such route.
        InvalidInputError: Missing, extra or ill-typed parameters.
    """
    spec = _BY_NAME[name]
    kinds = spec.params
    if set(params) != set(kinds):
        raise InvalidInputError(f"route {name} takes {sorted(kinds)}, not {sorted(params)}")
    for key, value in params.items():
        wanted = int if kinds[key] == "int" else str
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise InvalidInputError(f"route {name}: {key} must be {wanted.__name__}")
    path = _PARAM.sub(lambda found: str(params[found.group(1)]), spec.path)
    if not query:
        return path
    if not set(query) <= set(spec.query):
        raise InvalidInputError(
            f"route {name} takes no query {sorted(set(query) - set(spec.query))}"
        )
    return path + "?" + "&".join(f"{k}={_query_value(v)}" for k, v in query.items())


def _query_value(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def openapi_path(spec: Route) -> str:
    """The route's path as OpenAPI writes it (``{name}``, without Starlette's convertor)."""
    return _PARAM.sub(lambda found: "{" + found.group(1) + "}", spec.path)


# ---- the OpenAPI document ---------------------------------------------------------------------

_REF = "#/components/schemas/{name}"
_SIGNED: list[dict[str, list[str]]] = [{"ramnetSignature": []}]
_ERRORS = {
    "400": "Malformed request (a body that is not its message, bad parameters, bad headers)",
    "401": "Unsigned or badly signed request",
    "409": "Replayed nonce, or a state conflict",
    "413": "Body too large",
}
_OTHER_ERRORS = (
    "Any other refusal or failure: 402 the payer's balance is short, 403 a banned node, "
    "404 no such job, shard or dispute, 500 a failure of the coordinator"
)
_WAIT_PARAMETER = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Seconds to hold the request while there is nothing new to answer (a long "
    "poll; the coordinator caps it)",
    "schema": {"type": "number", "minimum": 0, "default": 0},
}
_SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-Ramnet-Signature",
    "description": "Ed25519 over method, path, body hash, nonce and timestamp "
    "(X-Ramnet-Node, X-Ramnet-Nonce, X-Ramnet-Timestamp); a reveal may be signed "
    "over its shard's commitment ('commitment:' + hex) instead of its body hash",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _content(body: Json | Wire) -> dict[str, Any]:
    if isinstance(body, Json):
        return {JSON_CONTENT_TYPE: {"schema": _ref(body.name)}}
    # The container is binary; its metadata's schema rides along as an extension.
    binary = {"type": "string", "format": "binary"}
    return {WIRE_CONTENT_TYPE: {"schema": binary, "x-ramnet-metadata": _ref(body.name)}}


def _required(body: Json | Wire) -> bool:
    # An empty JSON body stands for {}: it is required only if its message has required fields.
    import msgspec

    if isinstance(body, Wire):
        return True
    return any(f.required for f in msgspec.structs.fields(body.message))


def _operation(spec: Route) -> dict[str, Any]:
    error = {JSON_CONTENT_TYPE: {"schema": _ref("ErrorReply")}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _content(spec.reply)}}
    if spec.signed:
        for status, description in _ERRORS.items():
            responses[status] = {"description": description, "content": error}
    responses["default"] = {"description": _OTHER_ERRORS, "content": error}
    operation: dict[str, Any] = {"operationId": spec.name, "summary": spec.summary}
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if kind == "int" else "string"},
        }
        for name, kind in spec.params.items()
    ]
    parameters += [_WAIT_PARAMETER for name in spec.query if name == "wait"]
    if parameters:
        operation["parameters"] = parameters
    if spec.signed:
        operation["security"] = _SIGNED
    if spec.request is not None:
        operation["requestBody"] = {
            "required": _required(spec.request),
            "content": _content(spec.request),
        }
    operation["responses"] = responses
    return operation


def _messages() -> list[type[msgspec.Struct]]:
    names = ["ErrorReply"]
    for spec in ROUTES:
        names += [body.name for body in (spec.request, spec.reply) if body is not None]
    return [_message(name) for name in dict.fromkeys(names)]


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API: every route of ``ROUTES``, with the schema of
    every message (``#/components/schemas/...``)."""
    import msgspec

    paths: dict[str, Any] = {}
    for spec in ROUTES:
        paths.setdefault(openapi_path(spec), {})[spec.method.lower()] = _operation(spec)
    _, schemas = msgspec.json.schema_components(_messages(), ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "RAMNET coordinator", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"ramnetSignature": _SECURITY_SCHEME},
        },
    }
