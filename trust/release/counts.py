"""The release stage's own projection: counted persons per stream, set of sources and cell.

A follower of the store (:class:`ReleaseCounts`). The unit it counts is a **person**: the person
linkage placed a victim record in (``proj_person_links``), or — for a record linkage has not
placed (no linkage runs, or it has not reached the record yet) — the record on its own. For each
event that can change who is counted or who is whom — a record accepted or retracted, consent
withdrawn, disposal, and linkage's events — it takes the affected persons as the projections hold
them now, combines each person's counted records into one set of facts (:func:`combine`), puts
the person in its cell of every stream and moves the per-cell counts by the difference. So a
release check reads cell counts, never every person.

Counts are kept per set of sources that make each person, so a release may count only the
sources whose agreements allow it: persons made only of allowed sources are read from the counts;
a person seen by an allowed and a refused source is counted from its allowed records alone
(:func:`cell_counts` recombines those few).

A stream about perpetrators (``StreamSpec.subject``) is counted by the same follower and tables:
its unit is a **perpetrator record** (``proj_perpetrators``: one per distinct source, case and
perpetrator id, never linked, so always of one source), re-counted when its case is accepted,
retracted or disposed of; :func:`cell_counts` and :func:`contributing_sources` read its cells as
any stream's.

The projections are written in the ingest and linkage transactions, so when this follower reads a
person it may already be newer than the event being handled; setting a person's cells from its
current state is idempotent, and once the follower has caught up its counts equal a count of the
projections (a test checks it on random histories).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, and_, delete, insert, select

from schemas.rules import AGE_PATH, age_bounds, int_range
from trust.follow import Batch
from trust.release.aggregate import (
    FORMS,
    ROLE_RULE,
    SEXES,
    UNKNOWN,
    VICTIMISATIONS,
    Facts,
    PerpetratorFacts,
    PersonFacts,
    cell_of,
)
from trust.release.streams import AGE_GROUPS, PERPETRATORS, ROLES, VICTIMS, StreamSpec
from trust.store.db import bulk_insert
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    PersonsMerged,
    PersonSplit,
    RecordAccepted,
    RecordLinked,
    RecordRetracted,
    RecordUnlinked,
)
from trust.store.eventstore import EventStore
from trust.store.projections import bulk_cache, by_source
from trust.store.tables import proj_perpetrators as _perpetrators
from trust.store.tables import proj_person_links as _links
from trust.store.tables import proj_persons as _persons
from trust.store.tables import release_cell_counts as _counts
from trust.store.tables import release_person_cells as _cells

RELEASE_COUNTS = "trust-release-counts"

_CASE_EVENTS = (RecordAccepted, RecordRetracted, ConsentWithdrawn, DisposalRequested)
_LINK_EVENTS = (RecordLinked, RecordUnlinked, PersonsMerged, PersonSplit)
_CHUNK = 400  # keys per IN (...) list
_RECORD_UNIT = "record:"
_PERPETRATOR_UNIT = "perpetrator:"

CaseKey = tuple[str, str]
RecordKey = tuple[str, str, str]

#: How the facts of one person's records combine (every release's metadata quotes it).
COMBINING_RULE = (
    "A person's facts combine over their counted records: sex is the code the records agree "
    "on (the most frequent known code; 'Unknown' when known codes tie); age is the youngest "
    "recorded age at identification (the first identification), or, when no record has an "
    "exact age, the youngest age range the records give (an age band narrowed by the "
    "adult/minor status: the one with the lowest upper bound, the narrowest of those); the year of exploitation is "
    "the earliest recorded (a person whose records name two or more different years is a repeat "
    "victim); forms of exploitation are the union of the records' forms, and so are "
    "citizenships and countries of exploitation."
)

_UNLINKED_RULE = (
    "One count per victim of each case record, not linked: a person in several cases or seen by "
    "several agencies is counted once per case record. Retracted records, disposed persons and "
    "persons who withdrew consent are not counted."
)


PERPETRATOR_RULE = (
    "One count per perpetrator record: each distinct (source, case, perpetrator id) once, never "
    "linked across sources or cases (a person recorded by two agencies, or in two cases, counts "
    "once for each). Only sources whose agreement shares perpetrator data are counted; "
    "perpetrators of retracted cases and of cases disposed of are not. The year is the case's "
    "year of exploitation. " + ROLE_RULE
)


def counting_rule(model_version: str | None, subject: str = VICTIMS) -> str:
    """What one count is: for a stream about perpetrators, one per perpetrator record
    (:data:`PERPETRATOR_RULE`, linkage or not); else distinct persons after linkage under
    ``model_version``, or (None) one per victim record when the trust does not link."""
    if subject == PERPETRATORS:
        return PERPETRATOR_RULE
    if model_version is None:
        return _UNLINKED_RULE
    return (
        f"Distinct persons after record linkage, model version {model_version}: the victim "
        "records linkage places in one person, from any source and case, count once. A record "
        "awaiting an operator's review counts as a person of its own. Retracted records, "
        "disposed persons and persons who withdrew consent are not counted. " + COMBINING_RULE
    )


#: The rule when records are not linked (kept for callers that count without linkage).
COUNTING_RULE = counting_rule(None)


def record_unit(key: RecordKey) -> str:
    """The unit id of a record linkage has not placed."""
    return _RECORD_UNIT + json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))


def _unit_record(unit: str) -> RecordKey | None:
    if not unit.startswith(_RECORD_UNIT):
        return None
    s, c, v = json.loads(unit[len(_RECORD_UNIT) :])
    return (s, c, v)


def perpetrator_unit(key: RecordKey) -> str:
    """The unit id of a perpetrator record (source, case, perpetrator id)."""
    return _PERPETRATOR_UNIT + json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))


def _unit_perpetrator(unit: str) -> RecordKey | None:
    if not unit.startswith(_PERPETRATOR_UNIT):
        return None
    s, c, p = json.loads(unit[len(_PERPETRATOR_UNIT) :])
    return (s, c, p)


def _unit_case(unit: str) -> RecordKey | None:
    """The (source, case, id) of a unit that is one record (a victim's or a perpetrator's)."""
    return _unit_record(unit) or _unit_perpetrator(unit)


def _subject_of(unit: str) -> str:
    return PERPETRATORS if unit.startswith(_PERPETRATOR_UNIT) else VICTIMS


def _cell_json(cell: tuple[str, ...]) -> str:
    return json.dumps(list(cell), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """One counted victim record's facts, as ``proj_persons`` holds them."""

    key: RecordKey
    sex: str
    age: int | None
    forms: tuple[str, ...]
    year: int | None
    citizenships: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    # the record's age range with its majority status (schemas.rules.age_bounds); None: open
    age_lower: int | None = None
    age_upper: int | None = None


