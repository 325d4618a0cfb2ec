"""Random histories: the live projections always equal the projections rebuilt from the store.

Hypothesis draws sequences of operations on a few cases (versions, retractions, consent,
disposal, rejections, releases, re-sent duplicates), appended one by one or in batches; after
each history the snapshot of the live projections must equal the snapshot after ``rebuild``,
and a duplicate must leave the store exactly as it was. Runs on SQLite, and briefly on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from trust.store import projections
from trust.store.errors import DuplicateEvent
from trust.store.events import Event
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import metadata

from .builders import accepted, consent, disposal, rejected, release, retracted

SOURCES = ("src-a", "src-b")
CASES = ("c1", "c2", "c3")
VICTIMS = ("v1", "v2", "v3")
SEXES = ("Feminine", "Masculine", "Unknown")
FORMS = ("ForcedLabour", "SexualExploitation", "ForcedBegging", "Other")

case_keys = st.tuples(st.sampled_from(SOURCES), st.sampled_from(CASES))
victim_specs = st.lists(
    st.tuples(
        st.sampled_from(VICTIMS),
        st.sampled_from(SEXES),
        st.one_of(st.none(), st.integers(min_value=0, max_value=90)),
    ),
    max_size=3,
    unique_by=lambda v: v[0],
)


@st.composite
def operations(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(
        st.sampled_from(
            ["accept", "accept", "accept", "retract", "consent", "dispose", "reject", "dup"]
        )
    )
    source_id, case_id = draw(case_keys)
    if kind == "accept":
        return kind, accepted(
            source_id,
            case_id,
            draw(victim_specs),
            year=draw(st.one_of(st.none(), st.integers(2018, 2025))),
            forms=draw(st.lists(st.sampled_from(FORMS), max_size=3)),
        )
    if kind == "retract":
        return kind, retracted(source_id, case_id)
    if kind == "consent":
        return kind, consent(source_id, case_id, draw(st.sampled_from(VICTIMS)))
    if kind == "dispose":
        victim = draw(st.one_of(st.none(), st.sampled_from(VICTIMS)))
        return kind, disposal(source_id, case_id, victim)
    if kind == "reject":
        return kind, rejected(source_id, draw(st.sampled_from(["invalid_record", "bad_signature"])))
    return kind, draw(st.integers(min_value=0))  # "dup": re-send an earlier accepted event


histories = st.lists(
    st.tuples(operations(), st.booleans()),  # (operation, flush the batch after it?)
    min_size=1,
    max_size=40,
)


def reset(store: EventStore) -> None:
    with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


def run_history(store: EventStore, history: list[tuple[tuple[str, Any], bool]]) -> None:
    reset(store)
    sent: list[Event] = []
    batch: list[tuple[list[Event], Position]] = []
    offset = 0
    releases = 0

    def flush() -> None:
        if batch:
            store.append_batch(batch, "ingest")
            batch.clear()

    for (kind, payload), flush_after in history:
        if kind == "dup":
            flush()
            if not sent:
                continue
            again = sent[payload % len(sent)]
            assert store.is_accepted(again.source_id or "", again.event_id or "")
            before = projections.snapshot(store.engine)
            positions = store.positions("ingest")
            with pytest.raises(DuplicateEvent):
                store.append([again], Position("tip.inbound", 0, offset), "ingest")
            assert projections.snapshot(store.engine) == before
            assert store.positions("ingest") == positions
            offset += 1
            continue
        event: Event = payload
        batch.append(([event], Position("tip.inbound", offset % 2, offset)))
        if event.accepted:
            sent.append(event)
        offset += 1
        if flush_after:
            flush()
            if offset % 7 == 0:  # trust-made events interleave with inbound ones
                releases += 1
                store.append([release(sequence=releases)], None, "release")
    flush()

    live = projections.snapshot(store.engine)
    assert store.rebuild_projections() == sum(store.count_by_type().values())
    assert projections.snapshot(store.engine) == live
    counts = store.rejection_counts()
    assert sum(counts.values()) == sum(1 for (k, _), _f in history if k == "reject")


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    path: Path = tmp_path_factory.mktemp("agree") / "store.db"
    store = open_store(f"sqlite:///{path}")
    yield store
    store.close()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories)
def test_live_equals_rebuilt_on_sqlite(
    sqlite_store: EventStore, history: list[tuple[tuple[str, Any], bool]]
) -> None:
    run_history(sqlite_store, history)


@pytest.mark.postgres
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories)
def test_live_equals_rebuilt_on_postgres(
    postgres_schema_url: str, history: list[tuple[tuple[str, Any], bool]]
) -> None:
    store = open_store(postgres_schema_url)
    try:
        run_history(store, history)
    finally:
        store.close()
