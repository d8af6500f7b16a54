"""The ``ramnet ui`` web application: Starlette, Jinja2 pages, htmx and server-sent events.

Pages: run a job (sovereign or mesh), verify a trace, the node's identity and payout binding,
and lending this machine as a mesh worker. Every long piece of work runs in a task's thread
(``tasks.py``); the page follows it over server-sent events and never waits on a request.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ramnet._errors import RamnetError
from ramnet.ui import forms, jobs
from ramnet.ui.forms import FieldError, Workspace
from ramnet.ui.lending import LocalWorker, WorkerOptions, read_ledger
from ramnet.ui.runners import Runners
from ramnet.ui.tasks import Task, Tasks
from ramnet.ui.wallet import Identity

TEMPLATES = Path(__file__).with_name("templates")
ASSETS = Path(__file__).with_name("assets")
#: The UI's own front-end files (``/assets/...``): only these are served.
UI_ASSETS = {"ui.js": "text/javascript; charset=utf-8", "ui.css": "text/css; charset=utf-8"}
#: Seconds between checks of a followed task, and between keep-alive comments.
FOLLOW_S = 0.2
KEEP_ALIVE_S = 15.0
#: Seconds between the lend page's looks at the worker and the coordinator's ledger.
LEND_POLL_S = 1.0


@dataclass
class UiConfig:
    """What one UI serves.

    Attributes:
        runners: The runners of ``ramnet run`` (see ``runners.py``).
        work_dir: Where jobs' files and uploads go (one folder per job).
        key_file: The node key that signs traces and mesh requests, and is bound to a wallet.
        ramnet_argv: How to start ``ramnet`` for the lent worker.
        coordinator: The coordinator URL the forms start with.
        allowed_hosts: ``Host`` values the UI answers to (None: any; see ``security.py``).
        worker_key_file: The lent worker's own key (default: ``worker.key`` in ``work_dir``).
    """

    runners: Runners
    work_dir: Path
    key_file: Path
    ramnet_argv: list[str]
    coordinator: str = "http://127.0.0.1:9000"
    allowed_hosts: frozenset[str] | None = None
    worker_key_file: Path | None = None


def describe(exc: BaseException) -> str:
    """A task's failure in one line: RAMNET's own message, or the exception's kind and text."""
    if isinstance(exc, RamnetError):
        return str(exc)
    if isinstance(exc, TimeoutError | OSError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


class Ui:
    """The application's state and its request handlers.

    Args:
        config: What it serves.
    """

    def __init__(self, config: UiConfig) -> None:
        import jinja2

        self.config = config
        self.tasks = Tasks(describe)
        self.identity = Identity(config.key_file)
        self.worker = LocalWorker(config.ramnet_argv)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["seconds"] = lambda s: "-" if s is None else f"{float(s):.3f} s"

    # ---- rendering ---------------------------------------------------------------------------

    def render(self, name: str, request: Any, /, http_status: int = 200, **context: Any) -> Any:
        """A template as an HTML response (``mode`` and the current path always available)."""
        from starlette.responses import HTMLResponse

        return HTMLResponse(self.html(name, request, **context), status_code=http_status)

    def html(self, name: str, request: Any, /, **context: Any) -> str:
        """A template rendered to text."""
        base = {"mode": self.mode(request), "path": request.url.path, "errors": {}, "values": {}}
        return self.env.get_template(name).render({**base, **context})

    @staticmethod
    def mode(request: Any) -> str:
        """The Sovereign / Mesh switch's position (a cookie; sovereign by default)."""
        mode = request.cookies.get("ramnet_mode", "sovereign")
        return mode if mode in forms.MODES else "sovereign"

    @staticmethod
    def partial(request: Any) -> bool:
        """Whether htmx asked (it swaps a fragment) rather than a plain form post."""
        return bool(request.headers.get("hx-request") == "true")

    def form_error(
        self, request: Any, whole: str, fragment: str, exc: FieldError, /, **ctx: Any
    ) -> Any:
        """A form shown again with one sentence next to the field that caused it."""
        errors = {exc.field: str(exc)}
        if self.partial(request):
            response = self.render(fragment, request, errors=errors, **ctx)
            response.headers["HX-Retarget"] = ctx.get("target", "closest form")
            response.headers["HX-Reswap"] = "outerHTML"
            return response
        return self.render(whole, request, http_status=400, errors=errors, **ctx)

    # ---- the switch, static files ----------------------------------------------------------------

    async def set_mode(self, request: Any) -> Any:
        from starlette.responses import RedirectResponse

        form = await request.form()
        mode = forms.text(form, "mode")
        back = forms.text(form, "next") or "/run"
        if not back.startswith("/") or back.startswith("//"):
            back = "/run"
        response = RedirectResponse(back, status_code=303)
        if mode in forms.MODES:
            response.set_cookie("ramnet_mode", mode, samesite="strict", httponly=True)
        return response

    async def static(self, request: Any) -> Any:
        from starlette.responses import Response

        from ramnet._static import UnknownAssetError, asset, content_type

        name = request.path_params["name"]
        try:
            body, kind = asset(name), content_type(name)
        except UnknownAssetError:
            return Response("no such file\n", status_code=404, media_type="text/plain")
        return Response(body, media_type=kind, headers={"cache-control": "max-age=3600"})

    async def ui_asset(self, request: Any) -> Any:
        from starlette.responses import FileResponse, Response

        name = request.path_params["name"]
        if name not in UI_ASSETS:
            return Response("no such file\n", status_code=404, media_type="text/plain")
        return FileResponse(ASSETS / name, media_type=UI_ASSETS[name])

    # ---- run -------------------------------------------------------------------------------------

    def run_context(self, request: Any, values: Any = None) -> dict[str, Any]:
        return {
            "values": dict(values or {}),
            "dtypes": forms.DTYPES,
            "default_coordinator": self.config.coordinator,
            "page": "run",
        }

    async def run_page(self, request: Any) -> Any:
        return self.render("run.html", request, **self.run_context(request))

    async def run_submit(self, request: Any) -> Any:
        space = Workspace(self._new_folder("jobs"))
        values, uploads = await self._read_form(request, space.folder, ("a_file", "b_file"))
        mode = forms.text(values, "mode") or self.mode(request)
        ctx = {**self.run_context(request, values), "mode": mode, "target": "#run-form"}
        try:
            if mode == "mesh":
                mesh = forms.mesh_request(values, uploads, space)
                task = self.tasks.start(
                    "mesh", lambda t: jobs.run_mesh(t, self.config.runners, mesh)
                )
            else:
                sovereign = forms.sovereign_request(values, uploads, space)
                task = self.tasks.start(
                    "sovereign", lambda t: jobs.run_sovereign(t, self.config.runners, sovereign)
                )
        except FieldError as exc:
            shutil.rmtree(space.folder, ignore_errors=True)
            return self.form_error(request, "run.html", "_run_form.html", exc, **ctx)
        return self._task_started(request, task, "_run_form.html", ctx)

    def _task_started(self, request: Any, task: Task, form: str, ctx: dict[str, Any]) -> Any:
        from starlette.responses import HTMLResponse, RedirectResponse

        if not self.partial(request):
            return RedirectResponse(f"/tasks/{task.task_id}", status_code=303)
        # The task's panel, and the form again without its old errors (out of band).
        panel = self.html("_task.html", request, task=task)
        fresh = self.html(form, request, oob=True, **ctx)
        return HTMLResponse(panel + fresh)

    async def task_page(self, request: Any) -> Any:
        task = self._task(request)
        if task is None:
            return self.render("missing.html", request, http_status=404)
        return self.render("task.html", request, task=task, page="run")

    def _task(self, request: Any) -> Task | None:
        return self.tasks.get(request.path_params["task_id"])

    async def task_events(self, request: Any) -> Any:
        from starlette.responses import Response, StreamingResponse

        task = self._task(request)
        if task is None:
            return Response("no such task\n", status_code=404, media_type="text/plain")
        return StreamingResponse(
            self._follow(request, task),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def _follow(self, request: Any, task: Task) -> AsyncIterator[str]:
        seen, quiet = -1, 0.0
        while True:
            if task.version != seen:
                seen = task.version
                yield sse("progress", self.html("_progress.html", request, task=task))
                if task.finished:
                    yield sse("done", self.html("_result.html", request, task=task))
                    break
                quiet = 0.0
            await asyncio.sleep(FOLLOW_S)
            quiet += FOLLOW_S
            if quiet >= KEEP_ALIVE_S:
                quiet = 0.0
                yield ": still working\n\n"
        # The page closes the stream on "done"; until it does, stay open (an ended stream would
        # make the browser connect again).
        while True:
            await asyncio.sleep(KEEP_ALIVE_S)
            yield ": done\n\n"

    async def task_file(self, request: Any) -> Any:
        from starlette.responses import FileResponse, Response

        task = self._task(request)
        name = request.path_params["name"]
        path = None if task is None else task.files.get(name)
        if task is None or path is None or not Path(path).is_file():
            return Response("no such file\n", status_code=404, media_type="text/plain")
        stem = "C" if name == "c" else name
        filename = f"{stem}-{task.task_id[:8]}{Path(path).suffix}"
        return FileResponse(path, filename=filename, media_type="application/octet-stream")

    # ---- verify ----------------------------------------------------------------------------------

    async def verify_page(self, request: Any) -> Any:
        return self.render("verify.html", request, page="verify")

    async def verify_submit(self, request: Any) -> Any:
        folder = self._new_folder("uploads")
        names = ("trace_file", "a_file", "b_file", "c_file")
        values, uploads = await self._read_form(request, folder, names)
        ctx = {"values": dict(values), "page": "verify", "target": "#verify-form"}
        trace = uploads.get("trace_file")
        if trace is None:
            shutil.rmtree(folder, ignore_errors=True)
            exc = FieldError("trace_file", "Choose the trace file (trace.bin) to verify.")
            return self.form_error(request, "verify.html", "_verify_form.html", exc, **ctx)
        a, b, c = (uploads.get(n) for n in names[1:])
        task = self.tasks.start("verify", lambda t: jobs.verify_files(t, trace, a, b, c))
        return self._task_started(request, task, "_verify_form.html", ctx)

    # ---- identity --------------------------------------------------------------------------------

    def identity_context(self) -> dict[str, Any]:
        try:
            node_id, key_error = self.identity.node_id(), None
        except RamnetError as exc:
            node_id, key_error = None, str(exc)
        return {
            "page": "identity",
            "node_id": node_id,
            "key_error": key_error,
            "key_file": str(self.identity.key_file),
            "binding": self.identity.binding(),
            "binding_file": str(self.identity.binding_file),
        }

    async def identity_page(self, request: Any) -> Any:
        return self.render("identity.html", request, **self.identity_context())

    async def identity_key(self, request: Any) -> Any:
        from starlette.responses import RedirectResponse

        try:
            await asyncio.to_thread(self.identity.create_key)
        except RamnetError as exc:
            ctx = {**self.identity_context(), "key_error": str(exc)}
            return self.render("identity.html", request, http_status=400, **ctx)
        return RedirectResponse("/identity", status_code=303)

    async def identity_prepare(self, request: Any) -> Any:
        form = await request.form()
        address = forms.text(form, "payout_address")
        ctx = {**self.identity_context(), "values": {"payout_address": address}}
        try:
            token, typed = self.identity.prepare(address)
        except FieldError as exc:
            ctx["target"] = "#bind-form"
            return self.form_error(request, "identity.html", "_bind_form.html", exc, **ctx)
        ctx.update(token=token, typed=typed)
        if self.partial(request):
            return self.render("_sign.html", request, **ctx)
        return self.render("identity.html", request, **ctx)

    async def identity_bind(self, request: Any) -> Any:
        form = await request.form()
        token = forms.text(form, "token")
        signature = forms.text(form, "signature")
        ctx = self.identity_context()
        try:
            found = await asyncio.to_thread(self.identity.bind, token, signature)
        except FieldError as exc:
            typed = self.identity.pending(token)
            ctx.update(
                token=token, typed=typed, values={"signature": signature}, target="#sign-panel"
            )
            return self.form_error(request, "identity.html", "_sign.html", exc, **ctx)
        except RamnetError as exc:
            ctx.update(target="#sign-panel")
            err = FieldError("form", str(exc))
            return self.form_error(request, "identity.html", "_sign.html", err, **ctx)
        ctx["binding"] = found
        if self.partial(request):
            return self.render("_bound.html", request, bound_now=True, **ctx)
        return self.render("identity.html", request, bound_now=True, **ctx)

    # ---- lend ------------------------------------------------------------------------------------

    def lend_context(self, values: Any = None) -> dict[str, Any]:
        options = self.worker.options
        default_key = self.config.worker_key_file or self.config.work_dir / "worker.key"
        shown = dict(values or {})
        if not shown and options is not None:
            shown = {
                "coordinator": options.coordinator,
                "bond": str(options.bond),
                "validator": "on" if options.validator else "",
                "key_file": str(options.key_file),
                "binding": str(options.binding or ""),
            }
        shown.setdefault("coordinator", self.config.coordinator)
        shown.setdefault("bond", "100")
        shown.setdefault("key_file", str(default_key))
        return {"page": "lend", "values": shown, "status": self.worker.status()}

    async def lend_page(self, request: Any) -> Any:
        return self.render("lend.html", request, **self.lend_context())

    async def lend_start(self, request: Any) -> Any:
        form = await request.form()
        ctx = {**self.lend_context(form), "target": "#lend-form"}
        try:
            options = parse_worker(form)
            # Started from the server's event loop thread, which lives as long as the UI (the
            # worker's PR_SET_PDEATHSIG follows the thread that started it).
            self.worker.start(options)
        except FieldError as exc:
            return self.form_error(request, "lend.html", "_lend_form.html", exc, **ctx)
        except RamnetError as exc:
            err = FieldError("form", str(exc))
            return self.form_error(request, "lend.html", "_lend_form.html", err, **ctx)
        return self._lend_reply(request)

    async def lend_stop(self, request: Any) -> Any:
        await asyncio.to_thread(self.worker.stop)
        return self._lend_reply(request)

    def _lend_reply(self, request: Any) -> Any:
        from starlette.responses import RedirectResponse

        if self.partial(request):
            return self.render("_lend_form.html", request, **self.lend_context())
        return RedirectResponse("/lend", status_code=303)

    async def lend_events(self, request: Any) -> Any:
        from starlette.responses import StreamingResponse

        return StreamingResponse(
            self._watch_worker(request),
            media_type="text/event-stream",
            headers={"cache-control": "no-store"},
        )

    async def _watch_worker(self, request: Any) -> AsyncIterator[str]:
        last, quiet = "", 0.0
        while True:
            ledger, ledger_error = None, None
            options = self.worker.options
            if options is not None:
                try:
                    ledger = await asyncio.to_thread(read_ledger, options.coordinator)
                except RamnetError as exc:
                    ledger_error = str(exc)
            status = self.worker.status(ledger)
            html = self.html("_lend_status.html", request, status=status, ledger_error=ledger_error)
            if html != last or quiet >= KEEP_ALIVE_S:
                last, quiet = html, 0.0
                yield sse("status", html)
            await asyncio.sleep(LEND_POLL_S)
            quiet += LEND_POLL_S

    # ---- helpers ---------------------------------------------------------------------------------

    def _new_folder(self, kind: str) -> Path:
        import os
        import time

        name = time.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()
        folder = self.config.work_dir / kind / name
        folder.mkdir(parents=True, exist_ok=False)
        return folder

    async def _read_form(
        self, request: Any, folder: Path, file_fields: tuple[str, ...]
    ) -> tuple[dict[str, str], dict[str, Path | None]]:
        """The form's text fields, and its uploads saved into ``folder`` (``A.npy``, ...)."""
        from starlette.datastructures import UploadFile

        async with request.form(max_files=len(file_fields), max_fields=64) as form:
            values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            uploads: dict[str, Path | None] = {}
            for name in file_fields:
                upload = form.get(name)
                if not isinstance(upload, UploadFile) or not upload.filename:
                    uploads[name] = None
                    continue
                target = folder / _upload_name(name, upload.filename)
                await asyncio.to_thread(_copy, upload.file, target)
                uploads[name] = target
        return values, uploads


def parse_worker(form: Any) -> WorkerOptions:
    """The lend form's worker options.

    Raises:
        FieldError: The first mistake.
    """
    import re

    coordinator = forms.text(form, "coordinator")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", coordinator):
        raise FieldError(
            "coordinator", "The coordinator must be a URL such as http://127.0.0.1:9000."
        )
    bond = forms.integer(form, "bond", "The bond", 100, 0)
    key_file = forms.text(form, "key_file")
    if not key_file:
        raise FieldError("key_file", "Give the worker's own key file (created if missing).")
    threads_raw = forms.text(form, "threads")
    threads = forms.integer(form, "threads", "Threads", 1, 1) if threads_raw else None
    binding = forms.text(form, "binding")
    return WorkerOptions(
        coordinator=coordinator.rstrip("/"),
        bond=bond,
        validator=forms.checked(form, "validator"),
        key_file=Path(key_file).expanduser(),
        threads=threads,
        binding=Path(binding).expanduser() if binding else None,
    )


def _upload_name(field: str, filename: str) -> str:
    # The saved name comes from the field, never from the client's file name (no path tricks).
    stem = field.removesuffix("_file")
    suffix = ".bin" if stem == "trace" else ".npy"
    return ("trace" if stem == "trace" else stem.upper()) + suffix


def _copy(source: Any, target: Path) -> None:
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def sse(event: str, html: str) -> str:
    """One server-sent event whose data is ``html`` (each line its own ``data:`` field)."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


def create_app(config: UiConfig) -> Any:
    """Build the UI's Starlette application.

    Args:
        config: What it serves.

    Returns:
        The Starlette application (behind ``security.LocalOnly``); its ``state.ui`` is the
        ``Ui`` (``state.ui.worker.close()`` stops a lent worker).
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    from ramnet.ui.security import LocalOnly

    ui = Ui(config)

    async def home(request: Any) -> Any:
        return RedirectResponse("/run", status_code=307)

    routes = [
        Route("/", home),
        Route("/mode", ui.set_mode, methods=["POST"]),
        Route("/static/{name:path}", ui.static),
        Route("/assets/{name}", ui.ui_asset),
        Route("/run", ui.run_page),
        Route("/run", ui.run_submit, methods=["POST"]),
        Route("/tasks/{task_id}", ui.task_page),
        Route("/tasks/{task_id}/events", ui.task_events),
        Route("/tasks/{task_id}/files/{name}", ui.task_file),
        Route("/verify", ui.verify_page),
        Route("/verify", ui.verify_submit, methods=["POST"]),
        Route("/identity", ui.identity_page),
        Route("/identity/key", ui.identity_key, methods=["POST"]),
        Route("/identity/prepare", ui.identity_prepare, methods=["POST"]),
        Route("/identity/bind", ui.identity_bind, methods=["POST"]),
        Route("/lend", ui.lend_page),
        Route("/lend/start", ui.lend_start, methods=["POST"]),
        Route("/lend/stop", ui.lend_stop, methods=["POST"]),
        Route("/lend/events", ui.lend_events),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(LocalOnly, hosts=config.allowed_hosts)])
    app.state.ui = ui
    return app


__all__ = ["Ui", "UiConfig", "create_app", "describe", "sse"]
