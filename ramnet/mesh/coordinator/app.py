"""The coordinator's Starlette app: the routes in front of ``Coordinator``, wire replies, and the
uvicorn protocol that reads wire uploads in place."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ramnet._errors import InvalidInputError, RamnetError
from ramnet.mesh.coordinator.service import MAX_WAIT, Coordinator
from ramnet.mesh.protocol import routes as _api
from ramnet.mesh.protocol.auth import AuthError, asgi_target, body_digest
from ramnet.mesh.protocol.wire import (
    WIRE_CONTENT_TYPE,
    WireFormatError,
    is_wire,
    pack_parts,
    unpack,
)
from ramnet.mesh.state.errors import (
    DeadlinePassedError,
    NodeBannedError,
    NotFoundError,
    ShardStateError,
    StoreConflictError,
)
from ramnet.mesh.state.ledger import InsufficientFundsError, LedgerConflictError
from ramnet.mesh.transport.buffers import receive_buffer
from ramnet.mesh.transport.server import (
    BadLength,
    BodyTooLarge,
    direct_http_protocol,
    parts_response,
    read_body,
)


def body_buffer(content_type: str | None, length: int) -> Any:
    """The buffer a body of ``length`` bytes is read into: a wire body is parsed in place, and in
    a coordinator that keeps freed memory need not be zeroed first (``receive_buffer``)."""
    return receive_buffer(length) if is_wire(content_type) else bytearray(length)


def http_protocol(max_body: int) -> Any:
    """uvicorn's ``http`` setting for a coordinator: wire bodies (uploads, reveals) are read from
    the socket straight into the buffer they are parsed from (``direct_http_protocol``)."""
    return direct_http_protocol(
        max_body, lambda content_type, size: receive_buffer(size) if is_wire(content_type) else None
    )


def wire_response(parts: Sequence[bytes | bytearray | memoryview]) -> Any:
    """A Starlette response that sends the wire body ``parts`` (``pack_parts``) without copying
    it whole."""
    return parts_response(parts, WIRE_CONTENT_TYPE)


def _status_of(exc: Exception) -> int:
    if isinstance(exc, AuthError):
        return exc.http_status
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, InsufficientFundsError):
        return 402
    if isinstance(exc, NodeBannedError):
        return 403
    if isinstance(
        exc, ShardStateError | StoreConflictError | DeadlinePassedError | LedgerConflictError
    ):
        return 409
    if isinstance(exc, WireFormatError | InvalidInputError):
        return 400
    return 500


def create_app(coordinator: Coordinator) -> Any:
    """The Starlette application serving ``coordinator``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    max_body = coordinator.config.max_body

    def wire(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Response:
        # Sent piece by piece, straight from the arrays: one 64 MiB body handed to uvicorn whole
        # is copied into the transport's buffer first (and packing it is one more copy).
        return wire_response(pack_parts(meta, arrays))  # type: ignore[no-any-return]

    def authenticate(request: Request, body: bytes, binding: Any = None) -> str:
        # A route with a binding (a reveal) is first checked as signed over what binds its body
        # (its commitment), without hashing the body; a node that signed the body itself is
        # checked as any other request.
        bound = binding(request) if binding is not None else None
        if bound is not None:
            try:
                return coordinator.authenticate(
                    request.method, asgi_target(request.scope), request.headers, body, bound
                )
            except AuthError as exc:
                if exc.http_status != 401:  # malformed or replayed: that is the answer
                    raise
        # The body's hash serves twice: the signature covers it, and it names the body if the
        # body is stored (a shard's result).
        request.state.body_hash = body_digest(body)
        return coordinator.authenticate(
            request.method,
            asgi_target(request.scope),
            request.headers,
            body,
            request.state.body_hash,
        )

    def checked(fn: Any, signed: bool, binding: Any, request: Request, body: bytes) -> Any:
        node = authenticate(request, body, binding) if signed else None
        return fn(node, request, body)

    def handler(fn: Any, *, signed: bool = True, binding: Any = None) -> Any:
        # ``binding(request)``: what the request's signature may cover instead of its body's
        # hash (``Coordinator.reveal_binding``), or None.
        async def endpoint(request: Request) -> Response:
            try:
                body = await read_body(request, max_body, body_buffer)
                request.state.body_hash = None
                # One trip to a worker thread for both: each trip costs the event loop a wake-up.
                out = await run_in_threadpool(checked, fn, signed, binding, request, body)
            except BodyTooLarge:
                return JSONResponse({"error": f"body over {max_body} bytes"}, status_code=413)
            except BadLength:
                return JSONResponse(
                    {"error": "body length differs from its Content-Length"}, status_code=400
                )
            except RamnetError as exc:
                return JSONResponse({"error": str(exc)}, status_code=_status_of(exc))
            except Exception as exc:  # a bug: say so in one line, keep serving
                return JSONResponse(
                    {"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500
                )
            if isinstance(out, Response):
                return out
            return JSONResponse(out)

        return endpoint

    def json_body(body: bytes) -> dict[str, Any]:
        try:
            # json.loads takes no memoryview (a body sent as wire but holding JSON).
            value = json.loads((bytes(body) if isinstance(body, memoryview) else body) or b"{}")
        except ValueError as exc:
            raise InvalidInputError(f"the body is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise InvalidInputError("the body must be a JSON object")
        return value

    def wire_body(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return unpack(body, max_bytes=max_body)

    def reveal_body(body: bytes, request: Request) -> dict[str, np.ndarray]:
        # A reveal's metadata names its shard and nothing else: a reveal signed over its
        # commitment does not sign the metadata, and the container is stored as it came.
        meta, arrays = wire_body(body)
        if meta not in ({}, {"shard_id": request.path_params["shard_id"]}):
            raise InvalidInputError("a reveal's metadata is {'shard_id': its shard} or nothing")
        return arrays

    def wait_of(request: Request) -> float:
        raw = request.query_params.get("wait", "0")
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInputError(f"wait must be a number of seconds, got {raw!r}") from None
        if not 0 <= value <= MAX_WAIT:
            raise InvalidInputError(f"wait must be between 0 and {MAX_WAIT:g} seconds")
        return value

    routes = [
        Route(_api.HEALTH, handler(lambda n, r, b: {"status": "ok"}, signed=False)),
        Route(_api.OPENAPI, handler(lambda n, r, b: _api.openapi(), signed=False)),
        Route(_api.LEDGER, handler(lambda n, r, b: coordinator.ledger.show(), signed=False)),
        Route(
            _api.NODES,
            handler(lambda n, r, b: coordinator.register(n, json_body(b))),
            methods=["POST"],
        ),
        Route(
            _api.JOBS,
            handler(lambda n, r, b: coordinator.submit(n, *wire_body(b))),
            methods=["POST"],
        ),
        Route(
            "/v1/jobs/{job_id}",
            handler(lambda n, r, b: coordinator.status(r.path_params["job_id"], wait_of(r))),
        ),
        Route(
            "/v1/jobs/{job_id}/result",
            handler(lambda n, r, b: wire(*coordinator.result(r.path_params["job_id"]))),
        ),
        Route(_api.WORK, handler(lambda n, r, b: wire(*coordinator.claim(n, wait_of(r))))),
        Route(
            _api.VALIDATIONS,
            handler(lambda n, r, b: wire(*coordinator.validation(n, wait_of(r)))),
        ),
        Route(
            "/v1/validations/{dispute_id:int}/verdict",
            handler(
                lambda n, r, b: coordinator.verdict(n, r.path_params["dispute_id"], json_body(b))
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/shards/{shard_id}",
            handler(
                lambda n, r, b: coordinator.shard_view(n, r.path_params["shard_id"], wait_of(r))
            ),
        ),
        Route(
            "/v1/shards/{shard_id}/commit",
            handler(lambda n, r, b: coordinator.commit(n, r.path_params["shard_id"], json_body(b))),
            methods=["POST"],
        ),
        Route(
            "/v1/shards/{shard_id}/release",
            handler(lambda n, r, b: coordinator.release(n, r.path_params["shard_id"])),
            methods=["POST"],
        ),
        Route(
            "/v1/shards/{shard_id}/result",
            handler(
                lambda n, r, b: coordinator.submit_result(
                    n, r.path_params["shard_id"], wire_body(b)[1], b, r.state.body_hash
                )
            ),
            methods=["POST"],
        ),
        Route(_api.AUDITS, handler(lambda n, r, b: wire(*coordinator.audit(n, wait_of(r))))),
        Route(
            "/v1/audits/{job_id}/report",
            handler(
                lambda n, r, b: coordinator.audit_report(n, r.path_params["job_id"], json_body(b))
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/shards/{shard_id}/reveal",
            handler(
                lambda n, r, b: coordinator.reveal(
                    n, r.path_params["shard_id"], reveal_body(b, r), b, r.state.body_hash
                ),
                binding=lambda r: coordinator.reveal_binding(r.path_params["shard_id"]),
            ),
            methods=["POST"],
        ),
    ]
    return Starlette(routes=routes)
