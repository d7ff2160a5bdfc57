"""The cost ledger: each charge once, and a running total that always equals the entries."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from storyreel.db import Records
from storyreel.db.models import CostEntry, CostTotal
from storyreel.errors import BadInputError, ConflictError, NotFoundError
from tests.db.fixtures import billed_seconds, spent

THREADS = 8
ENTRIES = 25


def _ledger_micros(records: Records, user_id: int) -> tuple[int, int]:
    with Session(records.engine) as session:
        count, total = session.exec(
            select(func.count(), func.coalesce(func.sum(col(CostEntry.amount_micros)), 0)).where(
                col(CostEntry.user_id) == user_id
            )
        ).one()
        return int(count), int(total)


def test_a_charge_is_entered_once(records: Records) -> None:
    user = records.create_user("alice").id or 0
    assert spent(records, user) == 0.0
    assert records.record_cost(user, "gen-1", 1, 0.4, "gen-1/clip-1/round-1")
    assert not records.record_cost(user, "gen-1", 1, 0.4, "gen-1/clip-1/round-1")
    assert records.record_cost(user, "gen-1", 1, 0.35, "gen-1/clip-1/round-2")
    assert records.record_cost(user, "gen-1", None, 0.05, "gen-1/assembly")
    assert spent(records, user) == pytest.approx(0.8, abs=1e-12)
    assert _ledger_micros(records, user) == (3, 800_000)


def test_a_clips_charge_records_the_seconds_the_provider_billed(records: Records) -> None:
    user = records.create_user("alice").id or 0
    assert records.record_cost(user, "gen-1", 1, 0.25, "gen-1/clip-1/round-1", billed_seconds=5.0)
    assert records.record_cost(user, "gen-1", 2, 0.45, "gen-1/clip-2/round-1", billed_seconds=9.0)
    assert records.record_cost(user, "gen-1", None, 0.05, "gen-1/assembly")
    # The same charge sent again by a worker that did not record billed seconds yet: no change.
    assert not records.record_cost(user, "gen-1", 1, 0.25, "gen-1/clip-1/round-1")
    assert billed_seconds(records, "gen-1") == {
        "gen-1/clip-1/round-1": 5.0,
        "gen-1/clip-2/round-1": 9.0,
        "gen-1/assembly": None,
    }
    assert spent(records, user) == pytest.approx(0.75, abs=1e-12)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(BadInputError, match="billed seconds"):
            records.record_cost(user, "gen-1", 3, 0.1, "gen-1/clip-3/round-1", billed_seconds=bad)
    assert billed_seconds(records, "gen-2") == {}


def test_a_key_reused_for_another_charge_is_a_conflict(records: Records) -> None:
    user = records.create_user("alice").id or 0
    other = records.create_user("bob").id or 0
    records.record_cost(user, "gen-1", 1, 0.4, "k")
    with pytest.raises(ConflictError):
        records.record_cost(user, "gen-1", 1, 0.5, "k")
    with pytest.raises(ConflictError):
        records.record_cost(other, "gen-1", 1, 0.4, "k")
    assert spent(records, user) == 0.4
    assert spent(records, other) == 0.0


def test_bad_charges_are_refused(records: Records) -> None:
    user = records.create_user("alice").id or 0
    for amount in (float("nan"), float("inf")):
        with pytest.raises(BadInputError):
            records.record_cost(user, "gen-1", 1, amount, "k")
    with pytest.raises(BadInputError):
        records.record_cost(user, "gen-1", 1, 0.1, "")
    with pytest.raises(NotFoundError):
        records.record_cost(4242, "gen-1", 1, 0.1, "k")
    assert spent(records, user) == 0.0


def test_totals_are_exact_under_concurrent_writers(records: Records) -> None:
    """8 threads x 25 charges, each also re-sending its neighbour's: every charge counted once."""
    alice = records.create_user("alice").id or 0
    bob = records.create_user("bob").id or 0
    start = threading.Barrier(THREADS)

    def charge(thread: int) -> int:
        start.wait()
        entered = 0
        for i in range(ENTRIES):
            user = alice if i % 5 else bob
            for sender in (thread, (thread + 1) % THREADS):
                entered += records.record_cost(user, f"gen-{sender}", i, 0.1, f"{sender}/{i}")
        return entered

    with ThreadPoolExecutor(THREADS) as pool:
        entered = sum(pool.map(charge, range(THREADS)))

    assert entered == THREADS * ENTRIES
    bob_entries = THREADS * len(range(0, ENTRIES, 5))
    alice_entries = THREADS * ENTRIES - bob_entries
    assert _ledger_micros(records, alice) == (alice_entries, alice_entries * 100_000)
    assert _ledger_micros(records, bob) == (bob_entries, bob_entries * 100_000)
    assert spent(records, alice) == alice_entries / 10
    assert spent(records, bob) == bob_entries / 10
    with Session(records.engine) as session:
        totals = session.exec(select(CostTotal).order_by(col(CostTotal.user_id))).all()
        assert [(t.user_id, t.entries) for t in totals] == [
            (alice, alice_entries),
            (bob, bob_entries),
        ]
