"""One error tree: every error class in ramnet derives from RamnetError and carries its HTTP
status, and the coordinator's app maps an error to its reply in one handler (a bug: 500 in one
line, its traceback logged once)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import ramnet
from ramnet._errors import InvalidInputError, RamnetError, TraceFormatError
from ramnet.mesh.coordinator.app import create_app, error_response
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.auth import AuthError
from ramnet.mesh.protocol.wire import WireFormatError
from ramnet.mesh.state.errors import (
    DeadlinePassedError,
    NodeBannedError,
    NotFoundError,
    ShardStateError,
    StoreConflictError,
)
from ramnet.mesh.state.ledger import InsufficientFundsError, LedgerConflictError
from ramnet.mesh.transport.server import BadLength, BodyTooLarge
from tests.mesh_server import serve_app


def _error_classes() -> Iterator[type[BaseException]]:
    for info in pkgutil.walk_packages(ramnet.__path__, "ramnet."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                yield obj


ERRORS = sorted(set(_error_classes()), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def test_the_walk_finds_the_errors_of_every_layer() -> None:
    modules = {c.__module__.split(".")[1] for c in ERRORS}
    assert {"_errors", "mesh", "sidecar"} <= modules
    names = {c.__name__ for c in ERRORS}
    assert {"TransportError", "ReplyError", "BodyLostError", "BodyTooLarge", "MeshError"} <= names


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_error_derives_from_ramnet_error_and_has_a_status(cls: type[Any]) -> None:
    assert issubclass(cls, RamnetError)
    status = cls.http_status
    assert isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599


STATUSES: list[tuple[type[RamnetError], int]] = [
    (RamnetError, 500),
    (InvalidInputError, 400),
    (TraceFormatError, 400),
    (WireFormatError, 400),
    (NotFoundError, 404),
    (InsufficientFundsError, 402),
    (NodeBannedError, 403),
    (ShardStateError, 409),
    (StoreConflictError, 409),
    (DeadlinePassedError, 409),
    (LedgerConflictError, 409),
    (BodyTooLarge, 413),
    (BadLength, 400),
    (AuthError, 401),
]


def _instance(cls: type[Any]) -> Any:
    # Any error class, whatever its constructor takes: its message set by hand where the
    # constructor wants more than a message.
    try:
        return cls("it went wrong")
    except TypeError:
        exc = cls.__new__(cls)
        Exception.__init__(exc, "it went wrong")
        return exc


@pytest.mark.parametrize(("cls", "status"), STATUSES, ids=lambda v: str(getattr(v, "__name__", v)))
def test_each_class_has_its_status(cls: type[RamnetError], status: int) -> None:
    assert cls.http_status == status
    reply = error_response(_instance(cls))
    assert reply.status_code == status
    assert reply.body == b'{"error":"it went wrong"}'


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_the_handler_answers_each_error_with_its_status(cls: type[Any]) -> None:
    reply = error_response(_instance(cls))
    assert reply.status_code == cls.http_status
    assert reply.headers["content-type"] == "application/json"


def test_an_error_s_own_status_wins() -> None:
    # AuthError carries its instance's status: 400 malformed, 401 bad signature, 409 replayed.
    for status in (400, 401, 409):
        reply = error_response(AuthError("no", status))
        assert reply.status_code == status


def test_a_bug_is_a_one_line_500_logged_once(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        {}["spec"]
    except KeyError as exc:
        reply = error_response(exc)
    assert reply.status_code == 500
    assert reply.body == b'{"error":"internal error: KeyError: \'spec\'"}'
    err = capsys.readouterr().err
    assert err.count("Traceback (most recent call last)") == 1
    assert err.count("internal error: KeyError") == 1


@pytest.fixture
def failing(tmp_path: Path) -> Iterator[tuple[str, Coordinator]]:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path / "state"))
    try:
        with serve_app(create_app(coordinator)) as port:
            yield f"http://127.0.0.1:{port}", coordinator
    finally:
        coordinator.close()


def test_the_app_maps_errors_in_one_handler(
    failing: tuple[str, Coordinator],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    base, coordinator = failing

    def broken() -> Any:
        raise ZeroDivisionError("division by zero")

    def refused() -> Any:
        raise InsufficientFundsError("balance 3 < 10")

    monkeypatch.setattr(coordinator.ledger, "show", broken)
    response = httpx.get(f"{base}/v1/ledger")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: ZeroDivisionError: division by zero"}
    err = capfd.readouterr().err
    # Logged once, with its traceback (uvicorn does not log it a second time).
    assert err.count("Traceback (most recent call last)") == 1, err
    assert "ZeroDivisionError: division by zero" in err
    monkeypatch.setattr(coordinator.ledger, "show", refused)
    response = httpx.get(f"{base}/v1/ledger")
    assert (response.status_code, response.json()) == (402, {"error": "balance 3 < 10"})
    assert "Traceback" not in capfd.readouterr().err
    # Starlette's own answers are as they were: an unknown path, a wrong method.
    assert httpx.get(f"{base}/v1/nope").status_code == 404
    assert httpx.get(f"{base}/v1/nodes").status_code == 405


def test_a_reply_that_drifts_from_its_message_fails_loudly(
    failing: tuple[str, Coordinator], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, coordinator = failing
    real = coordinator.ledger.show

    def extra_field() -> Any:
        return {**real(), "surprise": 1}

    def missing_field() -> Any:
        shown = real()
        del shown["totals"]
        return shown

    for drift in (extra_field, missing_field):
        monkeypatch.setattr(coordinator.ledger, "show", drift)
        response = httpx.get(f"{base}/v1/ledger")
        assert response.status_code == 500
        assert response.json()["error"].startswith("internal error: ValidationError: ")
