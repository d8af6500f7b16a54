"""The coordinator's Starlette app: the route table (``protocol.routes``) in front of
``Coordinator``, typed bodies, one error handler, and the uvicorn protocol that reads wire uploads
in place."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import numpy as np

from ramnet._errors import InvalidInputError, RamnetError
from ramnet.mesh.coordinator.admission import Admission
from ramnet.mesh.coordinator.payouts import with_payouts
from ramnet.mesh.coordinator.service import MAX_WAIT, Coordinator
from ramnet.mesh.protocol import messages as m
from ramnet.mesh.protocol import routes as _api
from ramnet.mesh.protocol.auth import HEADER_NODE, AuthError, asgi_target, body_digest
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE, is_wire, pack_parts, unpack
from ramnet.mesh.transport.buffers import receive_buffer
from ramnet.mesh.transport.server import direct_http_protocol, parts_response, read_body


def body_buffer(content_type: str | None, length: int) -> Any:
    """The buffer a body of ``length`` bytes is read into, or None to join its pieces (JSON): a
    wire body is parsed in place, from a mapping that takes memory only as its bytes arrive
    (``receive_buffer``), since ``length`` is only what the client declared."""
    return receive_buffer(length, populate=False) if is_wire(content_type) else None


def http_protocol(max_body: int, admission: Admission | None = None) -> Any:
    """uvicorn's ``http`` setting for a coordinator: wire bodies (uploads, reveals) are read from
    the socket straight into the buffer they are parsed from (``direct_http_protocol``), once
    ``admission`` (when given) admits the request from its headers."""
    return direct_http_protocol(
        max_body,
        lambda content_type, size: body_buffer(content_type, size),
        None if admission is None else admission.admits,
    )


def wire_response(parts: Sequence[bytes | bytearray | memoryview]) -> Any:
    """A Starlette response that sends the wire body ``parts`` (``pack_parts``) without copying
    it whole."""
    return parts_response(parts, WIRE_CONTENT_TYPE)


MessageT = TypeVar("MessageT", bound=msgspec.Struct)


@dataclass
class Call:
    """One request, checked and decoded: what a route's handler works from.

    Attributes:
        node: The signing node (None on an unsigned route).
        params: The path parameters.
        wait: The long poll's seconds (0 where the route takes none).
        message: The JSON body, or the wire body's metadata, as the route's message (None
            without a body): what the coordinator's method takes.
        arrays: The wire body's arrays.
        body: The body's bytes.
        body_hash: The body's hash, if the signature check computed it.
    """

    node: Any
    params: Mapping[str, Any]
    wait: float = 0.0
    message: Any = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    body: Any = b""
    body_hash: str | None = None

    def message_as(self, kind: type[MessageT]) -> MessageT:
        """The decoded message, typed as the route table says it is.

        Raises:
            RamnetError: It is not a ``kind`` (a handler and its route disagree: a bug, 500).
        """
        if not isinstance(self.message, kind):
            raise RamnetError(f"expected a {kind.__name__}, got {type(self.message).__name__}")
        return self.message


Handler = Callable[[Call], Any]


def handlers(coordinator: Coordinator, document: Mapping[str, Any]) -> dict[str, Handler]:
    """What serves each route of ``protocol.routes.ROUTES``, by route name: a call of the
    coordinator's method, handed the request's typed message. A JSON route returns its reply's
    fields; a wire route returns ``(meta, arrays)``."""
    c = coordinator
    return {
        "health": lambda call: {"status": "ok"},
        "openapi": lambda call: document,
        "ledger": lambda call: with_payouts(c.ledger_watch.show(), c.store),
        "register": lambda call: c.register(call.node, call.message_as(m.RegisterRequest)),
        "submit_job": lambda call: c.submit(
            call.node, call.message_as(m.JobSubmission), call.arrays
        ),
        "job_list": lambda call: c.job_list(call.node),
        "job_status": lambda call: c.status(call.params["job_id"], call.wait),
        "job_cancel": lambda call: c.cancel(
            call.node, call.params["job_id"], call.message_as(m.CancelRequest)
        ),
        "job_result": lambda call: c.result(call.params["job_id"], reader=call.node),
        "claim": lambda call: c.claim(call.node, call.wait),
        "next_validation": lambda call: c.validation(call.node, call.wait),
        "verdict": lambda call: c.verdict(
            call.node, call.params["dispute_id"], call.message_as(m.Verdict)
        ),
        "shard_view": lambda call: c.shard_view(call.node, call.params["shard_id"], call.wait),
        "heartbeat": lambda call: c.heartbeat(call.node),
        "shard_commit": lambda call: c.commit(
            call.node, call.params["shard_id"], call.message_as(m.CommitRequest)
        ),
        "shard_release": lambda call: c.release(call.node, call.params["shard_id"]),
        "shard_reveal": lambda call: c.reveal(
            call.node, call.params["shard_id"], _partials(call), call.body, call.body_hash
        ),
        # The metadata of an unproven result is not compared with its path: it is signed with
        # the body, and never was.
        "shard_result": lambda call: c.submit_result(
            call.node, call.params["shard_id"], call.arrays, call.body, call.body_hash
        ),
        "next_audit": lambda call: c.audit(call.node, call.wait),
        "audit_report": lambda call: c.audit_report(
            call.node, call.params["job_id"], call.message_as(m.AuditReport)
        ),
    }


def _partials(call: Call) -> dict[str, np.ndarray]:
    # A reveal's metadata names its shard and nothing else: a reveal signed over its
    # commitment does not sign the metadata, and the container is stored as it came.
    named = call.message_as(m.PartialsMeta).shard_id
    if named is not msgspec.UNSET and named != call.params["shard_id"]:
        raise InvalidInputError("a reveal's metadata is {'shard_id': its shard} or nothing")
    return call.arrays


_JSON = msgspec.json.Encoder()


def json_response(message: msgspec.Struct, status: int = 200) -> Any:
    """A Starlette response carrying ``message`` as JSON."""
    from starlette.responses import Response

    return Response(_JSON.encode(message), status_code=status, media_type=_api.JSON_CONTENT_TYPE)


def error_response(exc: Exception, what: str = "", *, close: bool = False) -> Any:
    """The reply to a request that raised ``exc``: a ``RamnetError`` gets its class's (or its
    own) ``http_status``; anything else is a bug, answered 500 in one line and logged to stderr
    with its traceback. A ``RamnetError`` of 500 or more is logged too, in one line with its
    cause: the coordinator failed, and its operator must see why.

    Args:
        exc: What the request raised.
        what: The request (``METHOD /path``), for the log.
        close: Close the connection after the reply (a body was refused unread).
    """
    if isinstance(exc, RamnetError):
        status = exc.http_status
        if status >= 500:
            cause = exc.__cause__ or exc.__context__
            because = "" if cause is None else f" (cause: {type(cause).__name__}: {cause})"
            print(
                f"coordinator: {what or 'request'} failed {status}: "
                f"{type(exc).__name__}: {exc}{because}",
                file=sys.stderr,
                flush=True,
            )
        reply = json_response(m.ErrorReply(str(exc)), status)
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int):
            reply.headers["retry-after"] = str(retry_after)
    else:
        line = f"internal error: {type(exc).__name__}: {exc}"
        print(f"coordinator: {what or 'request'}: {line}", file=sys.stderr, flush=True)
        traceback.print_exception(exc, file=sys.stderr)
        reply = json_response(m.ErrorReply(line), 500)
    if close:
        reply.headers["connection"] = "close"
    return reply


def _decoder(route: _api.Route) -> Callable[[Any], Any]:
    request = route.request
    if isinstance(request, _api.Json):
        decoder = msgspec.json.Decoder(request.message)
        # An empty body stands for {} (a message with no required field, or a refusal).
        return lambda body: _checked(decoder.decode, body or b"{}", "body")
    if isinstance(request, _api.Wire):
        meta_type = request.meta
        return lambda meta: _checked(lambda v: msgspec.convert(v, meta_type), meta, "metadata")
    return lambda body: None


def _checked(decode: Callable[[Any], Any], value: Any, what: str) -> Any:
    try:
        return decode(value)
    except msgspec.ValidationError as exc:
        raise InvalidInputError(f"bad request {what}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"the request {what} is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidInputError(f"the request {what} nests too deeply") from None


def _reply_encoder(route: _api.Route) -> Callable[[Any], Any]:
    # Every reply is checked against its message before it leaves: a reply that drifted from the
    # published schema is a bug (500), not something a node has to guess about.
    reply = route.reply
    if isinstance(reply, _api.Json):
        kind = reply.message
        return lambda out: json_response(msgspec.convert(out, kind))
    meta_type = reply.meta

    def wire(out: tuple[Mapping[str, Any], Mapping[str, np.ndarray]]) -> Any:
        meta, arrays = out
        msgspec.convert(meta, meta_type)
        # Sent piece by piece, straight from the arrays: one 64 MiB body handed to uvicorn whole
        # is copied into the transport's buffer first (and packing it is one more copy). The
        # metadata goes as the coordinator made it, so its bytes are what they always were.
        return wire_response(pack_parts(meta, arrays))

    return wire


def _wait_of(request: Any) -> float:
    raw = request.query_params.get("wait", "0")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError(f"wait must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= MAX_WAIT:
        raise InvalidInputError(f"wait must be between 0 and {MAX_WAIT:g} seconds")
    return value


def _what(request: Any) -> str:
    return f"{request.method} {request.url.path}"


def create_app(coordinator: Coordinator, *, stopping: threading.Event | None = None) -> Any:
    """The Starlette application serving ``coordinator``: one route per entry of
    ``protocol.routes.ROUTES``, and one handler for every error; with the dashboard on
    (``CoordinatorConfig.dashboard``), its pages too (``protocol.routes.PAGES``, public and
    read-only), whose event streams end when ``stopping`` is set."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.exceptions import ExceptionMiddleware
    from starlette.requests import Request
    from starlette.routing import Route

    max_body = coordinator.config.max_body
    admission = Admission(coordinator.store, max_body)
    polls = coordinator.polls
    serving = handlers(coordinator, _api.openapi())
    missing = {r.name for r in _api.ROUTES} ^ set(serving)
    if missing:  # a route without a handler, or a handler without a route: a bug
        raise RamnetError(f"routes and handlers differ: {sorted(missing)}")

    def authenticate(request: Request, body: bytes, bound: str | None) -> str:
        # A route signed over what binds its body (a reveal, over its commitment) is first
        # checked that way, without hashing the body; a node that signed the body itself is
        # checked as any other request.
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

    def endpoint_for(route: _api.Route) -> Any:
        handle = serving[route.name]
        decode = _decoder(route)
        encode = _reply_encoder(route)
        wire_request = isinstance(route.request, _api.Wire)

        def prepare(request: Request, body: Any) -> Call:
            # Signature first: an unsigned request learns nothing about its body.
            node = None
            if route.signed:
                bound = None
                if route.bound:
                    bound = coordinator.reveal_binding(request.path_params["shard_id"])
                node = authenticate(request, body, bound)
            call = Call(node, request.path_params, body=body)
            call.body_hash = request.state.body_hash
            if route.query:
                call.wait = _wait_of(request)
            if wire_request:
                meta, call.arrays = unpack(body, max_bytes=max_body)
                call.message = decode(meta)
            elif route.request is not None:
                call.message = decode(body)
            return call

        def serve(request: Request, body: Any) -> Any:
            return encode(handle(prepare(request, body)))

        async def held(request: Request, body: Any, wait: float) -> Any:
            # A long poll holds one of its node's poll slots; beyond the few that wait in a
            # thread, it waits on the event loop between its checks (``Polls.hold``), which
            # (and the signature first) run in threads.
            prepared: list[Call] = []

            def attempt() -> Any:
                if not prepared:
                    prepared.append(prepare(request, body))
                return encode(handle(prepared[0]))

            with polls.slot(request.headers.get(HEADER_NODE, "")) as in_thread:
                if in_thread:  # one of the few polls that wait in a thread, as all once did
                    return await run_in_threadpool(serve, request, body)
                return await polls.hold(attempt, wait, run_in_threadpool)

        async def endpoint(request: Request) -> Any:
            try:
                admission.check(route, request.scope["headers"])
            except RamnetError as exc:
                # Answered from the headers alone; the connection closes after the reply, so
                # whatever body was declared is never read.
                return error_response(exc, _what(request), close=True)
            body = await read_body(request, admission.limit(route), body_buffer)
            request.state.body_hash = None
            if route.query and _wait_of(request) > 0:
                return await held(request, body, _wait_of(request))
            # One trip to a worker thread for all of it: each trip costs the event loop a wake-up.
            return await run_in_threadpool(serve, request, body)

        return endpoint

    async def on_error(request: Request, exc: Exception) -> Any:
        return error_response(exc, _what(request))

    routes = [Route(r.path, endpoint_for(r), methods=[r.method], name=r.name) for r in _api.ROUTES]
    if coordinator.config.dashboard:
        from ramnet.mesh.coordinator.dashboard.view import Reader
        from ramnet.mesh.coordinator.dashboard.web import dashboard_routes

        reader = Reader(coordinator.store, coordinator.ledger, coordinator.blobs)
        routes += dashboard_routes(reader, admission, error_response, stopping)
    # The handler sits in an ExceptionMiddleware of its own: handed to Starlette as the handler
    # of Exception, it would go to ServerErrorMiddleware, which answers and then raises the
    # exception again, and uvicorn would log a second traceback.
    return Starlette(
        routes=routes, middleware=[Middleware(ExceptionMiddleware, handlers={Exception: on_error})]
    )
