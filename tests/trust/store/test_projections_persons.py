"""The persons projection's rows: each column holds what the accepted record says (the rows are
built as tuples in the table's column order, so a column out of place would show here), and a
person's flags are the same whether the events that set them came in one append or several."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select

from trust.store.events import Event
from trust.store.eventstore import EventStore
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
