"""The mesh ledger: integer money, conservation, idempotent payments, slashing, crash safety."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet._errors import InvalidInputError, RamnetError
from ramnet.mesh.state.errors import StoreInputError
from ramnet.mesh.state.ledger import (
    MAX_SUPPLY,
    InsufficientFundsError,
    Ledger,
    LedgerConflictError,
    LedgerError,
    LedgerInputError,
    SlashResult,
)
from ramnet.mesh.state.store import Store

A, B, C, D = (f"{i + 1:064x}" for i in range(4))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = Store(tmp_path / "state.db")
    yield Ledger(store)
    store.close()


def totals(ledger: Ledger) -> dict[str, object]:
    t = ledger.show()["totals"]
    assert isinstance(t, dict)
    assert ledger.totals() == t  # summed in SQL (the dashboard's), the same in every state
    return t


def bal(ledger: Ledger, node: str) -> tuple[int, int, int]:
    a = ledger.account(node)
    return a["bond"], a["balance"], a["slashed"]


def test_show_json_contract(ledger: Ledger) -> None:
    assert ledger.show() == {
        "accounts": [],
        "totals": {
            "minted": 0,
            "burned": 0,
            "escrow": 0,
            "balances": 0,
            "bonds": 0,
            "conserved": True,
        },
    }
    ledger.grant(B, 5)
    ledger.grant(A, 7)
    shown = ledger.show()
    assert shown["accounts"] == [
        {"node_id": A, "bond": 0, "balance": 7, "slashed": 0},
        {"node_id": B, "bond": 0, "balance": 5, "slashed": 0},
    ]
    assert shown["totals"]["minted"] == 12 and shown["totals"]["balances"] == 12


def test_grant_stake_unstake(ledger: Ledger) -> None:
    assert ledger.grant(A, 100) is True
    assert ledger.grant(A, 100, ref="welcome:A") is True
    assert ledger.grant(A, 100, ref="welcome:A") is False  # the default credit, once
    with pytest.raises(LedgerConflictError):
        ledger.grant(A, 99, ref="welcome:A")
    assert ledger.stake(A, 150)
    assert bal(ledger, A) == (150, 50, 0)
    with pytest.raises(InsufficientFundsError):
        ledger.stake(A, 51)
    assert ledger.unstake(A, 100)
    with pytest.raises(InsufficientFundsError):
        ledger.unstake(A, 51)
    assert bal(ledger, A) == (50, 150, 0)
    assert ledger.stake(A, 10, ref="stake-req-1") and not ledger.stake(A, 10, ref="stake-req-1")
    assert bal(ledger, A) == (60, 140, 0)
    assert ledger.account(D) == {"node_id": D, "bond": 0, "balance": 0, "slashed": 0}
    assert totals(ledger)["conserved"] is True


@pytest.mark.parametrize("amount", [0, -1, 1.5, 2.0, True, "10", None, MAX_SUPPLY + 1])
def test_amounts_must_be_positive_integers(ledger: Ledger, amount: object) -> None:
    ledger.grant(A, 10)
    with pytest.raises(LedgerInputError):
        ledger.grant(A, amount)  # type: ignore[arg-type]
    with pytest.raises(LedgerInputError):
        ledger.stake(A, amount)  # type: ignore[arg-type]
    with pytest.raises(LedgerInputError):
        ledger.escrow(A, "job", amount)  # type: ignore[arg-type]
    with pytest.raises(LedgerInputError):
        ledger.pay("job", A, amount)  # type: ignore[arg-type]
    assert issubclass(LedgerInputError, InvalidInputError)
    assert bal(ledger, A) == (0, 10, 0)


def test_bad_ids_refused(ledger: Ledger) -> None:
    with pytest.raises(StoreInputError):
        ledger.grant("not-a-node", 1)
    with pytest.raises(StoreInputError):
        ledger.escrow(A, "../job", 1)


def test_supply_cap(ledger: Ledger) -> None:
    ledger.grant(A, MAX_SUPPLY)
    with pytest.raises(LedgerError, match="supply"):
        ledger.grant(B, 1)
    assert totals(ledger)["conserved"] is True


def test_escrow_pay_refund(ledger: Ledger) -> None:
    ledger.grant(A, 1000)
    with pytest.raises(InsufficientFundsError, match="balance is 1000"):
        ledger.escrow(A, "job1", 1001)
    assert ledger.escrow(A, "job1", 600) is True
    assert ledger.escrow(A, "job1", 600) is False  # a retried submission escrows once
    assert ledger.escrow(A, "job1", 100, ref="top-up-1") is True
    assert ledger.escrow_held("job1") == 700 and bal(ledger, A) == (0, 300, 0)
    with pytest.raises(LedgerConflictError):
        ledger.escrow(B, "job1", 1, ref="other")  # B has no balance anyway, but not its escrow
    assert ledger.pay("job1", B, 200) is True
    assert ledger.pay("job1", B, 200) is False  # never twice for (job, node, reason)
    with pytest.raises(LedgerConflictError):
        ledger.pay("job1", B, 201)
    assert ledger.pay("job1", B, 50, reason="validator") is True
    assert ledger.pay("job1", C, 200) is True
    with pytest.raises(InsufficientFundsError, match="holds 250"):
        ledger.pay("job1", D, 251)
    with pytest.raises(InsufficientFundsError):
        ledger.pay("no-such-job", D, 1)
    with pytest.raises(LedgerInputError):
        ledger.pay("job1", D, 1, reason="a:b")
    with pytest.raises(LedgerConflictError):
        ledger.refund("job1", B)
    assert ledger.refund("job1", A) == 250
    assert ledger.refund("job1") == 0 and ledger.refund("never") == 0
    assert bal(ledger, A) == (0, 550, 0) and bal(ledger, B) == (0, 250, 0)
    t = totals(ledger)
    assert (t["minted"], t["escrow"], t["balances"], t["conserved"]) == (1000, 0, 1000, True)
    kinds = [m["kind"] for m in ledger.movements(job_id="job1")]
    assert kinds == ["escrow", "escrow", "pay", "pay", "pay", "refund"]
    assert [m["kind"] for m in ledger.movements(node_id=B)] == ["pay", "pay"]
    assert ledger.verify() == []


def test_slash_bounty_and_burn(ledger: Ledger) -> None:
    ledger.grant(A, 1000)
    ledger.stake(A, 999)
    r = ledger.slash(A, B, Fraction(1, 2), "job1")
    assert r == SlashResult(applied=True, slashed=999, bounty=499, burned=500)
    assert ledger.slash(A, B, Fraction(1, 2), "job1") == SlashResult(False, 999, 499, 500)
    assert bal(ledger, A) == (0, 1, 999) and bal(ledger, B) == (0, 499, 0)
    t = totals(ledger)
    assert (t["burned"], t["bonds"], t["conserved"]) == (500, 0, True)
    # No bond: nothing to take. A float fraction is read as its decimal value.
    assert ledger.slash(A, B, 0.3, "job2") == SlashResult(True, 0, 0, 0)
    ledger.grant(C, 10)
    ledger.stake(C, 10)
    assert ledger.slash(C, B, 0.3, "job3").bounty == 3
    ledger.grant(D, 10)
    ledger.stake(D, 10)
    assert ledger.slash(D, None, 0.9, "job3") == SlashResult(True, 10, 0, 10)
    # Self-challenge never pays: the node gets back less than it staked.
    ledger.stake(B, 100)
    before = sum(bal(ledger, B)[:2])
    ledger.slash(B, B, Fraction(9, 10), "job4")
    assert sum(bal(ledger, B)[:2]) < before
    for bad in (-0.1, 1.5, float("nan"), "1/2", True):
        with pytest.raises(LedgerInputError):
            ledger.slash(A, B, bad, "job9")  # type: ignore[arg-type]
    assert totals(ledger)["conserved"] is True and ledger.verify() == []


def test_slash_ref_conflict(ledger: Ledger) -> None:
    ledger.grant(A, 10)
    ledger.stake(A, 10)
    ledger.grant(B, 10, ref="r")
    with pytest.raises(LedgerConflictError):
        ledger.slash(A, None, 0, "job1", ref="r")


def test_movements_are_append_only(ledger: Ledger) -> None:
    ledger.grant(A, 10)
    with pytest.raises(RamnetError, match="append-only"), ledger.store.transaction() as conn:
        conn.execute("UPDATE movements SET amount = 1")
    with pytest.raises(RamnetError, match="append-only"), ledger.store.transaction() as conn:
        conn.execute("DELETE FROM movements")
    assert ledger.verify() == []


def test_ledger_joins_store_transactions(ledger: Ledger) -> None:
    ledger.grant(A, 100)
    with pytest.raises(RuntimeError), ledger.store.transaction():
        ledger.escrow(A, "job1", 50)
        ledger.pay("job1", B, 50)
        raise RuntimeError("crash before commit")
    assert bal(ledger, A) == (0, 100, 0) and bal(ledger, B) == (0, 0, 0)
    with ledger.store.transaction():
        ledger.escrow(A, "job1", 50)
        with pytest.raises(InsufficientFundsError):
            ledger.pay("job1", B, 51)  # its savepoint is undone, the escrow stays
    assert ledger.escrow_held("job1") == 50 and totals(ledger)["conserved"] is True


def test_concurrent_payments_from_threads(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    stores = [Store(path, synchronous="NORMAL") for _ in range(2)]
    ledgers = [Ledger(s) for s in stores]
    ledgers[0].grant(A, 10_000)
    ledgers[0].escrow(A, "job", 8_000)
    workers = [f"{i + 10:064x}" for i in range(8)]
    results: list[bool] = []
    lock = threading.Lock()

    def pay(i: int) -> None:
        for w in workers:  # every thread tries to pay every worker: each paid once
            ok = ledgers[i % 2].pay("job", w, 100)
            with lock:
                results.append(ok)
        ledgers[i % 2].grant(B, 1)

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == len(workers)
    assert all(ledgers[1].account(w)["balance"] == 100 for w in workers)
    assert ledgers[0].account(B)["balance"] == 6
    assert ledgers[0].escrow_held("job") == 8_000 - 100 * len(workers)
    assert ledgers[1].show()["totals"]["conserved"] is True and ledgers[1].verify() == []
    for s in stores:
        s.close()


# --------------------------------------------------------------------------------------------
# Invariants under random operation sequences

NODES = [A, B, C]
JOBS = ["j0", "j1"]
_ops = st.one_of(
    st.tuples(st.just("grant"), st.sampled_from(NODES), st.integers(1, 500)),
    st.tuples(st.just("stake"), st.sampled_from(NODES), st.integers(1, 300)),
    st.tuples(st.just("unstake"), st.sampled_from(NODES), st.integers(1, 300)),
    st.tuples(
        st.just("escrow"), st.sampled_from(NODES), st.sampled_from(JOBS), st.integers(1, 300)
    ),
    st.tuples(
        st.just("pay"),
        st.sampled_from(JOBS),
        st.sampled_from(NODES),
        st.integers(1, 200),
        st.sampled_from(["work", "validator"]),
    ),
    st.tuples(st.just("refund"), st.sampled_from(JOBS)),
    st.tuples(
        st.just("slash"),
        st.sampled_from(NODES),
        st.sampled_from([*NODES, None]),
        st.fractions(0, 1, max_denominator=10),
        st.sampled_from(JOBS),
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_ops, max_size=30))
def test_random_operations_conserve_and_never_go_negative(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.db", synchronous="NORMAL")
        ledger = Ledger(store)
        paid: dict[tuple[object, ...], object] = {}
        escrowed: set[tuple[object, ...]] = set()
        slashed: set[tuple[object, ...]] = set()
        try:
            for op in ops:
                kind = op[0]
                before = ledger.show()
                try:
                    if kind == "grant":
                        assert ledger.grant(op[1], op[2]) is True  # type: ignore[arg-type]
                    elif kind == "stake":
                        ledger.stake(op[1], op[2])  # type: ignore[arg-type]
                    elif kind == "unstake":
                        ledger.unstake(op[1], op[2])  # type: ignore[arg-type]
                    elif kind == "escrow":
                        applied = ledger.escrow(op[1], op[2], op[3])  # type: ignore[arg-type]
                        assert applied == ((op[2], op[1]) not in escrowed)
                        escrowed.add((op[2], op[1]))
                    elif kind == "pay":
                        key = (op[1], op[2], op[4])
                        applied = ledger.pay(op[1], op[2], op[3], reason=op[4])  # type: ignore[arg-type]
                        assert applied == (key not in paid)
                        paid.setdefault(key, op[3])
                    elif kind == "refund":
                        ledger.refund(op[1])  # type: ignore[arg-type]
                        assert ledger.escrow_held(op[1]) == 0  # type: ignore[arg-type]
                    else:
                        skey = (op[4], op[1])
                        r = ledger.slash(op[1], op[2], op[3], op[4])  # type: ignore[arg-type]
                        assert r.applied == (skey not in slashed)
                        assert r.bounty + r.burned == r.slashed
                        if r.slashed:
                            slashed.add(skey)
                except (InsufficientFundsError, LedgerConflictError):
                    assert ledger.show() == before  # a refused operation changes nothing
                shown = ledger.show()
                assert shown["totals"]["conserved"] is True
                for acct in shown["accounts"]:
                    assert min(acct["bond"], acct["balance"], acct["slashed"]) >= 0
                assert shown["totals"]["escrow"] >= 0
            assert ledger.verify() == []
            # A coordinator that crashed and retries every payment pays nothing more.
            before = ledger.show()
            for (job, node, reason), amount in paid.items():
                assert ledger.pay(job, node, amount, reason=reason) is False  # type: ignore[arg-type]
            assert ledger.show() == before
        finally:
            store.close()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 10**6), st.integers(1, 10**6), st.fractions(0, 1, max_denominator=1000))
def test_slash_splits_exactly(bond: int, extra: int, frac: Fraction) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.db", synchronous="NORMAL")
        ledger = Ledger(store)
        ledger.grant(A, bond + extra)
        ledger.stake(A, bond)
        r = ledger.slash(A, B, frac, "job")
        assert r.slashed == bond and r.bounty == (bond * frac.numerator) // frac.denominator
        assert ledger.account(B)["balance"] == r.bounty
        assert ledger.show()["totals"]["burned"] == bond - r.bounty
        assert ledger.show()["totals"]["conserved"] is True
        store.close()


# --------------------------------------------------------------------------------------------
# Crash safety: killed at an arbitrary moment of a busy loop

_LOOP_SCRIPT = r"""
import sys
from ramnet.mesh.state.store import Store
from ramnet.mesh.state.ledger import Ledger

