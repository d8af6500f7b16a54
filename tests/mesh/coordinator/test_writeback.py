"""The coordinator's deferred blob work: due order, flush by key, close runs what is left."""

from __future__ import annotations

import threading

import pytest

from ramnet.mesh.coordinator.writeback import WriteBehind


def test_tasks_run_when_due_in_due_order() -> None:
    writes = WriteBehind()
    ran: list[str] = []
    writes.schedule(0.2, "a", lambda: ran.append("late"))
    writes.schedule(0.0, "b", lambda: ran.append("now"))
    writes.schedule(0.05, "c", lambda: ran.append("soon"))
    assert writes.wait_due()
    assert ran[:1] == ["now"]
    threading.Event().wait(0.35)
    assert writes.wait_due()
    assert ran == ["now", "soon", "late"]
    writes.close()


def test_flush_runs_one_keys_tasks_now_and_close_runs_the_rest() -> None:
    writes = WriteBehind()
    ran: list[str] = []
    for name in ("x1", "y1", "x2"):
        writes.schedule(3600, name[0], lambda name=name: ran.append(name))
    assert writes.pending("x") == 2
    writes.flush("x")
    assert ran == ["x1", "x2"] and writes.pending("x") == 0 and writes.pending("y") == 1
    writes.close()
    assert ran == ["x1", "x2", "y1"]
    with pytest.raises(RuntimeError):
        writes.schedule(0, "z", lambda: None)


def test_a_failing_task_is_reported_and_the_others_still_run() -> None:
    errors: list[BaseException] = []
    writes = WriteBehind(report=errors.append)
    ran: list[int] = []
    writes.schedule(0, "k", lambda: 1 / 0)  # type: ignore[func-returns-value]
    writes.schedule(0, "k", lambda: ran.append(1))
    writes.close()
    assert ran == [1] and len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
