"""The dashboard's HTML: Jinja2 templates (``templates/``, autoescaping on) rendered into whole
pages and into the fragments that server-sent events swap in (one per section).

Jinja2 is imported when the first page is rendered, not when the coordinator starts."""

from __future__ import annotations

import datetime as _dt
import functools
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ramnet import _static
from ramnet.mesh.protocol.routes import page_url

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

__all__ = [
    "JOB_SECTIONS",
    "MAIN_SECTIONS",
    "SectionCache",
    "patch",
    "render_page",
    "render_sections",
    "section_inputs",
    "warm_up",
]

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
    # The time of day of ``iso`` (its year has four digits): one conversion for both.
    return "—" if value is None else iso(value)[11:19]


#: Times written (``iso``) by their value: a row shows its time twice and is drawn again when
#: anything else in it changes (a job settling), and converting one costs ~2 µs.
_ISO_KEPT = 4096
_isos: dict[object, str] = {}


def iso(value: float | None) -> str:
    """A Unix time as ISO 8601 UTC (a ``<time datetime>``; "" for none)."""
    if value is None:
        return ""
    known = _isos.get(value)
    if known is None:
        stamp = _dt.datetime.fromtimestamp(float(value), _dt.timezone.utc)
        known = stamp.isoformat(timespec="seconds").replace("+00:00", "Z")
        if len(_isos) >= _ISO_KEPT:
            _isos.clear()
        _isos[value] = known
    return known


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


#: ``page_url`` for the templates, each path made once (a job's link is in its row and in its
#: movements' rows, each drawn again as they change; making one costs ~2 µs).
_page_url = functools.lru_cache(maxsize=4096)(page_url)


#: Rows kept rendered (``rows``): a few tables' worth; beyond it the cache starts again.
_ROWS_KEPT = 4096
_rows: dict[tuple[str, str], tuple[str | None, str]] = {}
#: The same rows by their item itself (kept alive here, so its id is not reused), per row
#: template: an item a later read took from an earlier one (``read_overview(since=...)``) is
#: not even printed. Most of a table's items are known so, each by one look-up.
_rows_of: dict[str, dict[int, tuple[object, tuple[str | None, str]]]] = {}
#: A row's id: every row template starts its ``<tr>`` with it (``job-…``, ``node-…``, ``mv-…``).
_ROW_ID = re.compile(r'\s*<tr id="([^"]+)"')


class _Tables(threading.local):
    """The tables ``rows`` drew during one section's render (``SectionCache``), in order: the
    table body's id, the joined rows and each row's (id, HTML). While ``marking``, ``rows``
    gives each table it records as a mark (``_TABLE_MARK``) in place of its rows."""

    drawn: list[tuple[str, str, tuple[tuple[str, str], ...]]] | None = None
    marking = False


_tables = _Tables()
#: Where a table's rows go in a section rendered with marks: "<\x00" and the table's number
#: (in the order ``rows`` drew them), then ">". Its rows' place is known without searching the
#: section for them, and no value a template prints can make one: autoescaping turns every "<"
#: of a value into "&lt;".
_TABLE_MARK = "<\x00"


def rows(template: str, items: Iterable[object], name: str, into: str) -> Markup:
    """The rows of a table, each rendered by ``template`` with the item as ``name``, and kept:
    a row is rendered again only when its item changed (a job's shards moving redraws its own
    row of the jobs table, not the other 49). An item is known by its ``repr`` (a frozen
    dataclass or a dict of plain values: it holds everything the row shows), or as the very
    object rendered before (an item is never changed once read).

    A section prints what this returns as it is, where it calls it (``SectionCache`` may have
    it return a mark that the rows replace afterwards).

    Args:
        template: The row's template (``_job_row.html``); its ``<tr>`` starts with its id.
        items: The table's items, in order.
        name: The item's name in the template.
        into: The id of the ``<tbody>`` the rows go in (where ``patch`` adds rows).

    Returns:
        The rows' HTML, in order (safe: each row was rendered with autoescaping).
    """
    from markupsafe import Markup

    kept = _rows_of.setdefault(template, {})
    out: list[tuple[str | None, str]] = []  # each row's (id, HTML)
    for item in items:
        same = kept.get(id(item))
        if same is not None and same[0] is item:
            out.append(same[1])
            continue
        key = (template, repr(item))
        drawn = _rows.get(key)
        if drawn is None:
            html = _environment().get_template(template).render({name: item})
            found = _ROW_ID.match(html)
            drawn = (None if found is None else found.group(1), html)
            if len(_rows) >= _ROWS_KEPT:
                _rows.clear()
            _rows[key] = drawn
        if len(kept) >= _ROWS_KEPT:
            kept.clear()
        kept[id(item)] = (item, drawn)
        out.append(drawn)
    joined = "\n".join([html for _, html in out])
    tables = _tables.drawn
    named = [(row_id, html) for row_id, html in out if row_id is not None]
    if tables is not None and len(named) == len(out):
        tables.append((into, joined, tuple(named)))
        if _tables.marking:
            return Markup(f"{_TABLE_MARK}{len(tables) - 1}>")
    return Markup(joined)


