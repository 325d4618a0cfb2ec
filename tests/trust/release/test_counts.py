"""The release stage's counts by citizenship and country of exploitation: the projection holds
them per victim record, persons combine them, tables group them into the most frequent, Multiple,
Rest and Unknown; migration 0007 fills them for records accepted before it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from tests.trust.store.builders import accepted
from trust.follow import follow
from trust.release import streams
from trust.release.aggregate import aggregate, table_from_counts
from trust.release.categories import Category, Classification
from trust.release.counts import RecordFacts, ReleaseCounts, cell_counts, combine, counted_persons
from trust.release.streams import (
    STREAMS,
    VICTIMS_BY_YEAR_CITIZENSHIP,
    VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION,
)
from trust.store.db import alembic_config, writer
from trust.store.events import RecordAccepted
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import proj_persons

COUNTRY_STREAMS = {
    s.name: s for s in (VICTIMS_BY_YEAR_CITIZENSHIP, VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION)
}


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def record(
    case: str, citizenships: Sequence[str], country: str, also: Sequence[str] = ()
) -> RecordAccepted:
    ev = accepted(case_id=case, country=country, year=2022)
    rec: dict[str, Any] = dict(ev.record)
    rec["victims"] = [{**rec["victims"][0], "citizenships": list(citizenships)}]
    rec["event"] = {**rec["event"], "countries_of_exploitation": [country, *also]}
    return dataclasses.replace(ev, record=rec)


def populate(store: EventStore) -> None:
    events = [
        *(record(f"ro{i}", ["RO"], "NL") for i in range(14)),
        *(record(f"ng{i}", ["NG"], "NL") for i in range(11)),
        *(record(f"vn{i}", ["VN"], "DE") for i in range(3)),  # too few to be named: Rest
        record("dual", ["RO", "GB"], "NL"),  # two citizenships: Multiple
        record("none", [], "Unknown"),  # nothing recorded: Unknown
        record("two", ["RO"], "NL", also=("BE",)),  # exploited in two countries
    ]
    store.append_batch([([ev], Position("t", 0, i)) for i, ev in enumerate(events)], "ingest")


def tables(store: EventStore) -> dict[str, dict[tuple[str, ...], int]]:
    follow(store, ReleaseCounts(STREAMS))
    out = {}
    with store.engine.connect() as conn:
        for name, spec in COUNTRY_STREAMS.items():
            table = table_from_counts(spec, cell_counts(conn, spec, ["src-a"]))
            out[name] = {key: n for key, n in table.counts.items() if n}
    return out


def test_citizenship_most_frequent_then_multiple_rest_unknown(store: EventStore) -> None:
    populate(store)
    follow(store, ReleaseCounts(STREAMS))
    with store.engine.connect() as conn:
        counts = cell_counts(conn, VICTIMS_BY_YEAR_CITIZENSHIP, ["src-a"])
    table = table_from_counts(VICTIMS_BY_YEAR_CITIZENSHIP, counts)
    assert table.categories == (("2022",), ("RO", "NG", "Multiple", "Rest", "Unknown"))
    assert {k: n for k, n in table.counts.items() if n} == {
        ("2022", "RO"): 15,
        ("2022", "NG"): 11,
        ("2022", "Multiple"): 1,
        ("2022", "Rest"): 3,
        ("2022", "Unknown"): 1,
    }
    assert "Other" not in table.categories[1]
    # the projection's counts are a count of the persons themselves
    assert table == aggregate(counted_persons(store), VICTIMS_BY_YEAR_CITIZENSHIP)


def test_countries_of_exploitation_are_the_case_country_and_its_list(store: EventStore) -> None:
    populate(store)
    got = tables(store)[VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION.name]
    assert got == {
        ("2022", "NL"): 26,
        ("2022", "Multiple"): 1,  # NL and BE
        ("2022", "Rest"): 3,  # DE: fewer than k
        ("2022", "Unknown"): 1,
    }


def test_a_person_combines_the_countries_of_their_records() -> None:
    facts = combine(
        ("p",),
        [
            RecordFacts(("a", "c1", "v"), "Feminine", 20, (), 2021, ("RO",), ("NL",)),
            RecordFacts(("b", "c2", "v"), "Feminine", 21, (), 2022, ("RO",), ("NL", "BE")),
            RecordFacts(("c", "c3", "v"), "Unknown", None, (), None),
        ],
    )
    assert facts.citizenships == ("RO",) and facts.countries == ("BE", "NL")


def test_migration_0007_fills_records_accepted_before_it(store: EventStore) -> None:
    populate(store)
    before = tables(store)
    engine = store.engine
    cfg = alembic_config()
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
        command.upgrade(cfg, "head")  # 0007, then the migrations after it
    with engine.connect() as conn:
        rows = conn.execute(
            proj_persons.select().where(proj_persons.c.case_id.in_(["dual", "two", "none"]))
        ).mappings()
        got = {r["case_id"]: (r["citizenships"], r["countries_of_exploitation"]) for r in rows}
    assert got == {"dual": ("GB;RO", "NL"), "two": ("RO", "BE;NL"), "none": ("", "")}
    # persons counted from the filled projection are in the cells they were in
    persons = counted_persons(store)
    for name, spec in COUNTRY_STREAMS.items():
        table = aggregate(persons, spec)
        assert {key: n for key, n in table.counts.items() if n} == before[name]


def test_the_counts_rebuild_when_a_standard_classification_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = ReleaseCounts(STREAMS).version
    forms = [c.code for c in streams.FORM.categories]
    every_form = Classification(
        "form",
        categories=tuple(Category(c, c) for c in streams.FORMS),
        code_list=streams.FORMS,
    )
    assert forms != list(streams.FORMS)
    monkeypatch.setattr(streams, "CLASSIFICATIONS", {**streams.CLASSIFICATIONS, "form": every_form})
    assert ReleaseCounts(STREAMS).version != before  # cells counted by the old groups are stale


# -- ages given as a band or an adult/minor status (issue #20) ----------------------------------


def aged(
    case: str,
    age: int | None,
    lower: int | None = None,
    upper: int | None = None,
    status: str = "Unknown",
) -> RecordAccepted:
    ev = accepted(case_id=case, year=2022)
    rec: dict[str, Any] = dict(ev.record)
    victim = {
        **rec["victims"][0],
        "age_at_identification": age,
        "age_range_lower": lower,
        "age_range_upper": upper,
        "majority_status": status,
    }
    rec["victims"] = [victim]
    return dataclasses.replace(ev, record=rec)


AGED = {
    "exact": ((16, None, None, "Unknown"), "12-17"),
    "band-9-17": ((None, 9, 17, "Unknown"), "0-17 band unknown"),
    "minor": ((None, None, None, "Minor"), "0-17 band unknown"),
    "band-18-20": ((None, 18, 20, "Unknown"), "18-24"),
    "band-30-38": ((None, 30, 38, "Unknown"), "18+ band unknown"),
    "adult": ((None, None, None, "Adult"), "18+ band unknown"),
    "band-15-20-minor": ((None, 15, 20, "Minor"), "12-17"),
    "nothing": ((None, None, None, "Unknown"), "Unknown"),
}


def populate_aged(store: EventStore) -> None:
    events = [aged(case, *facts) for case, (facts, _) in AGED.items()]
    store.append_batch([([ev], Position("t", 0, i)) for i, ev in enumerate(events)], "ingest")


def age_groups(store: EventStore) -> dict[str, str]:
    with store.engine.connect() as conn:
        p = proj_persons.c
        return {case: group for case, group in conn.execute(sa.select(p.case_id, p.age_group))}


def test_the_projection_places_each_record_by_its_best_age_information(store: EventStore) -> None:
    populate_aged(store)
    assert age_groups(store) == {case: group for case, (_, group) in AGED.items()}
    with store.engine.connect() as conn:
        row = (
            conn.execute(proj_persons.select().where(proj_persons.c.case_id == "band-15-20-minor"))
            .mappings()
            .one()
        )
    assert (row["age_range_lower"], row["age_range_upper"], row["majority_status"]) == (
        15,
        20,
        "Minor",
    )


def test_band_only_and_minor_only_persons_count_in_children(store: EventStore) -> None:
    populate_aged(store)
    follow(store, ReleaseCounts(STREAMS))
    spec = streams.VICTIMS_BY_YEAR_AGE_GROUP
    with store.engine.connect() as conn:
        table = table_from_counts(spec, cell_counts(conn, spec, ["src-a"]))
    got = {key[1]: n for key, n in table.counts.items() if n}
    assert got == {
        "12-17": 2,  # the exact 16, and 15-20 with Minor
        "0-17 band unknown": 2,  # 9--17, and Minor alone
        "18-24": 1,
        "18+ band unknown": 2,  # 30--38, and Adult alone
        "Unknown": 1,
    }
    assert table == aggregate(counted_persons(store), spec)


def r(age: int | None, lower: int | None = None, upper: int | None = None) -> RecordFacts:
    return RecordFacts(("s", "c", "v"), "Feminine", age, (), 2022, age_lower=lower, age_upper=upper)


@pytest.mark.parametrize(
    ("records", "group"),
    [
        ([r(30), r(None, 9, 17)], "25-34"),  # an exact age wins over any range
        ([r(None, 9, 17), r(None, 18, 20)], "0-17 band unknown"),  # the youngest range
        ([r(None, None, 17), r(None, 12, 17)], "12-17"),  # the narrowest of the youngest
        ([r(None, 18, None), r(None, 30, 38)], "18+ band unknown"),
        ([r(None, 48, None), r(None)], "45+"),  # a record without a range adds nothing
        ([r(None), r(None)], "Unknown"),
    ],
)
def test_a_person_combines_the_age_of_their_records(records: list[RecordFacts], group: str) -> None:
    assert combine(("p",), records).age_group() == group


def _migration_fills_the_age_ranges(s: EventStore) -> None:
    populate_aged(s)
    before = age_groups(s)
    cfg = alembic_config()
    with writer(s.engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    assert set(age_groups(s).values()) <= set(streams.AGE_GROUPS) - {
        "0-17 band unknown",
        "18+ band unknown",
    }
    with writer(s.engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert age_groups(s) == before
    persons = counted_persons(s)
    assert sorted(p.age_group() for p in persons) == sorted(g for _, g in AGED.values())


def test_migration_0008_fills_records_accepted_before_it(store: EventStore) -> None:
    _migration_fills_the_age_ranges(store)


@pytest.mark.postgres
def test_migration_0008_fills_records_accepted_before_it_on_postgres(
    postgres_schema_url: str,
) -> None:
    s = open_store(postgres_schema_url)
    try:
        _migration_fills_the_age_ranges(s)
    finally:
        s.close()


def test_a_stored_list_of_codes_splits_into_its_codes_with_no_empty_ones() -> None:
    from trust.release.counts import _split

    assert _split(None) == () and _split("") == ()
    assert _split("ForcedLabour") == ("ForcedLabour",)
    assert _split("FR;VN") == ("FR", "VN")
    assert _split(";FR;;VN;") == ("FR", "VN")
