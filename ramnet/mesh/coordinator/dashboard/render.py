"""The dashboard's HTML: Jinja2 templates (``templates/``, autoescaping on) rendered into whole
pages and into the fragments that server-sent events swap in (one per section).

Jinja2 is imported when the first page is rendered, not when the coordinator starts."""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ramnet import _static
from ramnet.mesh.protocol.routes import page_url

if TYPE_CHECKING:
    import jinja2

__all__ = ["JOB_SECTIONS", "MAIN_SECTIONS", "render_page", "render_sections"]

#: The main page's live sections: the SSE event name of each is its name, and its template is
#: ``_<name>.html``.
MAIN_SECTIONS = ("summary", "nodes", "jobs", "disputes", "ledger", "plotdata")
#: One job's page's live sections.
JOB_SECTIONS = ("job",)


def short(value: object, size: int = 12) -> str:
    """A node or job id cut to its first ``size`` characters (the page shows the whole id on
    hover and in the job's own page)."""
    text = "" if value is None else str(value)
    return text if len(text) <= size else text[:size] + "…"


def when(value: float | None) -> str:
    """A Unix time as UTC ``HH:MM:SS`` ("—" for none)."""
    if value is None:
        return "—"
    return _dt.datetime.fromtimestamp(float(value), _dt.timezone.utc).strftime("%H:%M:%S")


def iso(value: float | None) -> str:
    """A Unix time as ISO 8601 UTC (a ``<time datetime>``; "" for none)."""
    if value is None:
        return ""
    stamp = _dt.datetime.fromtimestamp(float(value), _dt.timezone.utc)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def seconds(start: float | None, end: float | None) -> str:
    """The time from ``start`` to ``end`` ("—" unless both are known)."""
    if start is None or end is None:
        return "—"
    span = max(0.0, float(end) - float(start))
    return f"{span:.2f} s" if span < 100 else f"{span:.0f} s"


def number(value: object) -> str:
    """An integer with thin thousands separators; a float to 4 significant digits."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u202f")
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _asset_url(name: str) -> str:
    return page_url("dashboard_static", name=name)


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    folder = resources.files(__package__ or __name__).joinpath("templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(str(folder)))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(short=short, when=when, iso=iso, number=number)
    env.globals.update(
        seconds=seconds,
        url=page_url,
        asset=_asset_url,
        HTMX=_static.HTMX,
        HTMX_SSE=_static.HTMX_SSE,
        UPLOT_JS=_static.UPLOT_JS,
        UPLOT_CSS=_static.UPLOT_CSS,
        RAMNET_CSS=_static.RAMNET_CSS,
    )
    return env


def render_page(template: str, context: Mapping[str, Any]) -> str:
    """A whole page.

    Args:
        template: ``dashboard.html`` or ``job.html``.
        context: What ``view.Reader`` read (``overview`` or ``job``).

    Returns:
        The HTML.
    """
    return _environment().get_template(template).render(context)


def render_sections(names: tuple[str, ...], context: Mapping[str, Any]) -> dict[str, str]:
    """The live sections' fragments, each as its SSE event carries it.

    Args:
        names: ``MAIN_SECTIONS`` or ``JOB_SECTIONS``.
        context: What ``view.Reader`` read.

    Returns:
        Section name -> its HTML (what its ``sse-swap`` element's content becomes).
    """
    env = _environment()
    return {name: env.get_template(f"_{name}.html").render(context) for name in names}