#: A part of a section that changes on its own (a caption's count, the ledger's totals): an
#: element with an id and ``data-part`` that holds no element of its own kind.
_PART_MARK = " data-part>"
_PART_OPEN = re.compile(r'<(\w+) id="([^"]+)" data-part>')


@dataclass(frozen=True)
class _Layout:
    """A section's HTML cut into its tables' rows (table body id -> rows' (id, HTML)), its
    parts ((id, HTML)) and the rest (``frame``)."""

    frame: str
    tables: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    parts: tuple[tuple[str, str], ...]


#: Sections' layouts (None: a section with none), each with its HTML, by the id of that HTML
#: (kept alive here, so its id is not reused): ``SectionCache`` records every section it
#: renders and ``patch`` is given those very texts, found without hashing tens of kilobytes.
_layouts: dict[int, tuple[str, _Layout | None]] = {}
_LAYOUTS_KEPT = 256
#: Held to change ``_layouts`` and to copy it (sections render in worker threads; ``patch``
#: runs on the event loop).
_layouts_lock = threading.Lock()
#: How much of a table's rows finds them in their section (their first row's id is in it).
_HEAD = 96


def _searched_layout(
    html: str, drawn: list[tuple[str, str, tuple[tuple[str, str], ...]]]
) -> _Layout | None:
    # A section's layout from its whole HTML, each table's rows searched for in it (what
    # ``_marked`` finds without searching; the tests compare the two).
    frame = html
    tables = []
    for into, joined, table in drawn:
        # The rows are tens of kilobytes: found by their start (the first row's id) and
        # compared in place, not searched for whole. A start found twice is taken for rows
        # the frame holds twice.
        head = joined[:_HEAD]
        at = frame.find(head) if joined else -1
        if at < 0 or not frame.startswith(joined, at) or frame.find(head, at + 1) >= 0:
            return None  # an empty table, or rows the frame holds twice: sent whole
        frame = f"{frame[:at]}\x00{frame[at + len(joined) :]}"
        tables.append((into, table))
    return _layout(frame, tables)


def _layout(frame: str, tables: list[tuple[str, tuple[tuple[str, str], ...]]]) -> _Layout | None:
    # The layout of a section whose tables' rows are each "\x00" in ``frame``: its parts cut.
    if not tables and _PART_MARK not in frame:
        return None  # nothing in it changes on its own: a change sends it whole
    frame, parts = _cut_parts(frame)
    return _Layout(frame, tuple(tables), tuple(parts))


def _marked(
    marked: str, drawn: list[tuple[str, str, tuple[tuple[str, str], ...]]]
) -> tuple[str, _Layout | None] | None:
    # A section rendered with its tables' rows as marks (``rows``): its HTML (each mark
    # replaced by its rows) and its layout, cut from the small frame around the rows without
    # searching them (a section is tens of kilobytes, its frame one or two). None unless each
    # table's mark is in it once, in the order drawn: then the section is rendered whole.
    pieces = marked.split(_TABLE_MARK)
    if len(pieces) != len(drawn) + 1:
        return None
    frame = [pieces[0]]
    html = [pieces[0]]
    for number, (piece, (_, joined, _)) in enumerate(zip(pieces[1:], drawn, strict=True)):
        mark = f"{number}>"
        if not piece.startswith(mark):
            return None
        frame.append(piece[len(mark) :])
        html += [joined, frame[-1]]
    if any(not joined for _, joined, _ in drawn):
        return "".join(html), None  # an empty table: the section is sent whole when it changes
    tables = [(into, table) for into, _, table in drawn]
    return "".join(html), _layout("\x00".join(frame), tables)


def _keep_layout(html: str, layout: _Layout | None) -> None:
    with _layouts_lock:
        if len(_layouts) >= _LAYOUTS_KEPT:
            del _layouts[next(iter(_layouts))]  # the oldest: not the sections just rendered
        _layouts[id(html)] = (html, layout)


def _layout_of(html: str) -> _Layout | None:
    known = _layouts.get(id(html))
    if known is not None and known[0] is html:
        return known[1]
    # Not a text rendered here, but maybe equal to one (compared, not hashed, as it is rare).
    with _layouts_lock:
        kept = list(_layouts.values())
    return next((layout for text, layout in kept if text == html), None)