def youngest_range(records: Sequence[RecordFacts]) -> tuple[int | None, int | None]:
    """The age range of the records that says the person is youngest: the lowest upper bound
    (an open one counts as the oldest), then the highest lower bound (the narrowest); (None,
    None) when no record gives a range. Used only when no record has an exact age."""
    ranged = [(r.age_lower, r.age_upper) for r in records if (r.age_lower, r.age_upper) != _OPEN]
    if not ranged:
        return _OPEN
    return min(ranged, key=lambda b: (_AGE_MAX if b[1] is None else b[1], -(b[0] or 0)))


_OPEN: tuple[int | None, int | None] = (None, None)
_AGE_MAX = int_range(AGE_PATH)[1]


def combine(unit: tuple[str, ...], records: Sequence[RecordFacts]) -> PersonFacts:
    """One person's facts from their counted records (see :data:`COMBINING_RULE`)."""
    sexes = Counter(r.sex for r in records if r.sex != UNKNOWN)
    ranked = sexes.most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        sex = UNKNOWN
    else:
        sex = ranked[0][0]
    ages = [r.age for r in records if r.age is not None]
    lower, upper = youngest_range(records) if not ages else _OPEN
    years = [r.year for r in records if r.year is not None]
    forms = sorted({f for r in records for f in r.forms})
    return PersonFacts(
        person_id=unit,
        sex=sex,
        age=min(ages) if ages else None,
        forms=tuple(forms),
        year=min(years) if years else None,
        years=tuple(sorted(set(years))),
        citizenships=tuple(sorted({c for r in records for c in r.citizenships})),
        countries=tuple(sorted({c for r in records for c in r.countries})),
        age_lower=lower,
        age_upper=upper,
    )


def _sources_text(sources: Iterable[str]) -> str:
    return ";".join(sorted(set(sources)))


