"""The persons projection's rows: each column holds what the accepted record says (the rows are
built as tuples in the table's column order, so a column out of place would show here), and a
person's flags are the same whether the events that set them came in one append or several."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from trust.store import projections
from trust.store.db import writer
from trust.store.events import Event
from trust.store.eventstore import EventStore, open_store
from trust.store.tables import proj_persons

from .builders import accepted, consent, disposal, retracted


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def persons(store: EventStore) -> dict[tuple[str, str], dict[str, Any]]:
    with store.engine.connect() as conn:
        found = conn.execute(select(proj_persons)).mappings().all()
    return {(r["case_id"], r["victim_id"]): dict(r) for r in found}


def flags(store: EventStore) -> dict[tuple[str, str], tuple[bool, bool, bool]]:
    return {
        k: (r["consent_withdrawn"], r["disposed"], r["retracted"])
        for k, r in persons(store).items()
    }


def test_every_column_holds_the_records_value(store: EventStore) -> None:
    ev = accepted(
        "src-a",
        "c1",
        (("v2", "Masculine", None), ("v1", "Feminine", 16)),
        year=2021,
        country="NL",
        forms=("SexualExploitation", "ForcedLabour"),
    )
    store.append([ev], None, "in")
    got = persons(store)
    assert set(got) == {("c1", "v1"), ("c1", "v2")}
    assert got[("c1", "v1")] == {
        "source_id": "src-a",
        "case_id": "c1",
        "victim_id": "v1",
        "sex": "Feminine",
        "age_at_identification": 16,
        "age_range_lower": None,
        "age_range_upper": None,
        "majority_status": "Unknown",
        "age_group": got[("c1", "v1")]["age_group"],
        "forms_of_exploitation": "ForcedLabour;SexualExploitation",
        "year_of_exploitation": 2021,
        "citizenships": "RO",
        "countries_of_exploitation": "NL",
        "consent_withdrawn": False,
        "disposed": False,
        "retracted": False,
    }
    assert got[("c1", "v1")]["age_group"] not in ("Unknown", "", None)
    v2 = got[("c1", "v2")]
    assert (v2["sex"], v2["age_at_identification"], v2["age_group"]) == (
        "Masculine",
        None,
        "Unknown",
    )


def _history() -> list[Event]:
    two = (("v1", "Feminine", 23), ("v2", "Masculine", 30))
    return [
        accepted("src-a", "c1", two),
        accepted("src-a", "c2"),
        consent("src-a", "c1", "v1"),
        disposal("src-a", "c1", "v2"),
        retracted("src-a", "c2"),
        disposal("src-a", "c3", None),  # before its case: flags every victim when it comes
        accepted("src-a", "c3", two),
        accepted("src-a", "c1", two),  # a new version: flags carried over, not retracted
    ]


EXPECTED = {
    ("c1", "v1"): (True, False, False),
    ("c1", "v2"): (False, True, False),
    ("c2", "v1"): (False, False, True),
    ("c3", "v1"): (False, True, False),
    ("c3", "v2"): (False, True, False),
}


@pytest.mark.parametrize("split", [[8], [1, 1, 1, 1, 1, 1, 1, 1], [2, 3, 3], [5, 3]])
def test_flags_agree_however_the_events_are_batched(
    store: EventStore, split: Sequence[int]
) -> None:
    events = _history()
    start = 0
    for n in split:
        store.append(events[start : start + n], None, "in")
        start += n
    assert start == len(events)
    assert flags(store) == EXPECTED


def _tables(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    snap = projections.snapshot(store.engine)
    return {t: snap[t] for t in ("proj_records", "proj_persons", "proj_perpetrators")}


def test_prepared_rows_give_what_apply_many_makes_alone(tmp_path: Path) -> None:
    # an append prepares the run's rows before its lock (projections.prepare): applying the same
    # events with them, and without (apply_many prepares them itself), leaves the same tables
    events = [*_history(), disposal("src-a", "c1", None), accepted("src-a", "c1")]
    items = list(enumerate(events, start=1))
    stores = [open_store(f"sqlite:///{tmp_path / f's{i}.db'}") for i in range(2)]
    try:
        with writer(stores[0].engine).begin() as conn:
            projections.apply_many(conn, items)
        with writer(stores[1].engine).begin() as conn:
            prepared = projections.prepare(events)
            projections.apply_run(conn, [seq for seq, _ in items], events, prepared)
        alone, ahead = (_tables(s) for s in stores)
        assert alone == ahead
        assert alone["proj_persons"] and alone["proj_perpetrators"]
        # the last version of c1 came after a whole-case disposal: every row of it is disposed
        c1 = [r for r in alone["proj_perpetrators"] if r[1] == "c1"]
        assert c1 and all(r[5] for r in c1)
    finally:
        for s in stores:
            s.close()


def test_a_prepared_run_is_applied_once(store: EventStore) -> None:
    # the run's later events flag the prepared rows themselves: a second apply would start from
    # flags the tables do not hold
    events = _history()
    prepared = projections.prepare(events)
    seqs = list(range(1, len(events) + 1))
    with writer(store.engine).connect() as conn:
        with conn.begin() as tx:
            projections.apply_run(conn, seqs, events, prepared)
            tx.rollback()
        with conn.begin(), pytest.raises(ValueError, match="applied already"):
            projections.apply_run(conn, seqs, events, prepared)
        with conn.begin(), pytest.raises(ValueError, match="one seq per event"):
            projections.apply_run(conn, seqs[:-1], events)


def test_prepared_rows_of_another_run_are_refused(store: EventStore) -> None:
    events = _history()
    prepared = projections.prepare(events[:3])
    with writer(store.engine).begin() as conn, pytest.raises(ValueError, match="another run"):
        projections.apply_many(conn, list(enumerate(events, start=1)), prepared)


def test_prepare_knows_the_cases_and_the_accepted_records() -> None:
    events = _history()
    prepared = projections.prepare(events)
    assert prepared.keys == {("src-a", c) for c in ("c1", "c2", "c3")}
    assert prepared.order == sorted(prepared.keys)
    kinds = [rows is not None for rows in prepared.rows]
    assert kinds == [type(e).__name__ == "RecordAccepted" for e in events]
    first = prepared.rows[0]
    assert first is not None
    key, record, persons_rows, perpetrator_rows = first
    assert key == ("src-a", "c1")
    assert record == ("src-a", "c1", events[0].event_id, False, 1, 2024, "NL")
    assert set(persons_rows) == {"v1", "v2"}
    assert all(r[-3:] == (False, False, False) for r in persons_rows.values())
    assert perpetrator_rows is not None and set(perpetrator_rows) == {"p1"}