def _cut_parts(html: str) -> tuple[str, list[tuple[str, str]]]:
    # Each part (``_PART_OPEN`` to its element's first closing tag) replaced by "\x01", with
    # the parts' (id, HTML) in order. Found by their mark, not by a pattern tried at every
    # tag: a section is tens of kilobytes and holds two or three parts.
    kept: list[str] = []
    parts: list[tuple[str, str]] = []
    done = 0
    mark = html.find(_PART_MARK)
    while mark >= 0:
        start = html.rfind("<", done, mark)
        opened = None if start < 0 else _PART_OPEN.match(html, start)
        after = mark + len(_PART_MARK)
        end = -1
        if opened is not None and opened.end() == after:
            closing = f"</{opened.group(1)}>"
            end = html.find(closing, after)
            if end >= 0:
                end += len(closing)
                kept += [html[done:start], "\x01"]
                parts.append((opened.group(2), html[start:end]))
                done = end
        mark = html.find(_PART_MARK, max(after, done))
    kept.append(html[done:])
    return "".join(kept), parts


def _swapped(element: str) -> str:
    # The element marked for htmx to swap out of band, in place of the element with its id.
    return re.sub(r"^(\s*)<(\w+) ", r'\1<\2 hx-swap-oob="true" ', element, count=1)


def _table_patch(
    into: str, before: tuple[tuple[str, str], ...], after: tuple[tuple[str, str], ...]
) -> list[str] | None:
    # Rows gone (wherever they were), rows changed in place, and new rows on top (a list newest
    # first: jobs, movements) or at the bottom (nodes, in order of registration). Anything
    # else (rows that moved) is not a patch.
    was = dict(before)
    now_ids = [row_id for row_id, _ in after]
    kept_now = [row_id for row_id in now_ids if row_id in was]
    present = set(now_ids)
    if kept_now != [row_id for row_id, _ in before if row_id in present]:
        return None
    new = [(row_id, html) for row_id, html in after if row_id not in was]
    if now_ids[len(new) :] == kept_now:
        where = "afterbegin"
    elif now_ids[: len(kept_now)] == kept_now:
        where = "beforeend"
    else:
        return None
    out = [
        f'<tr id="{escape(row_id)}" hx-swap-oob="delete"></tr>'
        for row_id, _ in before
        if row_id not in present
    ]
    out += [_swapped(html) for row_id, html in after if row_id in was and was[row_id] != html]
    if new:
        added = "\n".join(html for _, html in new)
        out.append(f'<tbody hx-swap-oob="{where}:#{escape(into)}">{added}</tbody>')
    return out


def patch(old: str | None, new: str) -> str | None:
    """What turns a live section shown as ``old`` into ``new`` without sending it whole: its
    tables' rows that changed (each swapped in place of the row with its id), rows added (on
    top of a list newest first, or at its bottom) or gone, and its parts that changed (a
    caption's count, the ledger's totals), each marked for htmx to swap out of band
    (``hx-swap-oob``). None when anything else changed: then the whole section is sent. A job's
    shards moving swaps a row of the jobs table and a few of the nodes table, not 80.

    Args:
        old: The section's HTML as a page shows it (None: unknown).
        new: Its HTML now.

    Returns:
        The out-of-band elements' HTML ("" when nothing changed), or None.
    """
    if old is None:
        return None
    return _patch(_layout_of(old), _layout_of(new))


