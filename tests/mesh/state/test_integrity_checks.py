"""The state's integrity checks: SQLite's own, foreign keys and the ledger's invariant, before a
coordinator serves a state (``coordinator start`` refuses a damaged one in one line, exit 1), and
the warning while it runs when the ledger is no longer conserved."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from ramnet.mesh.state.integrity import (
    CorruptStateError,
    LedgerWatch,
    check_state,
    check_state_file,
)
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.store import Store
from ramnet.valkyrie import NodeKey
from tests.mesh_procs import free_port, ramnet

A = NodeKey.generate().node_id
B = NodeKey.generate().node_id


def _state(tmp_path: Path) -> Path:
    path = tmp_path / "state.sqlite"
    store = Store(path, synchronous="NORMAL")
    ledger = Ledger(store)
    ledger.grant(A, 1000)
    ledger.grant(B, 500)
    ledger.stake(A, 100)
    assert check_state(store, ledger) == []
    store.close()
    return path


def _edit(path: Path, sql: str) -> None:
    # A change made behind the coordinator's back, as a person with sqlite3 would.
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_a_sound_state_passes_and_a_missing_one_is_new(tmp_path: Path) -> None:
    check_state_file(_state(tmp_path))
    check_state_file(tmp_path / "nothing-here.sqlite")


def test_an_edited_balance_breaks_conservation_and_is_refused(tmp_path: Path) -> None:
    path = _state(tmp_path)
    _edit(path, f"UPDATE accounts SET balance = balance + 7 WHERE node_id = '{A}'")
    with pytest.raises(CorruptStateError) as err:
        check_state_file(path)
    line = str(err.value)
    assert "\n" not in line and str(path) in line
    assert "the ledger is not conserved: minted 1500 != " in line
    assert "(and 1 more)" in line  # the replay disagrees too


def test_an_edited_movement_keeps_the_totals_but_not_the_history(tmp_path: Path) -> None:
    path = _state(tmp_path)
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for name in names:  # the append-only guards, which a person editing the file can drop
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE movements SET amount = 999 WHERE kind = 'grant' AND dst = ?", (B,))
    conn.commit()
    conn.close()
    store = Store(path, synchronous="NORMAL")
    problems = check_state(store, Ledger(store))
    store.close()
    assert problems and all("the ledger's history disagrees" in p for p in problems)


def test_a_history_that_overdraws_an_account_is_named_once(tmp_path: Path) -> None:
    path = _state(tmp_path)
    conn = sqlite3.connect(path)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE movements SET amount = 5000 WHERE kind = 'stake'")
    conn.commit()
    conn.close()
    store = Store(path, synchronous="NORMAL")
    problems = check_state(store, Ledger(store))
    store.close()
    assert len([p for p in problems if f"leaves {A} negative" in p]) == 1, problems


def test_a_row_that_refers_to_a_missing_row_is_found(tmp_path: Path) -> None:
    path = _state(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = OFF")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "shards" in tables
    conn.execute(
        "INSERT INTO shards (job_id, slot, triad, role, attempt, blocks, state, created_at,"
        " updated_at) VALUES ('nosuchjob', 0, 0, 'primary', 0, '[]', 'pending', 0, 0)"
    )
    conn.commit()
    conn.close()
    with pytest.raises(CorruptStateError, match=r"1 row\(s\) refer to missing rows"):
        check_state_file(path)


def test_a_garbled_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _state(tmp_path)
    data = bytearray(path.read_bytes())
    data[:16] = b"this is no db!!\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStateError, match="refusing to serve the state in"):
        check_state_file(path)


def test_the_watch_warns_once_per_distinct_unconserved_totals(tmp_path: Path) -> None:
    path = _state(tmp_path)
    store = Store(path, synchronous="NORMAL")
    lines: list[str] = []
    watch = LedgerWatch(Ledger(store), lines.append)
    assert watch.show()["totals"]["conserved"] and lines == []
    _edit(path, f"UPDATE accounts SET balance = balance + 7 WHERE node_id = '{A}'")
    for _ in range(3):
        assert watch.show()["totals"]["conserved"] is False
    assert len(lines) == 1 and lines[0].startswith("warning: the ledger is not conserved")
    _edit(path, f"UPDATE accounts SET balance = balance + 1 WHERE node_id = '{B}'")
    watch.show()
    assert len(lines) == 2
    store.close()


def test_coordinator_start_refuses_a_damaged_state(tmp_path: Path) -> None:
    folder = tmp_path / "coord"
    folder.mkdir()
    path = _state(folder)
    _edit(path, f"UPDATE accounts SET balance = balance + 7 WHERE node_id = '{A}'")
    done = subprocess.run(
        ramnet("coordinator", "start", "--port", str(free_port()), "--data-dir", str(folder)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: refusing to serve the state in")
    assert "not conserved" in lines[0]