_FACT_COLUMNS = (
    _persons.c.source_id,
    _persons.c.case_id,
    _persons.c.victim_id,
    _persons.c.sex,
    _persons.c.age_at_identification,
    _persons.c.forms_of_exploitation,
    _persons.c.year_of_exploitation,
    _persons.c.citizenships,
    _persons.c.countries_of_exploitation,
    _persons.c.age_range_lower,
    _persons.c.age_range_upper,
    _persons.c.majority_status,
)


def _counted_clause() -> Any:
    p = _persons.c
    return ~(p.retracted | p.disposed | p.consent_withdrawn)


def _facts_row(row: Sequence[Any]) -> RecordFacts:
    src, case, victim, sex, age, forms, year, citizenships, countries, lower, upper, status = row
    lower, upper = age_bounds(lower, upper, status)
    return RecordFacts(
        (src, case, victim),
        sex,
        age,
        _split(forms),
        year,
        _split(citizenships),
        _split(countries),
        lower,
        upper,
    )


def _split(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    if ";" not in text:  # most columns hold one code
        return (text,)
    return tuple(c for c in text.split(";") if c)


def person_records(conn: Connection, person_ids: Sequence[str]) -> dict[str, list[RecordFacts]]:
    """The counted records of each person (persons with none are absent)."""
    out: dict[str, list[RecordFacts]] = {}
    p, ln = _persons.c, _links.c
    for i in range(0, len(person_ids), _CHUNK):
        chunk = list(person_ids[i : i + _CHUNK])
        rows = conn.execute(
            select(ln.person_id, *_FACT_COLUMNS)
            .join(
                _persons,
                and_(
                    p.source_id == ln.source_id,
                    p.case_id == ln.case_id,
                    p.victim_id == ln.victim_id,
                ),
            )
            .where(ln.person_id.in_(chunk), _counted_clause())
        ).all()
        for row in rows:
            out.setdefault(row[0], []).append(_facts_row(row[1:]))
    return out


def _unlinked_records(conn: Connection, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordFacts]:
    """Of these records, the counted ones linkage has not placed."""
    out: dict[RecordKey, RecordFacts] = {}
    by_case: set[CaseKey] = {(k[0], k[1]) for k in keys}
    wanted = set(keys)
    p, ln = _persons.c, _links.c
    for source_id, case_ids in by_source(by_case):
        rows = conn.execute(
            select(*_FACT_COLUMNS)
            .outerjoin(
                _links,
                and_(
                    p.source_id == ln.source_id,
                    p.case_id == ln.case_id,
                    p.victim_id == ln.victim_id,
                ),
            )
            .where(
                p.source_id == source_id,
                p.case_id.in_(case_ids),
                _counted_clause(),
                ln.person_id.is_(None),
            )
        ).all()
        for row in rows:
            facts = _facts_row(row)
            if facts.key in wanted:
                out[facts.key] = facts
    return out


def _perpetrator_facts(
    conn: Connection, keys: Sequence[RecordKey]
) -> dict[RecordKey, PerpetratorFacts]:
    """Of these perpetrator records, the counted ones (not retracted, not disposed)."""
    out: dict[RecordKey, PerpetratorFacts] = {}
    wanted = set(keys)
    t = _perpetrators.c
    for source_id, case_ids in by_source({(k[0], k[1]) for k in keys}):
        rows = conn.execute(
            select(t.source_id, t.case_id, t.perpetrator_id, t.roles, t.year_of_exploitation).where(
                t.source_id == source_id,
                t.case_id.in_(case_ids),
                ~(t.retracted | t.disposed),
            )
        ).all()
        for src, case, pid, roles, year in rows:
            key = (src, case, pid)
            if key in wanted:
                out[key] = PerpetratorFacts(key, _split(roles), year)
    return out


def unit_facts(conn: Connection, units: Iterable[str]) -> dict[str, tuple[Facts, str]]:
    """Each counted unit's combined facts and its sources (``;``-joined); uncounted units are
    absent. A perpetrator record's unit has :class:`PerpetratorFacts`, a person's
    :class:`PersonFacts`."""
    persons: list[str] = []
    records: list[RecordKey] = []
    perpetrators: list[RecordKey] = []
    for unit in units:
        key = _unit_record(unit)
        perpetrator = None if key is not None else _unit_perpetrator(unit)
        if key is not None:
            records.append(key)
        elif perpetrator is not None:
            perpetrators.append(perpetrator)
        else:
            persons.append(unit)
    out: dict[str, tuple[Facts, str]] = {}
    for person, recs in person_records(conn, sorted(set(persons))).items():
        out[person] = (combine((person,), recs), _sources_text(r.key[0] for r in recs))
    for key, facts in _unlinked_records(conn, sorted(set(records))).items():
        out[record_unit(key)] = (combine(key, [facts]), key[0])
    for key, found in _perpetrator_facts(conn, sorted(set(perpetrators))).items():
        out[perpetrator_unit(key)] = (found, key[0])
    return out


_BUILD_CHUNK = 20_000  # units recounted at a time when the counts are built from the projections


def _driver_rows(conn: Connection, stmt: Any) -> Iterator[Sequence[Any]]:
    """The rows of ``stmt`` (a SELECT with no parameters) from the driver's own cursor,
    ``_BUILD_CHUNK`` at a time, inside ``conn``'s transaction: a server-side cursor on
    PostgreSQL (a read of the whole projection never sits in memory). SQLAlchemy's result rows
    cost more than the build does with each of them; the columns read here (text, integers)
    come from the driver as they would from SQLAlchemy."""
    compiled = stmt.compile(dialect=conn.dialect)
    if compiled.params:
        raise ValueError("a streamed read takes no parameters")
    raw: Any = conn.connection.driver_connection
    named = conn.dialect.name == "postgresql"
    cursor = raw.cursor(name="tiptrust_counts") if named else raw.cursor()
    try:
        cursor.execute(compiled.string)
        while True:
            part = cursor.fetchmany(_BUILD_CHUNK)
            if not part:
                break
            yield from part
    finally:
        cursor.close()


def _counted_units(conn: Connection) -> Iterator[tuple[str, Facts, str]]:
    """Every counted unit once, with its combined facts and its sources, streamed from the
    projections: what :func:`unit_facts` gives for every unit there is (an uncounted unit is
    absent as there), in three reads instead of one look-up per chunk of units. A person's
    records come together (read in person id order); their order within the person does not
    matter to :func:`combine`."""
    p, ln, t = _persons.c, _links.c, _perpetrators.c
    same_record = and_(
        p.source_id == ln.source_id, p.case_id == ln.case_id, p.victim_id == ln.victim_id
    )
    unlinked = (
        select(*_FACT_COLUMNS)
        .outerjoin(_links, same_record)
        .where(_counted_clause(), ln.person_id.is_(None))
    )
    for row in _driver_rows(conn, unlinked):
        facts = _facts_row(row)
        yield record_unit(facts.key), combine(facts.key, [facts]), facts.key[0]
    linked = (
        select(ln.person_id, *_FACT_COLUMNS)
        .join(_persons, same_record)
        .where(_counted_clause())
        .order_by(ln.person_id)
    )
    person: str | None = None
    records: list[RecordFacts] = []
    for row in _driver_rows(conn, linked):
        if row[0] != person:
            if person is not None and records:
                yield person, combine((person,), records), _sources_text(r.key[0] for r in records)
            person, records = row[0], []
        records.append(_facts_row(row[1:]))
    if person is not None and records:
        yield person, combine((person,), records), _sources_text(r.key[0] for r in records)
    perpetrators = select(
        t.source_id, t.case_id, t.perpetrator_id, t.roles, t.year_of_exploitation
    ).where(~(t.retracted | t.disposed))
    for src, case, pid, roles, year in _driver_rows(conn, perpetrators):
        key = (src, case, pid)
        yield perpetrator_unit(key), PerpetratorFacts(key, _split(roles), year), src


def _case_units(conn: Connection, keys: set[CaseKey]) -> set[str]:
    """The units a case's victims are (or were, unplaced) counted as."""
    units: set[str] = set()
    p, ln = _persons.c, _links.c
    for source_id, case_ids in by_source(keys):
        for victim in conn.execute(
            select(p.source_id, p.case_id, p.victim_id).where(
                p.source_id == source_id, p.case_id.in_(case_ids)
            )
        ).all():
            units.add(record_unit((victim[0], victim[1], victim[2])))
        t = _perpetrators.c
        for perpetrator in conn.execute(
            select(t.source_id, t.case_id, t.perpetrator_id).where(
                t.source_id == source_id, t.case_id.in_(case_ids)
            )
        ).all():
            units.add(perpetrator_unit((perpetrator[0], perpetrator[1], perpetrator[2])))
        units.update(
            conn.execute(
                select(ln.person_id).where(ln.source_id == source_id, ln.case_id.in_(case_ids))
            ).scalars()
        )
        # a victim a new version of its case dropped is gone from the projections: its unit
        # is found by the case it was counted under
        units.update(
            conn.execute(
                select(_cells.c.unit_id).where(
                    _cells.c.source_id == source_id, _cells.c.case_id.in_(case_ids)
                )
            ).scalars()
        )
    return units


def counted_persons(store: EventStore) -> list[PersonFacts]:
    """Every counted person (reads the whole projection: for summaries and tests; the release
    stage reads cell counts instead)."""
    with store.engine.connect() as conn:
        keys = [
            (r[0], r[1], r[2])
            for r in conn.execute(
                select(_persons.c.source_id, _persons.c.case_id, _persons.c.victim_id)
            )
        ]
        persons = sorted(set(conn.execute(select(_links.c.person_id)).scalars()))
        units = [*persons, *(record_unit(k) for k in keys)]
        return [f for f, _ in unit_facts(conn, units).values() if isinstance(f, PersonFacts)]


def counted_records(store: EventStore) -> int:
    """How many victim records are counted (what a count without linkage would say)."""
    with store.engine.connect() as conn:
        return len(conn.execute(select(_persons.c.victim_id).where(_counted_clause())).all())


class ReleaseCounts:
    """Keeps ``release_cell_counts`` equal to a count of the counted persons (a StoreFollower)."""

    name = RELEASE_COUNTS
    event_types = frozenset(cls.event_type for cls in (*_CASE_EVENTS, *_LINK_EVENTS))
    reads_records = False  # the projections hold what is counted; events name who changed

    def __init__(self, streams: Mapping[str, StreamSpec]) -> None:
        self.streams = dict(streams)
        # the counts depend on the streams' definitions, the unit and combining rule and the
        # age groups: when any of them changes, the follower rebuilds its tables from the store
        basis = repr(
            (
                sorted(self.streams.items()),
                # the categories a cell is counted in (a stream's own or the standard ones)
                [spec.classifications() for _, spec in sorted(self.streams.items())],
                "persons-v2",  # v2: age ranges and majority status
                "perpetrators-v1",  # perpetrator records for streams about perpetrators
                ROLE_RULE,
                ROLES,
                COMBINING_RULE,
                AGE_GROUPS,
                FORMS,
                SEXES,
                VICTIMISATIONS,
            )
        )
        self.version = hashlib.sha256(basis.encode()).hexdigest()[:32]
        self._cell_of = {stream: cell_of(spec) for stream, spec in self.streams.items()}
        self._subject = {stream: spec.subject for stream, spec in self.streams.items()}

    def apply(self, conn: Connection, events: Batch) -> None:
        cases: set[CaseKey] = set()
        units: set[str] = set()
        for _, ev in events:
            if isinstance(ev, _CASE_EVENTS):
                cases.add((ev.source_id, ev.case_id))
            elif isinstance(ev, RecordLinked | RecordUnlinked):
                units.update((ev.person_id, record_unit(ev.victim.key())))
            elif isinstance(ev, PersonsMerged):
                units.update((ev.person_id, *ev.absorbed))
            elif isinstance(ev, PersonSplit):
                units.update((ev.person_id, ev.new_person_id))
        units |= _case_units(conn, cases)
        if units:
            self.recount(conn, units)

    def recount(self, conn: Connection, units: set[str]) -> None:
        """Set these units' cells from the projections, moving the counts."""
        now = unit_facts(conn, units)
        wanted = sorted(units)
        # naming the streams lets the database use the table's key (stream, unit_id): by unit
        # alone every statement scanned the whole table, which grows with the store
        streams = sorted(self._cell_of)
        before: dict[tuple[str, str], tuple[str, str]] = {}  # (stream, unit) -> (cell, sources)
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            for stream, unit, cell, sources in conn.execute(
                select(_cells.c.stream, _cells.c.unit_id, _cells.c.cell, _cells.c.sources).where(
                    _cells.c.stream.in_(streams), _cells.c.unit_id.in_(chunk)
                )
            ):
                before[(stream, unit)] = (cell, sources)

        cells: dict[tuple[str, ...], str] = {}  # cell -> its JSON, made once per cell

        def as_json(cell: tuple[str, ...]) -> str:
            text = cells.get(cell)
            if text is None:
                text = cells[cell] = _cell_json(cell)
            return text

        # each stream counts the units of its subject: persons, or perpetrator records
        subjects = {unit: _subject_of(unit) for unit in now}
        after: dict[tuple[str, str], tuple[str, str]] = {
            (stream, unit): (as_json(cell(facts)), sources)
            for stream, cell in self._cell_of.items()
            for unit, (facts, sources) in now.items()
            if subjects[unit] == self._subject[stream]
        }
        delta: Counter[tuple[str, str, str]] = Counter()
        for (stream, _), (cell, sources) in before.items():
            delta[(stream, sources, cell)] -= 1
        for (stream, _), (cell, sources) in after.items():
            delta[(stream, sources, cell)] += 1
        for i in range(0, len(wanted), _CHUNK):
            conn.execute(
                delete(_cells).where(
                    _cells.c.stream.in_(streams), _cells.c.unit_id.in_(wanted[i : i + _CHUNK])
                )
            )
        rows = []
        for (s, u), (c, src) in sorted(after.items()):
            key = _unit_case(u)
            rows.append(
                {
                    "stream": s,
                    "unit_id": u,
                    "cell": c,
                    "sources": src,
                    "source_id": None if key is None else key[0],
                    "case_id": None if key is None else key[1],
                }
            )
        bulk_insert(conn, _cells, rows)
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
            by_stream_sources: dict[tuple[str, str], list[str]] = {}
            for stream, sources, cell in chunk:
                by_stream_sources.setdefault((stream, sources), []).append(cell)
            for (stream, sources), cells in by_stream_sources.items():
                rows = conn.execute(
                    select(t.c.cell, t.c.persons).where(
                        and_(t.c.stream == stream, t.c.sources == sources, t.c.cell.in_(cells))
                    )
                )
                for cell, persons in rows:
                    current[(stream, sources, cell)] = int(persons)
        for (stream, sources), cells in _group(current).items():
            for i in range(0, len(cells), _CHUNK):
                conn.execute(
                    delete(t).where(
                        t.c.stream == stream,
                        t.c.sources == sources,
                        t.c.cell.in_(cells[i : i + _CHUNK]),
                    )
                )
        rows_out = []
        for key in wanted:
            n = current.get(key, 0) + delta[key]
            if n < 0:
                raise AssertionError("a cell count went below zero: the projection is corrupt")
            if n > 0:
                rows_out.append({"stream": key[0], "sources": key[1], "cell": key[2], "persons": n})
        bulk_insert(conn, t, rows_out)

    def build(self, conn: Connection) -> None:
        """Count every unit from the projections into the emptied tables (``follow`` from
        position 0: a rebuild, a first run, new stream definitions), in chunks of units so
        memory stays flat: what following every event would end with, without recounting a
        unit once per page of events that touch it.

        The counted units and their facts are streamed from the projections in three reads
        (:func:`_counted_units`), each unit once. The tables start empty, so no unit has cells
        to read back or delete: :meth:`recount`'s look-ups by unit id (which no index serves
        without the stream: a scan of the growing table per chunk) are left out, and the
        counts are summed in memory (one entry per stream, sources and cell: small) and written
        once at the end."""
        totals: Counter[tuple[str, str, str]] = Counter()
        chunk: list[tuple[str, Facts, str]] = []
        with bulk_cache(conn):  # a unit's cells go in at its id's place in the table's key
            for counted in _counted_units(conn):
                chunk.append(counted)
                if len(chunk) >= _BUILD_CHUNK:
                    self._place(conn, chunk, totals)
                    chunk = []
            if chunk:
                self._place(conn, chunk, totals)
            if totals:
                self._move(conn, {key: n for key, n in totals.items() if n != 0})

    def _place(
        self,
        conn: Connection,
        counted: Sequence[tuple[str, Facts, str]],
        totals: Counter[tuple[str, str, str]],
    ) -> None:
        """Insert the cells of these counted units (none of them has any yet) and add them to
        ``totals``: :meth:`recount` from empty tables, for :meth:`build`."""
        cells: dict[tuple[str, ...], str] = {}
        rows: list[tuple[Any, ...]] = []
        streams = sorted(self._cell_of.items())
        by_subject = {
            subject: [(s, c) for s, c in streams if self._subject[s] == subject]
            for subject in set(self._subject.values())
        }
        for unit, facts, sources in counted:
            key = _unit_case(unit)
            source_id = None if key is None else key[0]
            case_id = None if key is None else key[1]
            for stream, cell_in in by_subject.get(_subject_of(unit), ()):
                cell = cell_in(facts)
                text = cells.get(cell)
                if text is None:
                    text = cells[cell] = _cell_json(cell)
                rows.append((stream, unit, text, sources, source_id, case_id))
                totals[(stream, sources, text)] += 1
        _insert_cells(conn, rows)

    def clear(self, conn: Connection) -> None:
        """Empty this projection (before a rebuild from position 0)."""
        conn.execute(delete(_cells))
        conn.execute(delete(_counts))


_CELL_COLUMNS = ("stream", "unit_id", "cell", "sources", "source_id", "case_id")


@lru_cache(maxsize=8)
def _compiled_cells_insert(dialect: Dialect) -> tuple[str, tuple[int, ...] | None]:
    """The INSERT of ``release_person_cells`` rows (:data:`_CELL_COLUMNS`) for ``dialect`` and,
    for a positional driver, where each of its parameters is in such a row."""
    compiled = insert(_cells).compile(dialect=dialect, column_keys=list(_CELL_COLUMNS))
    if not compiled.positional:
        return compiled.string, None
    return compiled.string, tuple(_CELL_COLUMNS.index(k) for k in compiled.positiontup or ())


def _insert_cells(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """INSERT ``release_person_cells`` rows given as tuples in :data:`_CELL_COLUMNS` order,
    through the driver's ``executemany`` (as :func:`trust.store.db.bulk_insert`, without a dict
    per row: a build writes one row per unit and stream)."""
    if not rows:
        return
    sql, order = _compiled_cells_insert(conn.dialect)
    params: Any
    if order is None:
        params = [dict(zip(_CELL_COLUMNS, r, strict=True)) for r in rows]
    elif order == tuple(range(len(_CELL_COLUMNS))):
        params = rows
    else:
        params = [tuple(r[i] for i in order) for r in rows]
    conn.exec_driver_sql(sql, params)


def _group(keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for stream, sources, cell in sorted(keys):
        out.setdefault((stream, sources), []).append(cell)
    return out


def cell_counts(
    conn: Connection, spec: StreamSpec, sources: Sequence[str]
) -> dict[tuple[str, ...], int]:
    """Counted persons per cell of ``spec``'s stream, counting only the records of ``sources``.

    A person made only of these sources is read from the counts; a person made partly of other
    sources is counted from their records of these sources alone (recombined here)."""
    allowed = set(sources)
    out: Counter[tuple[str, ...]] = Counter()
    partial: list[str] = []
    t = _counts
    for text, cell, persons in conn.execute(
        select(t.c.sources, t.c.cell, t.c.persons).where(t.c.stream == spec.name)
    ):
        made_of = set(text.split(";"))
        if made_of <= allowed:
            out[tuple(json.loads(cell))] += int(persons)
        elif made_of & allowed:
            partial.append(text)
    if partial:
        cell = cell_of(spec)
        units: list[str] = []
        for i in range(0, len(partial), _CHUNK):
            units.extend(
                conn.execute(
                    select(_cells.c.unit_id).where(
                        _cells.c.stream == spec.name, _cells.c.sources.in_(partial[i : i + _CHUNK])
                    )
                ).scalars()
            )
        for person, recs in person_records(conn, sorted(set(units))).items():
            kept = [r for r in recs if r.key[0] in allowed]
            if kept:
                out[cell(combine((person,), kept))] += 1
    return dict(out)


def contributing_sources(conn: Connection, stream: str) -> list[str]:
    """The sources with at least one counted person in ``stream``."""
    t = _counts
    texts = conn.execute(select(t.c.sources).where(t.c.stream == stream).distinct()).scalars()
    return sorted({s for text in texts for s in text.split(";") if s})
