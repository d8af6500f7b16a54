"""The live updates: one poller for every open dashboard, each stream sending only the sections
that changed, rendering once per state, silence kept alive, and every stream ended when the
server stops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet.mesh.coordinator.dashboard.feed import Feed, sse_event


async def _offload(call: Callable[[], Any]) -> Any:
    return call()


class FakeState:
    def __init__(self) -> None:
        self.version = 0
        self.reads = 0
        self.renders = 0
        self.sections = {"nodes": "<p>n0</p>", "jobs": "<p>j0</p>"}

    def fingerprint(self) -> str:
        self.reads += 1
        return f"v{self.version}"

    def render(self, view: str | None) -> tuple[str, dict[str, str]]:
        self.renders += 1
        return f"v{self.version}", dict(self.sections)


def _parse(chunk: bytes) -> dict[str, str]:
    events = {}
    for event in chunk.decode().strip().split("\n\n"):
        lines = event.split("\n")
        name = next(line[len("event: ") :] for line in lines if line.startswith("event: "))
        events[name] = "\n".join(
            line[len("data: ") :] for line in lines if line.startswith("data: ")
        )
    return events


def test_sse_event_frames_every_line() -> None:
    event = sse_event("jobs", "<ul>\n<li>a</li>\r\n</ul>", "f00")
    assert event == b"event: jobs\nid: f00\ndata: <ul>\ndata: <li>a</li>\ndata: </ul>\n\n"


def test_streams_get_changed_sections_and_share_one_render() -> None:
    state = FakeState()
    stopping = threading.Event()

    async def scenario() -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, str]]:
        patched: list[str | None] = []

        def patch(old: str | None, new: str) -> None:
            patched.append(old)
            return None  # sent whole

        feed = Feed(
            state.fingerprint, state.render, _offload, stopping=stopping, poll_s=0.01, patch=patch
        )
        first = feed.stream(None, "v0")
        second = feed.stream(None, "v0")
        assert (await anext(first)).startswith(b"retry:")
        assert (await anext(second)).startswith(b"retry:")
        got_first: list[dict[str, str]] = []
        got_second: list[dict[str, str]] = []
        wait_first = asyncio.ensure_future(anext(first))
        wait_second = asyncio.ensure_future(anext(second))
        await asyncio.sleep(0.05)
        assert not wait_first.done()  # nothing changed since the page was rendered
        state.version = 1
        state.sections["jobs"] = "<p>j1</p>"
        raw_first = await asyncio.wait_for(wait_first, 5)
        raw_second = await asyncio.wait_for(wait_second, 5)
        got_first.append(_parse(raw_first))
        got_second.append(_parse(raw_second))
        assert state.renders == 2  # the pages' state once, then the new one, for both streams
        # Both pages showed the same state: what they are sent is made once for both.
        assert raw_first is raw_second and patched == ["<p>j0</p>"]
        state.version = 2
        state.sections["nodes"] = "<p>n2</p>"
        got_first.append(_parse(await asyncio.wait_for(anext(first), 5)))
        # A stream from a page of an older state gets every section at once.
        late = feed.stream(None, "v0")
        await anext(late)
        fresh = _parse(await asyncio.wait_for(anext(late), 5))
        await late.aclose()
        stopping.set()
        rest = [event async for event in first]
        assert all(not event.startswith(b"event:") for event in rest)
        await second.aclose()
        assert feed.streams == 0
        return got_first, got_second, fresh

    got_first, got_second, fresh = asyncio.run(scenario())
    # Only what changed since the page: the jobs, then the nodes.
    assert got_first == [{"jobs": "<p>j1</p>"}, {"nodes": "<p>n2</p>"}]
    assert got_second == got_first[:1]
    assert fresh == {"nodes": "<p>n2</p>", "jobs": "<p>j1</p>"}


def test_nothing_polls_while_no_dashboard_is_open() -> None:
    state = FakeState()

    async def scenario() -> None:
        feed = Feed(state.fingerprint, state.render, _offload, poll_s=0.01)
        await asyncio.sleep(0.1)
        assert state.reads == 0
        stream = feed.stream(None, "v0")
        await anext(stream)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        assert state.reads > 1
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await stream.aclose()
        await asyncio.sleep(0.05)
        reads = state.reads
        await asyncio.sleep(0.1)
        assert state.reads == reads

    asyncio.run(scenario())


def test_the_poller_reads_nothing_while_nothing_was_written() -> None:
    state = FakeState()
    written = [0]

    async def scenario() -> None:
        feed = Feed(
            state.fingerprint, state.render, _offload, poll_s=0.01, watch=lambda: written[0]
        )
        stream = feed.stream(None, "v0")
        await anext(stream)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        reads = state.reads
        assert reads <= 3  # the stream's start and the poller's first read, not one per poll
        await asyncio.sleep(0.1)
        assert state.reads == reads
        state.version = 1  # written: the token moves, the fingerprint is read, the page told
        state.sections["jobs"] = "<p>j1</p>"
        written[0] += 1
        assert _parse(await asyncio.wait_for(waiting, 5)) == {"jobs": "<p>j1</p>"}
        assert state.reads == reads + 1
        await stream.aclose()

    asyncio.run(scenario())


def test_silence_is_kept_alive(monkeypatch: Any) -> None:
    from ramnet.mesh.coordinator.dashboard import feed as feed_module

    monkeypatch.setattr(feed_module, "KEEPALIVE_S", 0.05)
    state = FakeState()

    async def scenario() -> bytes:
        feed = Feed(state.fingerprint, state.render, _offload, poll_s=0.01)
        stream = feed.stream(None, "v0")
        await anext(stream)
        event = await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
        return event

    assert asyncio.run(scenario()) == b": keep-alive\n\n"


def test_a_section_whose_inputs_did_not_change_is_not_rendered_again(
    tmp_path: Any, monkeypatch: Any
) -> None:
    import jinja2

    from ramnet.mesh.coordinator.dashboard.render import MAIN_SECTIONS, SectionCache
    from ramnet.mesh.coordinator.dashboard.view import Reader
    from ramnet.mesh.state.blobs import BlobStore
    from ramnet.mesh.state.ledger import Ledger
    from ramnet.mesh.state.store import Store
    from tests.mesh.dashboard.filled_store import fill_store

    filled = fill_store(tmp_path, nodes=8, jobs=6)
    rendered: list[str] = []
    original = jinja2.Template.render

    def counting(self: Any, *args: Any, **kwargs: Any) -> str:
        rendered.append(str(self.name))
        return original(self, *args, **kwargs)

    with Store(tmp_path / "state.sqlite") as store:
        reader = Reader(store, Ledger(store), BlobStore(tmp_path / "blobs"))
        cache = SectionCache()
        first = cache.render(None, MAIN_SECTIONS, reader.overview())
        monkeypatch.setattr(jinja2.Template, "render", counting)
        again = cache.render(None, MAIN_SECTIONS, reader.overview())
        assert again == first and rendered == []
        store.set_banned(filled.nodes[5], True)  # a node banned: nodes and summary change
        changed = cache.render(None, MAIN_SECTIONS, reader.overview())
    # The nodes table is drawn again with only the banned node's row rendered anew.
    assert sorted(rendered) == ["_node_row.html", "_nodes.html", "_summary.html"]
    assert changed["ledger"] == first["ledger"] and changed["nodes"] != first["nodes"]


def test_a_section_whose_rows_only_changed_goes_as_those_rows() -> None:
    state = FakeState()

    def patch(old: str | None, new: str) -> str | None:
        # Rows only when the page's jobs section was j0: j1 is "a row of it changed".
        return "<tr id=r1>x</tr>" if (old, new) == ("<p>j0</p>", "<p>j1</p>") else None

    async def scenario() -> list[dict[str, str]]:
        feed = Feed(state.fingerprint, state.render, _offload, poll_s=0.01, patch=patch)
        stream = feed.stream(None, "v0")
        await anext(stream)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        state.version, state.sections["jobs"] = 1, "<p>j1</p>"
        got = [_parse(await asyncio.wait_for(waiting, 5))]
        state.version, state.sections["jobs"] = 2, "<p>j2</p>"  # more than rows: whole
        state.sections["nodes"] = "<p>n2</p>"
        got.append(_parse(await asyncio.wait_for(anext(stream), 5)))
        await stream.aclose()
        return got

    got = asyncio.run(scenario())
    assert got == [{"patch": "<tr id=r1>x</tr>"}, {"jobs": "<p>j2</p>", "nodes": "<p>n2</p>"}]


def test_patch_gives_the_changed_rows_or_none(tmp_path: Any) -> None:
    from ramnet.mesh.coordinator.dashboard.render import MAIN_SECTIONS, SectionCache, patch
    from ramnet.mesh.coordinator.dashboard.view import Reader
    from ramnet.mesh.state.blobs import BlobStore
    from ramnet.mesh.state.ledger import Ledger
    from ramnet.mesh.state.store import Store
    from tests.mesh.dashboard.filled_store import fill_store, hex_id

    filled = fill_store(tmp_path, nodes=8, jobs=8, now=1_000_000.0)
    with Store(tmp_path / "state.sqlite") as store:
        reader = Reader(store, Ledger(store), BlobStore(tmp_path / "blobs"))
        cache = SectionCache()
        context = reader.overview()
        first = cache.render(None, MAIN_SECTIONS, context)
        running, shard = next(
            (job, shard)
            for job in filled.running
            for shard in store.list_shards(job)
            if shard.state in ("assigned", "committed")
        )
        store.set_shard_state(shard.shard_id, "accepted", now=1_000_001.0)  # rows only
        context = reader.overview(since=context)
        moved = cache.render(None, MAIN_SECTIONS, context)
        store.register_node(hex_id("a new node"), now=1_000_002.0)  # a row added: whole
        context = reader.overview(since=context)
        added = cache.render(None, MAIN_SECTIONS, context)
    rows = patch(first["jobs"], moved["jobs"])
    assert rows is not None and rows.count("<tr ") == 1
    assert rows.startswith(f'<template><tr hx-swap-oob="true" id="job-{running}" ')
    # The row as the section has it now, marked to be swapped in place of its old self.
    inner = rows.removeprefix("<template>").replace(' hx-swap-oob="true"', "")
    assert inner.split("</tr>")[0] in moved["jobs"]
    node_rows = patch(first["nodes"], moved["nodes"])
    assert node_rows is not None and 1 <= node_rows.count("<tr ") < 8
    # A node registered: its row added at the bottom (nodes in order of registration), and the
    # caption's count swapped.
    grown = patch(moved["nodes"], added["nodes"])
    assert grown is not None and grown.count("<tr ") == 1
    assert '<caption hx-swap-oob="true" id="nodes-caption" data-part>9 registered' in grown
    assert '<tbody hx-swap-oob="beforeend:#nodes-rows"><tr id="node-' in grown
    assert patch(None, moved["jobs"]) is None
    assert patch("<p>not a section</p>", moved["jobs"]) is None


def test_a_new_job_goes_on_top_and_the_oldest_shown_goes(tmp_path: Any, monkeypatch: Any) -> None:
    from ramnet.mesh.coordinator.dashboard import view
    from ramnet.mesh.coordinator.dashboard.render import MAIN_SECTIONS, SectionCache, patch
    from ramnet.mesh.state.blobs import BlobStore
    from ramnet.mesh.state.ledger import Ledger
    from ramnet.mesh.state.store import Store
    from tests.mesh.dashboard.filled_store import _job, fill_store

    monkeypatch.setattr(view, "JOBS_SHOWN", 3)
    filled = fill_store(tmp_path, nodes=8, jobs=8, now=1_000_000.0, live=False)
    with Store(tmp_path / "state.sqlite") as store:
        ledger = Ledger(store)
        reader = view.Reader(store, ledger, BlobStore(tmp_path / "blobs"))
        cache = SectionCache()
        context = reader.overview()
        before = cache.render(None, MAIN_SECTIONS, context)
        shown = [job.job_id for job in context["overview"].jobs]
        newest = _job(store, ledger, filled, 99, 1_000_010.0)
        after = cache.render(None, MAIN_SECTIONS, reader.overview(since=context))
    jobs = patch(before["jobs"], after["jobs"])
    assert jobs is not None
    assert f'<tr id="job-{shown[-1]}" hx-swap-oob="delete"></tr>' in jobs
    assert f'<tbody hx-swap-oob="afterbegin:#jobs-rows"><tr id="job-{newest}" ' in jobs
    assert "The newest 3 of 9 jobs</caption>" in jobs and jobs.count("<tr ") == 2
    # The ledger: the new escrow's movement on top, the totals swapped in place.
    movements = patch(before["ledger"], after["ledger"])
    assert movements is not None and 'id="ledger-totals" data-part>' in movements
    assert '<tbody hx-swap-oob="afterbegin:#movements-rows"><tr id="mv-' in movements


def test_a_row_is_rendered_once_and_known_again_by_its_object() -> None:
    from ramnet.mesh.coordinator.dashboard import render

    class Movement(dict[str, object]):
        printed = 0

        def __repr__(self) -> str:
            Movement.printed += 1
            return super().__repr__()

    mv = Movement(movement_id=9_000_001, kind="pay", src=None, dst="ab" * 32, amount=3)
    mv.update(job_id=None, at=1.0)
    first = render.rows("_movement_row.html", [mv], "mv", "movements-rows")
    assert 'id="mv-9000001"' in first and Movement.printed == 1
    # The same object (a read since an earlier one kept it): not even printed again.
    assert render.rows("_movement_row.html", [mv], "mv", "movements-rows") == first
    assert Movement.printed == 1
    # An equal item read again: known by what it holds.
    assert render.rows("_movement_row.html", [Movement(mv)], "mv", "movements-rows") == first
    assert Movement.printed == 2
    changed = Movement(mv, amount=4)
    assert render.rows("_movement_row.html", [changed], "mv", "movements-rows") != first


_PART_PATTERN = r'<(\w+) id="([^"]+)" data-part>.*?</\1>'


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<p>text</p>",
                '<caption id="c1" data-part>3 jobs</caption>',
                '<p id="t" data-part>minted <strong>9</strong></p>',
                '<span id="x" data-part>open',
                " data-part>",
                '<b id="y">not a part</b>',
                "</p>",
                "<",
                '<td id="z" data-part></td>',
            ]
        ),
        max_size=12,
    )
)
def test_a_sections_parts_are_cut_as_the_pattern_finds_them(pieces: list[str]) -> None:
    # The parts (a caption's count, the ledger's totals) are found by their mark; what is cut
    # is what the pattern that defines them finds, in the same order.
    import re

    from ramnet.mesh.coordinator.dashboard import render

    html = "".join(pieces)
    found: list[tuple[str, str]] = []

    def cut(match: re.Match[str]) -> str:
        found.append((match.group(2), match.group(0)))
        return "\x01"

    expected = re.sub(_PART_PATTERN, cut, html, flags=re.S)
    assert render._cut_parts(html) == (expected, found)


def _whole(template: Any, context: Any) -> tuple[str, Any]:
    # A section rendered whole (its rows in place, no mark) and its layout searched for in it.
    from ramnet.mesh.coordinator.dashboard import render

    drawn: list[Any] = []
    render._tables.drawn = drawn
    try:
        html = template.render(context)
    finally:
        render._tables.drawn = None
    return html, render._searched_layout(html, drawn)


def test_sections_rendered_with_their_rows_marked_are_as_rendered_whole(tmp_path: Any) -> None:
    # ``SectionCache`` renders each section with its tables' rows as marks and puts it
    # together: the HTML and its layout are what rendering it whole and searching gives.
    from ramnet.mesh.coordinator.dashboard import render
    from ramnet.mesh.coordinator.dashboard.render import JOB_SECTIONS, MAIN_SECTIONS
    from ramnet.mesh.coordinator.dashboard.view import Reader
    from ramnet.mesh.state.blobs import BlobStore
    from ramnet.mesh.state.ledger import Ledger
    from ramnet.mesh.state.store import Store
    from tests.mesh.dashboard.filled_store import _job, fill_store

    filled = fill_store(tmp_path, nodes=8, jobs=8, now=1_000_000.0, live=False)
    env = render._environment()
    checked: list[str] = []
    with Store(tmp_path / "state.sqlite") as store:
        ledger = Ledger(store)
        reader = Reader(store, ledger, BlobStore(tmp_path / "blobs"))
        cache = render.SectionCache()
        context = reader.overview(now=1_000_005.0)
        views: list[tuple[str | None, tuple[str, ...], Any]] = [(None, MAIN_SECTIONS, context)]
        views.append((filled.disputed, JOB_SECTIONS, reader.job(filled.disputed, now=1.0)))
        _job(store, ledger, filled, 99, 1_000_010.0)  # a job, its escrow and its nodes' rows
        views.append((None, MAIN_SECTIONS, reader.overview(since=context, now=1_000_011.0)))
        for view, names, shown in views:
            sections = cache.render(view, names, shown)
            for name in names:
                html, layout = _whole(env.get_template(f"_{name}.html"), shown)
                assert sections[name] == html
                assert render._layout_of(sections[name]) == layout
                if layout is not None and layout.tables:
                    checked.append(name)
    assert sorted(checked) == ["job", "jobs", "jobs", "ledger", "ledger", "nodes", "nodes"]


def test_a_section_that_does_not_print_its_rows_as_given_is_rendered_whole() -> None:
    # A section whose rows' marks are not each where it called ``rows``, once and in order, is
    # rendered again whole and its layout searched for; an empty table has none; and no value
    # printed can pass for a mark.
    from ramnet.mesh.coordinator.dashboard import render

    def mv(number: int, kind: str = "pay") -> dict[str, object]:
        return {"movement_id": number, "kind": kind, "src": None, "dst": "ab" * 32,
                "amount": 3, "job_id": None, "at": 1.0}  # fmt: skip

    table = '<tbody id="{0}">{{{{ rows("_movement_row.html", {1}, "mv", "{0}") }}}}</tbody>'
    sources = {
        "one": table.format("t", "a"),
        "two in order": table.format("t", "a") + "<p>between</p>" + table.format("u", "b"),
        "printed twice": '{% set r = rows("_movement_row.html", a, "mv", "t") %}{{ r }}{{ r }}',
        "never printed": '{% set r = rows("_movement_row.html", a, "mv", "t") %}<p>none</p>',
        "out of order": '{% set r = rows("_movement_row.html", a, "mv", "t") %}'
        '{% set s = rows("_movement_row.html", b, "mv", "u") %}{{ s }}{{ r }}',
        "empty": table.format("t", "[]"),
        "with a part": '<p id="c" data-part>2 rows</p>' + table.format("t", "a"),
    }
    context = {"a": [mv(1), mv(2, "<\x000>")], "b": [mv(3, "<\x001>"), mv(4)]}
    env = render._environment()
    tables = {}
    for name, source in sources.items():
        template = env.from_string(source)
        html = render._render_section(template, context)
        assert (html, render._layout_of(html)) == _whole(template, context), name
        layout = render._layout_of(html)
        tables[name] = None if layout is None else [into for into, _ in layout.tables]
    assert "&lt;\x000&gt;" in html
    assert tables == {
        "one": ["t"],
        "two in order": ["t", "u"],
        "printed twice": None,
        "never printed": None,
        "out of order": ["t", "u"],  # as drawn
        "empty": None,
        "with a part": ["t"],
    }
