"""The rebuild's own read of the store (``projections.replay_page``) and the release counts'
build from empty tables give what the general paths give.

``replay_page`` builds accepted records and links without the converter, leaving out what no
projection reads (sealed identifiers, a link's evidence); ``ReleaseCounts.build`` counts every
unit once into empty tables without reading cells back. On random histories with linkage's
events among the case events:
- each replayed event equals the general decode's, less those two fields;
- the projections folded from the general decode's pages equal the rebuilt ones;
- the live state (projections and the counts followed page by page) equals the rebuilt one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from trust.follow import follow
from trust.release.counts import ReleaseCounts
from trust.release.streams import STREAMS
from trust.runner import rebuild
from trust.store import projections
from trust.store.events import (
    Event,
    LinkDecision,
    PairEvidence,
    RecordAccepted,
    RecordLinked,
    SealedBlob,
    VictimRef,
)
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.stored import read_page
from trust.store.tables import PROJECTION_TABLES, metadata

from .builders import accepted, consent, disposal, eid, retracted

SOURCES = ("src-a", "src-b")
CASES = ("c1", "c2", "c3")
VICTIMS = ("v1", "v2")
SEXES = ("Feminine", "Masculine", "Unknown")

Op = tuple[Any, ...]

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("accept"),
            st.sampled_from(SOURCES),
            st.sampled_from(CASES),
            st.lists(
                st.tuples(
                    st.sampled_from(VICTIMS),
                    st.sampled_from(SEXES),
                    st.one_of(st.none(), st.integers(0, 90)),
                ),
                max_size=2,
                unique_by=lambda v: v[0],
            ),
            st.one_of(st.none(), st.integers(2018, 2025)),
        ),
        st.tuples(st.just("retract"), st.sampled_from(SOURCES), st.sampled_from(CASES)),
        st.tuples(
            st.just("consent"),
            st.sampled_from(SOURCES),
            st.sampled_from(CASES),
            st.sampled_from(VICTIMS),
        ),
        st.tuples(
            st.just("dispose"),
            st.sampled_from(SOURCES),
            st.sampled_from(CASES),
            st.one_of(st.none(), st.sampled_from(VICTIMS)),
        ),
        # link a victim record accepted so far: into a new person, or an existing one
        st.tuples(st.just("link"), st.integers(0, 50), st.integers(0, 50), st.booleans()),
        st.tuples(st.just("flush")),
    ),
    min_size=1,
    max_size=40,
)


def events_of(history: list[Op]) -> list[Event | None]:
    """The events of a history, ``None`` marking where the pending batch is appended."""
    out: list[Event | None] = []
    unlinked: list[VictimRef] = []
    linked: set[VictimRef] = set()  # a record is linked once (a new version stays linked)
    persons: list[str] = []
    for op in history:
        kind = op[0]
        if kind == "accept":
            _, source_id, case_id, victims, year = op
            sealed = {v[0]: SealedBlob("ab" * 32, "bm9uY2U=", "Y2lwaGVy") for v in victims}
            out.append(accepted(source_id, case_id, victims, year=year, sealed=sealed))
            for v in victims:
                ref = VictimRef(source_id, case_id, v[0])
                if ref not in unlinked and ref not in linked:
                    unlinked.append(ref)
        elif kind == "retract":
            out.append(retracted(op[1], op[2]))
        elif kind == "consent":
            out.append(consent(op[1], op[2], op[3]))
        elif kind == "dispose":
            out.append(disposal(op[1], op[2], op[3]))
        elif kind == "link" and unlinked:
            victim = unlinked.pop(op[1] % len(unlinked))
            linked.add(victim)
            if persons and op[3]:
                person, decision = persons[op[2] % len(persons)], LinkDecision.JOINED
            else:
                person, decision = f"P-{len(persons)}", LinkDecision.NEW_PERSON
                persons.append(person)
            evidence = [PairEvidence(victim, 0.9, 3.2, {"sex": 1})]
            out.append(RecordLinked(eid(), victim, person, decision, "m1", evidence, 1_700))
        elif kind == "flush":
            out.append(None)
    return out


def run(store: EventStore, history: list[Op]) -> None:
    with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    batch: list[tuple[list[Event], Position]] = []
    offset = 0

    def flush() -> None:
        if batch:
            store.append_batch(batch, "ingest")
            batch.clear()
        follow(store, ReleaseCounts(STREAMS))  # counted live, page by page

    for ev in events_of(history):
        if ev is None:
            flush()
        elif isinstance(ev, RecordLinked):
            flush()  # linkage follows the store: it links what is stored
            store.append([ev], None, "linkage")
        else:
            batch.append(([ev], Position("tip.inbound", 0, offset)))
            offset += 1
    flush()

    with store.engine.connect() as conn:
        general = read_page(conn, 0, 10_000)
        replayed = projections.replay_page(conn, 0, 10_000)
    assert [s for s, _ in replayed] == [s for s, _ in general]
    for (_, fast), (_, full) in zip(replayed, general, strict=True):
        if isinstance(full, RecordAccepted):
            assert fast == dataclasses.replace(full, sealed_identifiers={})
        elif isinstance(full, RecordLinked):
            assert fast == dataclasses.replace(full, evidence=[])
        else:
            assert fast == full

    live = projections.snapshot(store.engine)
    assert rebuild(store, STREAMS) == len(general)
    assert projections.snapshot(store.engine) == live

    # the general decode folded from empty tables: the same projections
    with store.engine.begin() as conn:
        projections.clear(conn)
        projections.apply_many(conn, general)
    folded = projections.snapshot(store.engine)
    for table in PROJECTION_TABLES:
        assert folded[table.name] == live[table.name]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    path: Path = tmp_path_factory.mktemp("replay") / "store.db"
    s = open_store(f"sqlite:///{path}")
    yield s
    s.close()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=ops)
def test_replay_and_build_equal_the_general_paths(store: EventStore, history: list[Op]) -> None:
    run(store, history)


def test_a_history_with_links_counts_persons(store: EventStore) -> None:
    """The random histories do reach the linked-person counts (not only records' own units)."""
    history: list[Op] = [
        ("accept", "src-a", "c1", [("v1", "Feminine", 20)], 2024),
        ("accept", "src-b", "c2", [("v1", "Feminine", 21)], 2024),
        ("link", 0, 0, False),
        ("link", 0, 0, True),
    ]
    run(store, history)
    snap = projections.snapshot(store.engine)
    assert any(r[1] == "P-0" for r in snap["release_person_cells"])
    assert not any(str(r[1]).startswith("P-1") for r in snap["release_person_cells"])


@pytest.mark.postgres
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=ops)
def test_replay_and_build_equal_the_general_paths_on_postgres(
    postgres_schema_url: str, history: list[Op]
) -> None:
    pg = open_store(postgres_schema_url)
    try:
        run(pg, history)
    finally:
        pg.close()


