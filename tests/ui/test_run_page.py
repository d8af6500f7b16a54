"""The run page: a sovereign job from random operands, .npy paths and uploads, with its progress,
result, downloads and VALKYRIE's verdict; errors next to their fields; a mesh job through the
runners' adapter."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ui.conftest import HTMX, make_app, started_task_id, wait_task


def test_pages_render_with_the_vendored_assets(client: Any) -> None:
    for path in ("/run", "/verify", "/identity", "/lend"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'src="/static/vendor/htmx.min.js"' in page.text
        assert "content-security-policy" in page.headers
    assert client.get("/", follow_redirects=False).headers["location"] == "/run"
    assert client.get("/static/vendor/htmx.min.js").status_code == 200
    assert client.get("/static/vendor/sse.js").status_code == 200
    assert client.get("/assets/ui.js").status_code == 200
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/assets/app.py").status_code == 404


def test_the_mode_switch_sets_a_cookie_and_changes_the_form(client: Any) -> None:
    assert 'name="prove"' in client.get("/run").text
    moved = client.post("/mode", data={"mode": "mesh", "next": "/run"}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/run"
    page = client.get("/run").text
    assert 'name="coordinator"' in page and 'name="prove"' not in page
    assert 'value="mesh" aria-pressed="true"' in page
    # Only a path on this site is a place to go back to.
    away = client.post("/mode", data={"mode": "sovereign", "next": "//evil.example/"})
    assert away.url.path == "/run"


def test_a_sovereign_job_with_a_trace_ends_with_a_valid_verdict(app: Any, client: Any) -> None:
    form = {"mode": "sovereign", "source": "random", "shape": "64x96x80", "dtype": "int8"}
    reply = client.post(
        "/run", data={**form, "seed": "3", "trace": "on", "prove": "on"}, headers=HTMX
    )
    assert reply.status_code == 200
    assert 'hx-swap-oob="true"' in reply.text  # the form comes back without its old errors
    task = wait_task(app, started_task_id(reply.text))
    assert task.state == "done", task.error
    assert task.result["verdict"]["valid"] is True
    assert task.result["verified_with"] == ["A", "B", "C"]
    page = client.get(f"/tasks/{task.task_id}").text
    assert "VALID" in page and "FAILED" not in page
    for name in ("signature", "commitment of C", "proof"):
        assert f"<td>{name}" in page, name
    c = np.load(io.BytesIO(client.get(f"/tasks/{task.task_id}/files/c").content))
    folder = Path(task.files["c"]).parent
    a, b = np.load(folder / "A.npy"), np.load(folder / "B.npy")
    np.testing.assert_array_equal(c, a.astype(np.int32) @ b.astype(np.int32))
    trace = client.get(f"/tasks/{task.task_id}/files/trace")
    assert trace.status_code == 200 and trace.content == Path(task.files["trace"]).read_bytes()
    assert client.get(f"/tasks/{task.task_id}/files/A").status_code == 404


def test_progress_and_the_result_arrive_as_server_sent_events(app: Any, client: Any) -> None:
    form = {"source": "random", "shape": "32x32x32", "dtype": "int16", "trace": "on"}
    task_id = started_task_id(client.post("/run", data=form, headers=HTMX).text)
    wait_task(app, task_id)
    events = []
    with client.stream("GET", f"/tasks/{task_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
            if events[-1:] == ["done"] and line == "":
                break
    assert events == ["progress", "done"]


def test_operands_from_paths_and_uploads(app: Any, client: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(-100, 100, (20, 30), dtype=np.int16)
    b = rng.integers(-100, 100, (30, 10), dtype=np.int16)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    by_path = {
        "source": "paths",
        "a_path": str(tmp_path / "A.npy"),
        "b_path": str(tmp_path / "B.npy"),
    }
    files = {
        "a_file": ("mine.npy", (tmp_path / "A.npy").read_bytes()),
        "b_file": ("../../evil.npy", (tmp_path / "B.npy").read_bytes()),
    }
    for data, upload in ((by_path, None), ({"source": "upload", "trace": "on"}, files)):
        reply = client.post("/run", data=data, files=upload, headers=HTMX)
        task = wait_task(app, started_task_id(reply.text))
        assert task.state == "done", task.error
        np.testing.assert_array_equal(np.load(task.files["c"]), a.astype(np.int64) @ b)
        # Progress in block products, with a rate: the files' shapes come from their headers.
        assert task.progress["done"] == task.progress["total"] >= 1
        assert task.progress["gops"] is not None
    # The uploads were saved under fixed names in the job's folder, whatever the client called them.
    assert sorted(p.name for p in Path(task.files["c"]).parent.iterdir()) == [
        "A.npy",
        "B.npy",
        "C.npy",
        "trace.bin",
    ]
    assert task.result["verdict"]["valid"] is True


_MESH = {"mode": "mesh", "coordinator": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"source": "random", "shape": "12x", "dtype": "int8"}, "shape", "MxKxN"),
        ({"source": "random", "shape": "4x4x4", "dtype": ""}, "dtype", "need a dtype"),
        (
            {"source": "random", "shape": "4x4x4", "dtype": "int8", "seed": "-1"},
            "seed",
            "at least 0",
        ),
        ({"source": "paths", "a_path": "/nonexistent/A.npy"}, "a_path", "no file at"),
        ({"source": "upload"}, "a_file", "Choose the .npy file of A"),
        ({"source": "random", "shape": "4x4x4", "dtype": "int8", "prove": "on"}, "prove", "trace"),
        ({"mode": "mesh", "coordinator": "nope"}, "coordinator", "URL"),
        (
            {"mode": "mesh", "coordinator": "http://127.0.0.1:9", "nodes": "4"},
            "nodes",
            "multiple of 3",
        ),
        (
            {"mode": "mesh", "coordinator": "http://127.0.0.1:9", "redundancy": "mirror"},
            "redundancy",
            "at least 6",
        ),
    ],
)
def test_a_mistake_is_one_sentence_next_to_its_field(
    client: Any, form: dict[str, str], field: str, words: str
) -> None:
    reply = client.post("/run", data=form, headers=HTMX)
    assert reply.status_code == 200  # htmx swaps the form, errors and all, in place
    assert reply.headers["HX-Retarget"] == "#run-form"
    assert f'id="{field}-error" role="alert"' in reply.text
    assert words in reply.text
    assert reply.text.count('role="alert"') == 1
    # A plain form post (no JavaScript) gets the whole page with the same sentence, as a 400.
    plain = client.post("/run", data=form)
    assert plain.status_code == 400 and f'id="{field}-error"' in plain.text


def test_a_failed_job_says_why_in_one_line(app: Any, client: Any, tmp_path: Path) -> None:
    np.save(tmp_path / "A.npy", np.zeros((4, 5), np.int8))
    np.save(tmp_path / "B.npy", np.zeros((6, 4), np.int8))
    form = {"source": "paths", "a_path": str(tmp_path / "A.npy"), "b_path": str(tmp_path / "B.npy")}
    task = wait_task(app, started_task_id(client.post("/run", data=form, headers=HTMX).text))
    assert task.state == "failed" and "\n" not in task.error
    assert "Failed: " in client.get(f"/tasks/{task.task_id}").text


def test_a_mesh_job_goes_through_the_adapter_with_its_statuses(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from ramnet.ui.runners import Runners

    seen: dict[str, Any] = {}

    def mesh(request: Any, on_status: Any) -> dict[str, Any]:
        seen["request"] = request
        on_status({"job_id": "ab" * 16, "state": "running", "shards": {"claimed": 2, "done": 1}})
        np.save(request.out, np.zeros((4, 4), np.int32))
        return {
            "mode": "mesh", "job_id": "ab" * 16, "shape": [4, 4], "a_shape": [4, 4],
            "b_shape": [4, 4], "dtype": "int8", "out_dtype": "int32", "nodes": 3,
            "redundancy": "none", "coordinator": request.coordinator, "state": "settled",
            "price": 12, "gops": 1.5, "out": str(request.out),
            "seconds": {"load": 0.1, "compute": 0.2, "save": 0.0, "total": 0.3},
        }  # fmt: skip

    app = make_app(tmp_path, Runners(sovereign=lambda *a: {}, mesh=mesh))
    with TestClient(app) as client:
        client.cookies.set("ramnet_mode", "mesh")
        form = {"coordinator": "http://127.0.0.1:9000/", "nodes": "3", "source": "random",
                "shape": "4x4x4", "dtype": "int8"}  # fmt: skip
        task = wait_task(app, started_task_id(client.post("/run", data=form, headers=HTMX).text))
        assert task.state == "done", task.error
        assert seen["request"].coordinator == "http://127.0.0.1:9000"
        assert seen["request"].nodes == 3 and seen["request"].redundancy is None
        assert task.result["last_status"]["shards"] == {"claimed": 2, "done": 1}
        page = client.get(f"/tasks/{task.task_id}").text
        assert "Freivalds (this machine)" in page and "ab" * 16 in page
