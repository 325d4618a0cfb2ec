"""Random histories: the live projections equal an independent model, equal the projections
rebuilt from the store, and SQLite and PostgreSQL agree.

Hypothesis draws sequences of operations on a few cases (versions, retractions, consent,
disposal, rejections, releases, re-sent duplicates), appended one by one or in batches, with the
release stage's cell counts followed along the way. After each history:
- the persons and perpetrators projections and the release cell counts (of the streams about
  victims and about perpetrators) equal those of a small in-memory model of the documented
  semantics (no database, no shared code with the projections);
- rebuilding every projection from the stored events gives the live state back;
- a duplicate left the store exactly as it was;
- the same history on SQLite and on PostgreSQL gives the same state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from trust.follow import follow
from trust.release import counts as release_counts
from trust.release.aggregate import (
    PerpetratorFacts,
    PersonFacts,
    aggregate,
    cell_of,
    table_from_counts,
)
from trust.release.counts import ReleaseCounts
from trust.release.streams import PERPETRATORS, STREAMS, StreamSpec
from trust.runner import rebuild
from trust.store import projections
from trust.store.errors import DuplicateEvent
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    Event,
    RecordAccepted,
    RecordRetracted,
)
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import metadata, proj_perpetrators, proj_persons

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
            follow(store, ReleaseCounts(STREAMS))  # the release stage's counts, live
    flush()
    follow(store, ReleaseCounts(STREAMS))

    model = Model()
    for (kind, payload), _ in history:
        if kind != "dup":
            model.apply(payload)
    assert persons_state(store) == model.persons()
    assert perpetrators_state(store) == model.perpetrator_rows()
    with store.engine.connect() as conn:
        for spec in STREAMS.values():
            sources = release_counts.contributing_sources(conn, spec.name)
            # compared as tables: a most-frequent dimension groups its codes at table time
            table = table_from_counts(spec, release_counts.cell_counts(conn, spec, sources))
            assert {k: n for k, n in table.counts.items() if n > 0} == model.cells(spec)

    live = projections.snapshot(store.engine)
    assert rebuild(store, STREAMS) == sum(store.count_by_type().values())
    assert projections.snapshot(store.engine) == live
    counts = store.rejection_counts()
    assert sum(counts.values()) == sum(1 for (k, _), _f in history if k == "reject")


class Model:
    """The documented semantics of the persons projection, in plain Python."""

    def __init__(self) -> None:
        # (source, case) -> victim id -> person facts and flags; retracted cases
        self.cases: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.retracted: set[tuple[str, str]] = set()
        # every withdrawal and disposal, by victim ("" = the whole case): applies whenever the
        # victim's record arrives, before or after
        self.erased: dict[tuple[str, str], set[tuple[str, str]]] = {}
        # (source, case) -> perpetrator id -> (roles, year); a whole-case disposal takes them out
        self.perpetrators: dict[tuple[str, str], dict[str, tuple[tuple[str, ...], Any]]] = {}

    def apply(self, ev: Event) -> None:
        if isinstance(ev, RecordAccepted):
            key = (ev.source_id, ev.case_id)
            old = self.cases.get(key, {})
            tip = ev.record["event"]
            new = {}
            for v in ev.victims:
                before = old.get(v["victim_id"], {})
                new[v["victim_id"]] = {
                    "sex": v.get("sex") or "Unknown",
                    "age": v.get("age_at_identification"),
                    "forms": tuple(sorted(set(tip.get("forms_of_exploitation") or ()))),
                    "year": tip.get("year_of_exploitation"),
                    "citizenships": _codes(v.get("citizenships") or ()),
                    "countries": _codes(
                        [
                            tip.get("country_of_exploitation"),
                            *(tip.get("countries_of_exploitation") or ()),
                        ]
                    ),
                    "consent_withdrawn": before.get("consent_withdrawn", False)
                    or (v["victim_id"], "consent") in self.erased.get(key, set()),
                    "disposed": before.get("disposed", False)
                    or (v["victim_id"], "disposed") in self.erased.get(key, set())
                    or ("", "disposed") in self.erased.get(key, set()),
                }
            self.cases[key] = new
            self.retracted.discard(key)
            self.perpetrators[key] = {
                p["perpetrator_id"]: (
                    tuple(sorted(set(p["roles"]))),
                    tip.get("year_of_exploitation"),
                )
                for p in ev.record.get("perpetrators") or ()
            }
        elif isinstance(ev, RecordRetracted):
            self.retracted.add((ev.source_id, ev.case_id))
        elif isinstance(ev, ConsentWithdrawn):
            self.erased.setdefault((ev.source_id, ev.case_id), set()).add((ev.victim_id, "consent"))
            person = self.cases.get((ev.source_id, ev.case_id), {}).get(ev.victim_id)
            if person is not None:
                person["consent_withdrawn"] = True
        elif isinstance(ev, DisposalRequested):
            self.erased.setdefault((ev.source_id, ev.case_id), set()).add(
                (ev.victim_id or "", "disposed")
            )
            case = self.cases.get((ev.source_id, ev.case_id), {})
            for vid, person in case.items():
                if ev.victim_id is None or ev.victim_id == vid:
                    person["disposed"] = True

    def persons(self) -> dict[tuple[str, str, str], tuple[Any, ...]]:
        return {
            (s, c, v): (
                p["sex"],
                p["age"],
                p["forms"],
                p["year"],
                p["consent_withdrawn"],
                p["disposed"],
                (s, c) in self.retracted,
                p["citizenships"],
                p["countries"],
            )
            for (s, c), case in self.cases.items()
            for v, p in case.items()
        }

    def perpetrator_rows(self) -> dict[tuple[str, str, str], tuple[Any, ...]]:
        return {
            (s, c, pid): (
                roles,
                year,
                ("", "disposed") in self.erased.get((s, c), set()),
                (s, c) in self.retracted,
            )
            for (s, c), case in self.perpetrators.items()
            for pid, (roles, year) in case.items()
        }

    def cells(self, spec: StreamSpec) -> dict[tuple[str, ...], int]:
        if spec.subject == PERPETRATORS:
            cell = cell_of(spec)
            out: dict[tuple[str, ...], int] = {}
            for key, (roles, year, disposed, retracted) in self.perpetrator_rows().items():
                if not (disposed or retracted):
                    at = cell(PerpetratorFacts(key, roles, year))
                    out[at] = out.get(at, 0) + 1
            grouped = table_from_counts(spec, out)
            return {k: n for k, n in grouped.counts.items() if n > 0}
        counted = [
            PersonFacts((s, c, v), p[0], p[1], p[2], p[3], citizenships=p[7], countries=p[8])
            for (s, c, v), p in self.persons().items()
            if not (p[4] or p[5] or p[6])
        ]
        table = aggregate(counted, spec)
        return {k: n for k, n in table.counts.items() if n > 0}


def _codes(codes: Any) -> tuple[str, ...]:
    """Country codes as the projection keeps them: distinct, sorted, ``Unknown`` left out."""
    return tuple(sorted({c for c in codes if c and c != "Unknown"}))


def persons_state(store: EventStore) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(proj_persons)).mappings().all()
    return {
        (r["source_id"], r["case_id"], r["victim_id"]): (
            r["sex"],
            r["age_at_identification"],
            tuple(f for f in r["forms_of_exploitation"].split(";") if f),
            r["year_of_exploitation"],
            r["consent_withdrawn"],
            r["disposed"],
            r["retracted"],
            tuple(c for c in r["citizenships"].split(";") if c),
            tuple(c for c in r["countries_of_exploitation"].split(";") if c),
        )
        for r in rows
    }


def perpetrators_state(store: EventStore) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(proj_perpetrators)).mappings().all()
    return {
        (r["source_id"], r["case_id"], r["perpetrator_id"]): (
            tuple(x for x in r["roles"].split(";") if x),
            r["year_of_exploitation"],
            r["disposed"],
            r["retracted"],
        )
        for r in rows
    }


def comparable(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    """The whole state without store-assigned numbers (sequences differ between databases)."""
    snap = projections.snapshot(store.engine)
    snap["proj_rejections"] = sorted(r[1:] for r in snap["proj_rejections"])
    # (consumer, stream, sequence, release_id, ...): the trust draws a fresh release id each time
    snap["proj_releases"] = sorted(r[:3] + r[4:] for r in snap["proj_releases"])
    return snap


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


@pytest.mark.postgres
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories)
def test_sqlite_and_postgres_agree(
    sqlite_store: EventStore, postgres_url: str, history: list[tuple[tuple[str, Any], bool]]
) -> None:
    pg = _pg_store(postgres_url)
    run_history(sqlite_store, history)
    run_history(pg, history)
    assert comparable(sqlite_store) == comparable(pg)


_PG: dict[str, EventStore] = {}


def _pg_store(url: str) -> EventStore:
    """One migrated PostgreSQL store per session for the agreement test (reset per history)."""
    if url not in _PG:
        import sqlalchemy as sa

        schema = "agree_" + uuid.uuid4().hex[:12]
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        engine.dispose()
        scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        _PG[url] = open_store(scoped.render_as_string(hide_password=False))
    return _PG[url]
