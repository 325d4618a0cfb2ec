"""The release stage's own projection: counted persons per stream, source and cell.

A follower of the store (:class:`ReleaseCounts`). For each event that can change who is counted —
a record accepted or retracted, consent withdrawn, disposal — it takes the case's persons as the
persons projection holds them now, puts each counted person in its cell of every stream, and
moves the per-cell counts by the difference. So a release check reads cell counts, never every
person: its cost follows the number of cells, and keeping the counts follows the events that
changed, not the size of the store.

The persons projection is written in the ingest transaction, so when this follower reads a case
it may already be newer than the event being handled; setting a case's cells from its current
state is idempotent, and once the follower has caught up its counts equal a count of the persons
projection (a test checks it on random histories).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, select

from trust.follow import Batch
from trust.release.aggregate import FORMS, SEXES, PersonFacts, cell_of
from trust.release.streams import AGE_GROUPS, StreamSpec
from trust.store.db import bulk_insert
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    RecordAccepted,
    RecordRetracted,
)
from trust.store.eventstore import EventStore
from trust.store.projections import by_source
from trust.store.tables import proj_persons as _persons
from trust.store.tables import release_cell_counts as _counts
from trust.store.tables import release_person_cells as _cells

RELEASE_COUNTS = "trust-release-counts"

_CASE_EVENTS = (RecordAccepted, RecordRetracted, ConsentWithdrawn, DisposalRequested)
_CHUNK = 400  # keys per IN (...) list

CaseKey = tuple[str, str]
PersonKey = tuple[str, str, str]


#: What one count is, as this module counts it (every release's metadata quotes this text).
COUNTING_RULE = (
    "One count per victim of each case record, not linked: a person in several cases or seen by "
    "several agencies is counted once per case record. Retracted records, disposed persons and "
    "persons who withdrew consent are not counted."
)


def _cell_json(cell: tuple[str, ...]) -> str:
    return json.dumps(list(cell), separators=(",", ":"), ensure_ascii=False)


def person_facts(row: Mapping[Any, Any]) -> PersonFacts:
    """The facts a release counts by, from a ``proj_persons`` row."""
    return PersonFacts(
        person_id=(row["source_id"], row["case_id"], row["victim_id"]),
        sex=row["sex"],
        age=row["age_at_identification"],
        forms=tuple(f for f in row["forms_of_exploitation"].split(";") if f),
        year=row["year_of_exploitation"],
    )


def _counted(row: Mapping[Any, Any]) -> bool:
    """Whether a ``proj_persons`` row is counted (see :data:`COUNTING_RULE`)."""
    return not (row["retracted"] or row["disposed"] or row["consent_withdrawn"])


def counted_persons(store: EventStore) -> list[PersonFacts]:
    """Every counted person (reads the whole persons projection: for summaries and tests; the
    release stage reads cell counts instead)."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(_persons)).mappings().all()
    return [person_facts(r) for r in rows if _counted(r)]