store = Store(sys.argv[1])
ledger = Ledger(store)
consumer = "c" * 64
ledger.grant(consumer, 10**9, ref="seed")
i = 0
while True:
    job = f"job{i}"
    worker = f"{i % 7 + 1:064x}"
    with store.transaction():
        ledger.escrow(consumer, job, 300)
        ledger.pay(job, worker, 200)
        ledger.grant(worker, 5)
        ledger.stake(worker, 5)
    if i % 3 == 0:
        ledger.slash(worker, consumer, 0.5, job)
    ledger.refund(job)
    print(i, flush=True)
    i += 1
"""


def test_sigkill_at_any_moment_keeps_the_ledger_conserved(tmp_path: Path) -> None:
    for round_ in range(3):
        path = tmp_path / f"loop{round_}.db"
        proc = subprocess.Popen(
            [sys.executable, "-c", _LOOP_SCRIPT, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == "0", proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05 + 0.07 * round_)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        done = [int(x) for x in (first + out).split()]
        with Store(path) as store:
            ledger = Ledger(store)
            shown = ledger.show()
            assert shown["totals"]["conserved"] is True
            assert ledger.verify() == []
            # Every iteration it reported is there, in full.
            for i in done:
                assert ledger.pay(f"job{i}", f"{i % 7 + 1:064x}", 200) is False
                assert ledger.escrow_held(f"job{i}") == 0
            with store.snapshot() as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                # And the atomic block is all-or-nothing: every escrow has its payment.
                escrows = conn.execute(
                    "SELECT count(*) FROM movements WHERE kind = 'escrow'"
                ).fetchone()[0]
                pays = conn.execute("SELECT count(*) FROM movements WHERE kind = 'pay'").fetchone()[
                    0
                ]
            assert escrows == pays >= len(done)