def _patch(before: _Layout | None, after: _Layout | None) -> str | None:
    if before is None or after is None or before.frame != after.frame:
        return None
    if [t for t, _ in before.tables] != [t for t, _ in after.tables]:
        return None
    if [p for p, _ in before.parts] != [p for p, _ in after.parts]:
        return None
    out = [
        _swapped(html)
        for (_, html), (_, was) in zip(after.parts, before.parts, strict=True)
        if html != was
    ]
    for (into, now), (_, was_rows) in zip(after.tables, before.tables, strict=True):
        table = _table_patch(into, was_rows, now)
        if table is None:
            return None
        out += table
    # Each in a <template> of its own: a row, a table body and a caption parse only where a
    # table allows them, and htmx swaps the out-of-band elements a template holds.
    return "\n".join(f"<template>{element}</template>" for element in out)


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    class Environment(jinja2.Environment):
        def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
            # Each template's globals as a plain dict, not Jinja's ChainMap over the
            # environment's: every render copies them into its context, and a ChainMap is
            # copied key by key in Python (about 7 µs a render, a row's render included). The
            # globals are all set below, before any template is loaded, and never changed.
            return {**self.globals, **(d or {})}

    folder = resources.files(__package__ or __name__).joinpath("templates")
    env = Environment(
        loader=jinja2.FileSystemLoader(str(Path(str(folder)))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # The templates are the package's own files: not looked at again on every render.
        auto_reload=False,
    )
    env.filters.update(short=short, when=when, iso=iso, number=number)
    env.globals.update(
        seconds=seconds,
        rows=rows,
        url=_page_url,
        asset=_asset_url,
        HTMX=_static.HTMX,
        HTMX_SSE=_static.HTMX_SSE,
        UPLOT_JS=_static.UPLOT_JS,
        UPLOT_CSS=_static.UPLOT_CSS,
        RAMNET_CSS=_static.RAMNET_CSS,
    )
    return env


def warm_up() -> None:
    """Import Jinja2 and compile every template now (a coordinator does it in a thread as it
    starts), so that the first page anyone opens is not the one that pays for it (about
    0.3 s on a loaded machine)."""
    env = _environment()
    folder = Path(str(resources.files(__package__ or __name__).joinpath("templates")))
    for path in sorted(folder.glob("*.html")):
        env.get_template(path.name)


def render_page(template: str, context: Mapping[str, Any]) -> str:
    """A whole page.

    Args:
        template: ``dashboard.html`` or ``job.html``.
        context: What ``view.Reader`` read (``overview`` or ``job``).

    Returns:
        The HTML.
    """
    return _environment().get_template(template).render(context)


def section_inputs(context: Mapping[str, Any]) -> dict[str, object]:
    """What each live section shows, as a value compared with the last one rendered: a section
    whose inputs are equal renders the same HTML (no section shows the clock), so it is not
    rendered again (``SectionCache``).

    Args:
        context: What ``view.Reader`` read for the main page (``overview``) or a job's
            (``job``).

    Returns:
        Section name -> its inputs.
    """
    if "detail" in context:
        detail = context["detail"]
        job = (detail.job, detail.shards, detail.disputes, detail.movements)
        return {"job": (job, context["verdicts"])}
    o, ledger = context["overview"], context["ledger"]
    return {
        "summary": (
            len(o.nodes),
            sum(node.banned for node in o.nodes),
            o.jobs_total,
            o.job_states,
            len(o.disputes),
            ledger["totals"]["conserved"],
        ),
        "nodes": o.nodes,
        "jobs": (o.jobs, o.jobs_total),
        "disputes": (o.disputes, context["verdicts"]),
        "ledger": (ledger, o.movements, o.movements_total),
        "plotdata": o.timeline,
    }


class SectionCache:
    """The live sections last rendered, per view, with their inputs: ``render`` renders again
    only the sections whose inputs changed (a job's shards moving redraws the nodes and the
    jobs, not the ledger's movements). Used by one renderer at a time per view."""

    def __init__(self) -> None:
        self._last: dict[tuple[str | None, str], tuple[object, str]] = {}

    def render(
        self, view: str | None, names: tuple[str, ...], context: Mapping[str, Any]
    ) -> dict[str, str]:
        """``render_sections``, reusing each section whose inputs did not change.

        Args:
            view: None (the main page) or a job id.
            names: ``MAIN_SECTIONS`` or ``JOB_SECTIONS``.
            context: What ``view.Reader`` read.

        Returns:
            Section name -> its HTML.
        """
        inputs = section_inputs(context)
        env = _environment()
        out = {}
        for name in names:
            known = self._last.get((view, name))
            if known is not None and known[0] == inputs[name]:
                out[name] = known[1]
                continue
            out[name] = _render_section(env.get_template(f"_{name}.html"), context)
            self._last[(view, name)] = (inputs[name], out[name])
        if len(self._last) > 64:  # job pages no longer open
            self._last = {k: v for k, v in self._last.items() if k[0] == view or k[0] is None}
        return out


def _render_section(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    # A live section, its layout kept for ``patch``: rendered with its tables' rows as marks,
    # then put together (``_marked``); rendered whole when that fails (a template that did not
    # print a table's rows as they came), its layout then searched for.
    drawn: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
    _tables.drawn, _tables.marking = drawn, True
    try:
        marked = template.render(context)
    finally:
        _tables.drawn, _tables.marking = None, False
    done = _marked(marked, drawn)
    if done is not None:
        _keep_layout(*done)
        return done[0]
    drawn = []
    _tables.drawn = drawn
    try:
        html = template.render(context)
    finally:
        _tables.drawn = None
    _keep_layout(html, _searched_layout(html, drawn))
    return html


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