class ReleaseCounts:
    """Keeps ``release_cell_counts`` equal to a count of the counted persons (a StoreFollower)."""

    name = RELEASE_COUNTS
    event_types = frozenset(cls.event_type for cls in _CASE_EVENTS)
    reads_records = False  # the persons projection holds what is counted; events name the case

    def __init__(self, streams: Mapping[str, StreamSpec]) -> None:
        self.streams = dict(streams)
        # the counts depend on the streams' definitions, the counting rule and the age groups:
        # when any of them changes, the follower rebuilds its tables from the whole store
        basis = repr((sorted(self.streams.items()), COUNTING_RULE, AGE_GROUPS, FORMS, SEXES))
        self.version = hashlib.sha256(basis.encode()).hexdigest()[:32]
        self._cell_of = {stream: cell_of(spec) for stream, spec in self.streams.items()}

    def apply(self, conn: Connection, events: Batch) -> None:
        keys = {(ev.source_id, ev.case_id) for _, ev in events if isinstance(ev, _CASE_EVENTS)}
        if keys:
            self.recount(conn, keys)

    def recount(self, conn: Connection, keys: set[CaseKey]) -> None:
        """Set these cases' persons' cells from the persons projection, moving the counts."""
        p = _persons.c
        counted = ~(p.retracted | p.disposed | p.consent_withdrawn)  # see COUNTING_RULE
        facts = (
            p.source_id,
            p.case_id,
            p.victim_id,
            p.sex,
            p.age_at_identification,
            p.forms_of_exploitation,
            p.year_of_exploitation,
        )
        held_cols = (_cells.c.stream, _cells.c.source_id, _cells.c.case_id, _cells.c.victim_id)
        now: dict[PersonKey, PersonFacts] = {}
        before: dict[tuple[str, PersonKey], str] = {}
        for source_id, case_ids in by_source(keys):
            rows = conn.execute(
                select(*facts).where(p.source_id == source_id, p.case_id.in_(case_ids), counted)
            ).all()
            for src, case, victim, sex, age, forms, year in rows:
                pkey = (src, case, victim)
                now[pkey] = PersonFacts(
                    pkey, sex, age, tuple(f for f in forms.split(";") if f), year
                )
            held = conn.execute(
                select(*held_cols, _cells.c.cell).where(
                    _cells.c.source_id == source_id, _cells.c.case_id.in_(case_ids)
                )
            ).all()
            for stream, src, case, victim, cell in held:
                before[(stream, (src, case, victim))] = cell

        cells: dict[tuple[str, ...], str] = {}  # cell -> its JSON, made once per cell

        def as_json(cell: tuple[str, ...]) -> str:
            text = cells.get(cell)
            if text is None:
                text = cells[cell] = _cell_json(cell)
            return text

        after: dict[tuple[str, PersonKey], str] = {
            (stream, pkey): as_json(cell(person))
            for stream, cell in self._cell_of.items()
            for pkey, person in now.items()
        }
        delta: Counter[tuple[str, str, str]] = Counter()
        for (stream, pkey), cell in before.items():
            delta[(stream, pkey[0], cell)] -= 1
        for (stream, pkey), cell in after.items():
            delta[(stream, pkey[0], cell)] += 1
        for source_id, case_ids in by_source(keys):
            conn.execute(
                delete(_cells).where(
                    _cells.c.source_id == source_id, _cells.c.case_id.in_(case_ids)
                )
            )
        bulk_insert(
            conn,
            _cells,
            [
                {"stream": s, "source_id": k[0], "case_id": k[1], "victim_id": k[2], "cell": c}
                for (s, k), c in sorted(after.items())
            ],
        )
        self._move(conn, {key: n for key, n in delta.items() if n != 0})

    @staticmethod
    def _move(conn: Connection, delta: Mapping[tuple[str, str, str], int]) -> None:
        if not delta:
            return
        t = _counts
        current: dict[tuple[str, str, str], int] = {}
        wanted = sorted(delta)
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            by_stream_source: dict[tuple[str, str], list[str]] = {}
            for stream, source_id, cell in chunk:
                by_stream_source.setdefault((stream, source_id), []).append(cell)
            for (stream, source_id), cells in by_stream_source.items():
                rows = conn.execute(
                    select(t.c.cell, t.c.persons).where(
                        and_(t.c.stream == stream, t.c.source_id == source_id, t.c.cell.in_(cells))
                    )
                )
                for cell, persons in rows:
                    current[(stream, source_id, cell)] = int(persons)
        for (stream, source_id), cells in _group(current).items():
            for i in range(0, len(cells), _CHUNK):
                conn.execute(
                    delete(t).where(
                        t.c.stream == stream,
                        t.c.source_id == source_id,
                        t.c.cell.in_(cells[i : i + _CHUNK]),
                    )
                )
        rows_out = []
        for key in wanted:
            n = current.get(key, 0) + delta[key]
            if n < 0:
                raise AssertionError("a cell count went below zero: the projection is corrupt")
            if n > 0:
                rows_out.append(
                    {"stream": key[0], "source_id": key[1], "cell": key[2], "persons": n}
                )
        bulk_insert(conn, t, rows_out)

    def clear(self, conn: Connection) -> None:
        """Empty this projection (before a rebuild from position 0)."""
        conn.execute(delete(_cells))
        conn.execute(delete(_counts))


def _group(keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for stream, source_id, cell in sorted(keys):
        out.setdefault((stream, source_id), []).append(cell)
    return out


def cell_counts(
    conn: Connection, stream: str, sources: Sequence[str]
) -> dict[tuple[str, ...], int]:
    """Counted persons per cell of ``stream`` over the given sources."""
    out: Counter[tuple[str, ...]] = Counter()
    t = _counts
    for i in range(0, len(sources), _CHUNK):
        rows = conn.execute(
            select(t.c.cell, t.c.persons).where(
                t.c.stream == stream, t.c.source_id.in_(list(sources[i : i + _CHUNK]))
            )
        )
        for cell, persons in rows:
            out[tuple(json.loads(cell))] += int(persons)
    return dict(out)


def contributing_sources(conn: Connection, stream: str) -> list[str]:
    """The sources with at least one counted person in ``stream``."""
    t = _counts
    return sorted(
        conn.execute(select(t.c.source_id).where(t.c.stream == stream).distinct()).scalars()
    )
