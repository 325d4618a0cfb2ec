"""Capture histories from the trust's own linked persons: who each list saw, counted as the
release stage counts persons.

A *unit* is what the release stage counts (``trust.release.counts``): the person linkage placed a
victim record in (``proj_person_links``), or — for a record linkage has not placed — the record on
its own, seen by its own source only. Only counted records take part: a record that is retracted,
disposed or whose person withdrew consent is left out, so a person made only of such records
drops out of the histories. Each source is its own list unless ``list_of`` pools several sources
into one list (e.g. every NGO into ``"ngo"``: lists per agency type; the projections do not hold
an agency's type, so the caller names the pools). A unit's capture history is the set of lists
its counted records are on; units with no record on a chosen list are not in the table.

Strata use the release's own rules: a unit's facts combine over its counted records on the chosen
lists with :func:`trust.release.counts.combine`, and the stratum is the unit's cell in the
release dimensions named (``sex``, ``age_group``, ``form``, ``year`` — the first known year of
exploitation — and ``victimisation``), computed by :func:`trust.release.aggregate.cell_of`.

Read-only and one query: the counted records of ``proj_persons`` outer-joined to their person in
``proj_person_links``, streamed once. Nothing but counts per history leaves this module.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, select

from schemas.rules import age_bounds
from trust.estimate.errors import EstimateError, ReasonCode
from trust.estimate.histories import MAX_LISTS, CaptureHistories, from_persons
from trust.release.aggregate import PersonFacts, cell_of
from trust.release.counts import RecordFacts, combine, record_unit
from trust.release.streams import StreamSpec
from trust.store.eventstore import EventStore
from trust.store.tables import proj_person_links as _links
from trust.store.tables import proj_persons as _persons

#: The release dimensions a table can be stratified by.
STRATA: tuple[str, ...] = ("sex", "age_group", "form", "year", "victimisation")

Stratum = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TrustHistories:
    """Capture histories of the trust's counted persons, pooled and per stratum."""

    lists: tuple[str, ...]
    list_sources: Mapping[str, tuple[str, ...]]  # list -> the sources pooled into it
    sources: tuple[str, ...]  # sources whose counted records are in the histories
    strata: tuple[str, ...]  # the dimensions of the stratum keys (empty: not stratified)
    pooled: CaptureHistories  # every stratum together
    tables: Mapping[Stratum, CaptureHistories]  # per stratum; only ``()`` when not stratified
    records: int  # counted records on the chosen lists
    unlinked: int  # of which linkage has not placed (each counted as a person of its own)
    persons_per_list: Mapping[str, int]  # persons on each list

    @property
    def persons(self) -> int:
        """Counted persons on at least one chosen list (the observed total)."""
        return self.pooled.observed

    def lists_with_persons(self) -> tuple[str, ...]:
        return tuple(name for name in self.lists if self.persons_per_list.get(name, 0))