@pytest.mark.parametrize("big", [2**64, -(2**63) - 1, 2**80])
def test_integers_beyond_64_bits_are_replayed_exactly(store: EventStore, big: int) -> None:
    """The replay reads JSON with orjson, which reads such an integer as a float: those rows
    are read by json, so the replayed event still equals the general decode's."""
    with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    record = dataclasses.replace(accepted("src-a", "c9"), produced_at_ms=big)
    link = RecordLinked(
        eid(), VictimRef("src-a", "c9", "v1"), "P-9", LinkDecision.NEW_PERSON, "m1", [], big
    )
    store.append([record], Position("tip.inbound", 0, 0), "ingest")
    store.append([link], None, "linkage")
    with store.engine.connect() as conn:
        general = read_page(conn, 0, 10)
        replayed = projections.replay_page(conn, 0, 10)
    assert [type(e) for _, e in replayed] == [RecordAccepted, RecordLinked]
    fast_record, fast_link = (e for _, e in replayed)
    assert isinstance(fast_record, RecordAccepted) and isinstance(fast_link, RecordLinked)
    assert fast_record.produced_at_ms == big and type(fast_record.produced_at_ms) is int
    assert fast_link.linked_at_ms == big and type(fast_link.linked_at_ms) is int
    full_record = general[0][1]
    assert isinstance(full_record, RecordAccepted)
    assert fast_record == dataclasses.replace(full_record, sealed_identifiers={})
    assert fast_link == general[1][1]


def test_a_rebuild_enlarges_sqlites_page_cache_only_while_it_runs(
    backend_store: EventStore,
) -> None:
    engine = backend_store.engine
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with projections.bulk_cache(conn):  # nothing to set on another database
                assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
            return
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        assert before != -projections.REBUILD_CACHE_KIB
        with projections.bulk_cache(conn):
            inside = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
            assert inside == -projections.REBUILD_CACHE_KIB
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == before
        with pytest.raises(RuntimeError), projections.bulk_cache(conn):
            raise RuntimeError("a failed rebuild")
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == before
