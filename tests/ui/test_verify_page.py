"""The verify page: a trace and optional A, B, C uploaded, checked as ``ramnet verify`` checks
them, in its words; a tampered trace refused; a missing trace one sentence next to its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ui.conftest import HTMX, started_task_id, wait_task


@pytest.fixture
def made(app: Any, client: Any) -> Path:
    """A sovereign job's folder: A.npy, B.npy, C.npy and trace.bin (with a proof)."""
    form = {"source": "random", "shape": "48x40x56", "dtype": "int8", "trace": "on", "prove": "on"}
    task = wait_task(app, started_task_id(client.post("/run", data=form, headers=HTMX).text))
    assert task.state == "done", task.error
    return Path(task.files["trace"]).parent


def _verify(app: Any, client: Any, files: dict[str, Any]) -> Any:
    reply = client.post("/verify", files=files, headers=HTMX)
    assert reply.status_code == 200
    return wait_task(app, started_task_id(reply.text))


def _cli_verdict(folder: Path, trace: Path) -> dict[str, Any]:
    from ramnet.valkyrie import verify_trace

    verdict = verify_trace(trace, folder / "A.npy", folder / "B.npy", folder / "C.npy")
    return verdict.to_dict()


def test_a_good_trace_with_its_matrices_is_valid_in_verifys_words(
    app: Any, client: Any, made: Path
) -> None:
    files = {
        name: (f"{stem}", (made / stem).read_bytes())
        for name, stem in (
            ("trace_file", "trace.bin"),
            ("a_file", "A.npy"),
            ("b_file", "B.npy"),
            ("c_file", "C.npy"),
        )
    }
    task = _verify(app, client, files)
    assert task.state == "done", task.error
    shown = task.result["verdict"]
    expected = _cli_verdict(made, made / "trace.bin")
    assert shown["valid"] is True and shown["title"] == "VALID"
    assert [(c["name"], c["ok"], c["detail"]) for c in shown["checks"]] == [
        (c["name"], c["ok"], c["detail"]) for c in expected["checks"]
    ]
    page = client.get(f"/tasks/{task.task_id}").text
    assert "Freivalds" in page and "FAILED" not in page


def test_a_tampered_trace_is_refused(app: Any, client: Any, made: Path, tmp_path: Path) -> None:
    data = bytearray((made / "trace.bin").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    task = _verify(app, client, {"trace_file": ("trace.bin", bytes(data))})
    assert task.state == "done", task.error
    shown = task.result["verdict"]
    expected = _cli_verdict_alone(tmp_path / "bad.bin")
    assert shown["valid"] is False and shown["title"] == "INVALID"
    assert shown["failed_line"] == f"invalid: {', '.join(expected['failed'])}"
    page = client.get(f"/tasks/{task.task_id}").text
    assert "INVALID" in page and "FAILED" in page and "invalid: " in page


def _cli_verdict_alone(trace: Path) -> dict[str, Any]:
    from ramnet.valkyrie import verify_trace

    return verify_trace(trace).to_dict()


def test_a_c_that_is_not_the_traced_one_fails_its_commitment(
    app: Any, client: Any, made: Path
) -> None:
    c = np.load(made / "C.npy")
    c[0, 0] += 1
    import io

    buffer = io.BytesIO()
    np.save(buffer, c)
    files = {
        "trace_file": ("trace.bin", (made / "trace.bin").read_bytes()),
        "c_file": ("C.npy", buffer.getvalue()),
    }
    task = _verify(app, client, files)
    names = [c["name"] for c in task.result["verdict"]["checks"] if not c["ok"]]
    assert "commitment of C" in names


def test_no_trace_is_one_sentence_next_to_its_field(client: Any) -> None:
    reply = client.post("/verify", files={"a_file": ("A.npy", b"x")}, headers=HTMX)
    assert reply.headers["HX-Retarget"] == "#verify-form"
    assert 'id="trace_file-error" role="alert"' in reply.text
    assert "Choose the trace file" in reply.text


def test_an_unreadable_matrix_fails_the_task_in_one_line(app: Any, client: Any, made: Path) -> None:
    files = {
        "trace_file": ("trace.bin", (made / "trace.bin").read_bytes()),
        "a_file": ("A.npy", b"not an npy file"),
    }
    task = _verify(app, client, files)
    assert task.state == "failed" and task.error and "\n" not in task.error