def histories_from_trust(
    store: EventStore | Connection,
    lists: Sequence[str] | None = None,
    list_of: Mapping[str, str] | None = None,
    strata: Sequence[str] = (),
    *,
    require: int = 2,
) -> TrustHistories:
    """Capture histories of the counted persons in ``store``'s projections.

    ``list_of`` maps a source to its list (sources not in it are their own list). ``lists``
    chooses the lists and their order; without it every list with a counted record is a list,
    sorted. A list named in ``lists`` that no source of the store (counted or not) maps to is
    an error; a known list with no counted person is kept, empty. ``strata`` names release
    dimensions (:data:`STRATA`). Fewer than ``require`` lists with persons is an error
    (``TOO_FEW_LISTS``): no overlap can be seen.
    """
    strata = tuple(strata)
    for name in strata:
        if name not in STRATA:
            raise EstimateError(
                ReasonCode.BAD_OPTION, f"a stratum is one of {', '.join(STRATA)}", name
            )
    if len(set(strata)) != len(strata):
        raise EstimateError(ReasonCode.BAD_OPTION, "strata must be distinct")
    if lists is not None and len(set(lists)) != len(lists):
        raise EstimateError(ReasonCode.DUPLICATE_COLUMN, "list names must be distinct")
    pool = dict(list_of or {})

    def list_for(source: str) -> str:
        return pool.get(source, source)

    if isinstance(store, EventStore):
        with store.engine.connect() as conn:
            rows = _read(conn)
    else:
        rows = _read(store)

    known_sources = {r.facts.key[0] for r in rows}
    known_lists = {list_for(s) for s in known_sources}
    if lists is None:
        chosen = tuple(sorted({list_for(r.facts.key[0]) for r in rows if r.counted}))
    else:
        chosen = tuple(lists)
        for name in chosen:
            if name not in known_lists:
                raise EstimateError(ReasonCode.UNKNOWN_LIST, "no source of the store is on", name)
    if len(chosen) > MAX_LISTS:
        raise EstimateError(ReasonCode.TOO_FEW_LISTS, f"at most {MAX_LISTS} lists")
    wanted = set(chosen)

    # unit -> its counted records on the chosen lists
    units: dict[str, list[RecordFacts]] = defaultdict(list)
    records = unlinked = 0
    used: set[str] = set()
    for row in rows:
        source = row.facts.key[0]
        if not row.counted or list_for(source) not in wanted:
            continue
        units[row.unit].append(row.facts)
        records += 1
        unlinked += not row.linked
        used.add(source)

    patterns = {u: frozenset(list_for(r.key[0]) for r in recs) for u, recs in units.items()}
    per_list: Counter[str] = Counter(name for p in patterns.values() for name in p)
    with_persons = [name for name in chosen if per_list[name]]
    if len(with_persons) < require:
        raise EstimateError(
            ReasonCode.TOO_FEW_LISTS,
            f"{len(with_persons)} of the lists have counted persons: at least {require} must",
        )
    pooled = from_persons(patterns.values(), chosen)
    tables: dict[Stratum, CaptureHistories]
    if strata:
        stratum_of = _stratum_of(strata)
        groups: dict[Stratum, list[frozenset[str]]] = defaultdict(list)
        for unit, recs in units.items():
            person = combine((unit,), recs)
            groups[stratum_of(person)].append(patterns[unit])
        tables = {s: from_persons(groups[s], chosen) for s in sorted(groups)}
    else:
        tables = {(): pooled}
    by_list: dict[str, list[str]] = defaultdict(list)
    for source in sorted(known_sources):
        if list_for(source) in wanted:
            by_list[list_for(source)].append(source)
    return TrustHistories(
        lists=chosen,
        list_sources={name: tuple(by_list[name]) for name in chosen},
        sources=tuple(sorted(used)),
        strata=strata,
        pooled=pooled,
        tables=tables,
        records=records,
        unlinked=unlinked,
        persons_per_list={name: per_list[name] for name in chosen},
    )


def counted_units(conn: Connection, sources: Sequence[str]) -> dict[str, list[RecordFacts]]:
    """Each counted unit (a person, or a record linkage has not placed) with its counted
    records of ``sources``; a unit with none of them is absent. The same reading as the
    histories (one query), for what else is made from the persons (synthetic records)."""
    allowed = set(sources)
    units: dict[str, list[RecordFacts]] = defaultdict(list)
    for row in _read(conn):
        if row.counted and row.facts.key[0] in allowed:
            units[row.unit].append(row.facts)
    return dict(units)


@dataclass(frozen=True, slots=True)
class _Row:
    """One victim record of ``proj_persons``: its unit, facts, and whether it is counted."""

    unit: str
    facts: RecordFacts
    linked: bool
    counted: bool


def _read(conn: Connection) -> list[_Row]:
    """One pass over ``proj_persons`` outer-joined to ``proj_person_links``."""
    p, ln = _persons.c, _links.c
    query = select(
        p.source_id,
        p.case_id,
        p.victim_id,
        p.sex,
        p.age_at_identification,
        p.forms_of_exploitation,
        p.year_of_exploitation,
        p.age_range_lower,
        p.age_range_upper,
        p.majority_status,
        p.retracted,
        p.disposed,
        p.consent_withdrawn,
        ln.person_id,
    ).select_from(
        _persons.outerjoin(
            _links,
            and_(
                p.source_id == ln.source_id,
                p.case_id == ln.case_id,
                p.victim_id == ln.victim_id,
            ),
        )
    )
    out: list[_Row] = []
    for (
        src,
        case,
        victim,
        sex,
        age,
        forms,
        year,
        lower,
        upper,
        status,
        retracted,
        disposed,
        withdrawn,
        person,
    ) in conn.execute(query):
        key = (src, case, victim)
        # a band or an adult/minor status places a person without an age, as releases do
        lower, upper = age_bounds(lower, upper, status)
        forms_of = tuple(f for f in forms.split(";") if f)
        facts = RecordFacts(key, sex, age, forms_of, year, age_lower=lower, age_upper=upper)
        unit = person if person is not None else record_unit(key)
        counted = not (retracted or disposed or withdrawn)
        out.append(_Row(unit, facts, person is not None, counted))
    return out


def _stratum_of(strata: tuple[str, ...]) -> Callable[[PersonFacts], Stratum]:
    spec = StreamSpec("mse_strata", "Strata of a population estimate", "persons", strata)
    return cell_of(spec)
