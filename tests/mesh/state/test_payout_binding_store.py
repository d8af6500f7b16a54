"""Payout bindings in the state store (schema v5): the flag, the document, and the v4 upgrade."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ramnet.mesh.state.errors import NotFoundError, StoreInputError
from ramnet.mesh.state.integrity import check_state_file
from ramnet.mesh.state.store import Store

A, B = "a" * 64, "b" * 64
ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
DOC = '{"version":1}'  # the store keeps what the coordinator checked; it does not check it


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.sqlite")
    yield s
    s.close()


def test_binding_binds_and_another_address_unbinds(store: Store) -> None:
    store.register_node(A, payout_address="free text")
    node = store.get_node(A)
    assert (node.payout_address, node.payout_bound) == ("free text", False)
    assert store.payout_binding(A) is None
    store.register_node(A, payout_address=ADDRESS, payout_binding=DOC)
    node = store.get_node(A)
    assert (node.payout_address, node.payout_bound) == (ADDRESS, True)
    assert store.payout_binding(A) == DOC
    # Registering again without an address, or with the bound one, keeps the binding.
    store.register_node(A, validator=True)
    store.register_node(A, payout_address=ADDRESS)
    assert store.get_node(A).payout_bound and store.payout_binding(A) == DOC
    assert store.get_node(A).validator is False  # flags follow the latest registration
    # Another address without a binding: no longer bound.
    store.register_node(A, payout_address="0x" + "1" * 40)
    node = store.get_node(A)
    assert (node.payout_address, node.payout_bound) == ("0x" + "1" * 40, False)
    assert store.payout_binding(A) is None


def test_new_node_with_binding(store: Store) -> None:
    assert store.register_node(B, payout_address=ADDRESS, payout_binding=DOC) is True
    assert [(n.node_id, n.payout_bound) for n in store.list_nodes()] == [(B, True)]


def test_binding_needs_its_address(store: Store) -> None:
    with pytest.raises(StoreInputError):
        store.register_node(A, payout_binding=DOC)
    with pytest.raises(StoreInputError):
        store.register_node(A, payout_address=ADDRESS, payout_binding="")
    with pytest.raises(NotFoundError):
        store.payout_binding(A)


def _as_version(path: Path, version: int, statements: list[str]) -> None:
    # Turn a store written now back into what an older version wrote.
    raw = sqlite3.connect(path)
    for statement in statements:
        raw.execute(statement)
    raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    raw.commit()
    raw.close()


def test_a_version_4_store_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    s = Store(path)
    s.register_node(A, payout_address="somewhere", now=1.0)
    s.close()
    # What version 4 looked like: nodes without the binding's columns.
    _as_version(
        path, 4, [f"ALTER TABLE nodes DROP COLUMN {c}" for c in ("payout_bound", "payout_binding")]
    )
    s = Store(path)
    assert s.schema_version == 7
    node = s.get_node(A)
    assert (node.payout_address, node.payout_bound, node.registered_at) == ("somewhere", False, 1.0)
    assert s.payout_binding(A) is None
    s.register_node(A, payout_address=ADDRESS, payout_binding=DOC)
    assert s.get_node(A).payout_bound
    with s.snapshot() as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE nodes SET payout_bound = 2")
    s.close()
    check_state_file(path)  # what `coordinator start` runs on a store before serving it


def test_a_version_5_store_gains_the_dashboards_indexes(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    s = Store(path)
    s.register_node(A, now=1.0)
    s.close()
    names = ("jobs_updated", "jobs_created", "jobs_state_updated", "shards_updated")
    _as_version(path, 5, [f"DROP INDEX {name}" for name in names])  # what version 5 looked like
    s = Store(path)
    assert s.schema_version == 7
    assert s.get_node(A).registered_at == 1.0
    with s.snapshot() as conn:
        found = {
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        assert set(names) <= found
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    s.close()
    check_state_file(path)
