"""The dashboard's Starlette routes, one per page of ``protocol.routes.PAGES``: the main page,
one job's page, the stream of server-sent events, and the static files (``ramnet._static`` and
the dashboard's own script).

Public and read-only: a page is a GET that no node signs (``Admission.check_page``) and that
changes nothing. Every reply carries a Content-Security-Policy that lets a page load only from
the coordinator itself (no other host, no inline script, no eval).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from ramnet import _static
from ramnet._errors import RamnetError
from ramnet.mesh.coordinator.admission import Admission
from ramnet.mesh.coordinator.dashboard.feed import Feed, Sections
from ramnet.mesh.coordinator.dashboard.render import (
    JOB_SECTIONS,
    MAIN_SECTIONS,
    SectionCache,
    patch,
    render_page,
    warm_up,
)
from ramnet.mesh.coordinator.dashboard.view import Reader
from ramnet.mesh.protocol.routes import PAGES, Page

__all__ = ["CSP", "dashboard_routes"]

#: What a dashboard page may load: its own origin only. uPlot sets element styles from script
#: (allowed: they are not inline ``<style>``); htmx's own style is turned off in the page.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
#: The dashboard's own files, beside the shared assets.
_OWN = {"dashboard.js": "text/javascript; charset=utf-8"}
_HTML = "text/html; charset=utf-8"


def _own_asset(name: str) -> bytes:
    return resources.files(__package__ or __name__).joinpath("static", name).read_bytes()


def dashboard_routes(
    reader: Reader,
    admission: Admission,
    on_error: Callable[[Exception, str], Any],
    stopping: threading.Event | None = None,
) -> list[Any]:
    """The Starlette routes of every page of ``PAGES``.

    Args:
        reader: Reads the coordinator's state.
        admission: The coordinator's checks of a request's headers.
        on_error: (exception, ``METHOD /path``) -> the error reply (the API's one handler).
        stopping: Set when the server stops: the event streams end.

    Returns:
        ``starlette.routing.Route`` objects.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    sections = SectionCache()
    # The main page's context last rendered for the streams: the next render reads again only
    # what changed since (the feed renders one view at a time).
    last: dict[str, Any] = {}

    def rendered(view: str | None) -> tuple[str, Sections]:
        if view is None:
            context = reader.overview(since=last.get("main"))
            last["main"] = context
        else:
            context = reader.job(view)
        names = MAIN_SECTIONS if view is None else JOB_SECTIONS
        return context["fingerprint"], sections.render(view, names, context)

    feed = Feed(
        reader.fingerprint,
        rendered,
        run_in_threadpool,
        stopping=stopping,
        patch=patch,
        watch=reader.data_version,
    )
    threading.Thread(target=warm_up, name="dashboard-warm-up", daemon=True).start()

    def html(text: str) -> Any:
        return Response(text, media_type=_HTML, headers={**_HEADERS, "cache-control": "no-store"})

    def main_page() -> Any:
        return html(render_page("dashboard.html", reader.overview()))

    def job_page(job_id: str) -> Any:
        return html(render_page("job.html", reader.job(job_id)))

    async def guarded(request: Request, serve: Callable[[], Any]) -> Any:
        try:
            admission.check_page(request.scope["headers"])
            return await run_in_threadpool(serve)
        except RamnetError as exc:
            if exc.http_status >= 500:  # the coordinator failed: logged as the API's are
                return on_error(exc, f"{request.method} {request.url.path}")
            # A person's mistake (no such job, a bad id): one sentence on a page.
            page = render_page("error.html", {"status": exc.http_status, "message": str(exc)})
            reply = html(page)
            reply.status_code = exc.http_status
            return reply
        except Exception as exc:  # a bug: the API's one handler logs it and answers 500
            return on_error(exc, f"{request.method} {request.url.path}")

    async def dashboard(request: Request) -> Any:
        return await guarded(request, main_page)

    async def dashboard_job(request: Request) -> Any:
        return await guarded(request, lambda: job_page(str(request.path_params["job_id"])))

    async def dashboard_events(request: Request) -> Any:
        job = request.query_params.get("job")

        def check() -> None:
            if job is not None:
                reader.job(job)  # a job that does not exist is a 404 now, not a silent stream

        refused = await guarded(request, check)
        if refused is not None:
            return refused
        since = request.headers.get("last-event-id") or request.query_params.get("since")
        return StreamingResponse(
            feed.stream(job, since),
            media_type="text/event-stream",
            headers={**_HEADERS, "cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def dashboard_static(request: Request) -> Any:
        name = str(request.path_params["name"])

        def asset() -> Any:
            if name in _OWN:
                body, kind = _own_asset(name), _OWN[name]
            else:
                body, kind = _static.asset(name), _static.content_type(name)
            return Response(
                body, media_type=kind, headers={**_HEADERS, "cache-control": "max-age=3600"}
            )

        return await guarded(request, asset)

    endpoints = {
        "dashboard": dashboard,
        "dashboard_job": dashboard_job,
        "dashboard_events": dashboard_events,
        "dashboard_static": dashboard_static,
    }
    missing = {p.name for p in PAGES} ^ set(endpoints)
    if missing:  # a page without an endpoint, or an endpoint without a page: a bug
        raise RamnetError(f"dashboard pages and endpoints differ: {sorted(missing)}")
    return [_route(Route, page, endpoints[page.name]) for page in PAGES]


def _route(route_type: Any, page: Page, endpoint: Any) -> Any:
    return route_type(page.path, endpoint, methods=["GET"], name=page.name)
