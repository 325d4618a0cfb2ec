"""Projections of the event store: the trust's current state, derived and disposable.

``apply_many`` folds a run of ``(seq, event)`` into the ``proj_*`` tables: it loads the rows the
run touches, applies every event in memory in seq order, and writes the result back in a few
batched statements. The live path (``EventStore.append``, through ``apply_run``) and ``rebuild``
both go through it, so replaying the store gives the live state by construction (and a test
checks it). What needs no table — an accepted record's rows as a first version of its case — is
worked out by ``prepare``, which an append calls before it takes the store's write lock.

Semantics:
- ``RecordAccepted`` upserts the case (version + 1, un-retracts it) and replaces its persons with
  one row per victim; a person's ``consent_withdrawn``/``disposed`` flags carry over to later
  versions of the same case.
- ``RecordAccepted`` also replaces the case's perpetrator records in ``proj_perpetrators`` (one
  row per perpetrator: roles and the case's year of exploitation).
- ``RecordRetracted`` marks the case and its persons ``retracted`` (rows are kept so their flags
  survive a re-acceptance), and its perpetrators likewise.
- ``ConsentWithdrawn`` (any scope) and ``DisposalRequested`` (one victim, or all with
  ``victim_id=None``) set the flag on persons already known, and are kept in ``proj_erasures``:
  a victim whose withdrawal or disposal arrived first is flagged when their record arrives, and a
  whole-case disposal flags every victim of every later version of the case too. A whole-case
  disposal (a source's request, or retention's ``destroy``) flags the case's perpetrators
  ``disposed`` too, in this and every later version; a withdrawal of consent or a disposal of
  one victim concerns that victim only (a perpetrator record is not the victim's).
- ``MessageRejected`` adds a row to ``proj_rejections``; ``ReleaseIssued`` to ``proj_releases``.
- ``SubscriptionAdded`` / ``SubscriptionRemoved`` set or delete the (consumer, stream) row of
  ``proj_subscriptions`` (a new request awaits approval; one from before release review is
  approved by :data:`PRE_REVIEW`); ``SubscriptionApproved`` approves the request it names if it
  is still the current one.
- Linkage's events (:data:`trust.store.events.LINKAGE_EVENTS`) keep ``proj_person_links`` (which
  person each linked victim record is in), ``proj_linked_persons`` (every person id ever issued,
  its record count and the survivor it was merged into) and ``proj_link_reviews``. Linkage links
  only unlinked records (a move is an unlink, then a link): linking a linked record is refused.
- ``PrincipalAdded`` sets the principal's row of ``proj_principals`` (replacing a revoked one of
  the same name); ``PrincipalRevoked`` marks it revoked (the row stays: who it was is kept).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    select,
    update,
)

from schemas.rules import age_group_of
from trust.store.db import bulk_insert, insert_values, select_in, writer
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    Event,
    LinkDecision,
    LinkOverridden,
    LinkReviewOpened,
    MessageRejected,
    PersonsMerged,
    PersonSplit,
    PrincipalAdded,
    PrincipalRevoked,
    RecordAccepted,
    RecordLinked,
    RecordRetracted,
    RecordUnlinked,
    ReleaseIssued,
    SubscriptionAdded,
    SubscriptionApproved,
    SubscriptionRemoved,
    VictimRef,
)
from trust.store.stored import _BODY_PAYLOAD, _VERSION_KEY, decode, decode_record
from trust.store.stored import _accepted_from_body as _accepted_body_of
from trust.store.tables import (
    FOLLOWER_TABLES,
    PROJECTION_TABLES,
    proj_principals,
    proj_rejections,
    proj_releases,
    proj_subscriptions,
    stored_events,
)
from trust.store.tables import proj_erasures as _erasures
from trust.store.tables import proj_link_overrides as _overrides
from trust.store.tables import proj_link_reviews as _reviews
from trust.store.tables import proj_linked_persons as _linked
from trust.store.tables import proj_perpetrators as _perpetrators
from trust.store.tables import proj_person_links as _links
from trust.store.tables import proj_persons as _persons
from trust.store.tables import proj_records as _records

CaseKey = tuple[str, str]
Row = dict[str, Any]
PersonRow = tuple[Any, ...]
RecordRow = tuple[Any, ...]
"""A ``proj_records`` row as a tuple in the table's column order (:data:`_RECORD_COLUMNS`)."""
PerpetratorRow = tuple[Any, ...]
"""A ``proj_perpetrators`` row as a tuple in the table's column order."""
"""A ``proj_persons`` row as a tuple in the table's column order (:data:`_PERSON_COLUMNS`): what
the INSERT sends as it is, with no mapping built or read per victim."""

_CHUNK = 400  # case keys per IN (...) list: 800 parameters, far below SQLite's limit


_ABOUT_A_CASE = (RecordAccepted, RecordRetracted, ConsentWithdrawn, DisposalRequested)
"""The events a case's projection rows follow (a tuple made once, not a union per event)."""


def apply(conn: Connection, seq: int, event: Event) -> None:
    """Apply one stored event to the projections, inside the caller's transaction."""
    apply_many(conn, [(seq, event)])


class Prepared:
    """What :func:`apply_many` works out of a run of events alone, before it reads a table (so
    an append does it before it takes the store's write lock): the cases the run is about, and
    per event in the run's order, an accepted record's rows as they are when nothing was known of
    its case before — its case key, its ``proj_records`` row (version 1), its persons' rows and its
    perpetrators' rows (None: the record lists none), every flag False. Under the lock, only what
    the tables hold of a case already (its version, a flag carried over) changes them.

    Applied once: the run's later events set their flags on these rows themselves (no copy of
    them is made under the lock)."""

    __slots__ = ("keys", "order", "rows", "used")

    def __init__(self, keys: set[CaseKey], rows: list[_AcceptedRows | None]) -> None:
        self.keys = keys
        self.order = sorted(keys)  # the order rows are written in
        self.rows = rows
        self.used = False


_AcceptedRows = tuple[CaseKey, RecordRow, dict[str, PersonRow], dict[str, PerpetratorRow] | None]
"""An accepted record's rows before anything known of its case is applied (see :class:`Prepared`):
its case key, its record row as a first version, persons by victim id, perpetrators by id (None:
none listed)."""


def prepare(events: Iterable[Event]) -> Prepared:
    """:class:`Prepared` of a run of events (in the order :func:`apply_many` gets them)."""
    keys: set[CaseKey] = set()
    rows: list[_AcceptedRows | None] = []
    for ev in events:
        if isinstance(ev, _ABOUT_A_CASE):
            keys.add((ev.source_id, ev.case_id))
            if isinstance(ev, RecordAccepted):
                rows.append(_accepted_rows(ev))
                continue
        rows.append(None)
    return Prepared(keys, rows)


def apply_many(
    conn: Connection, items: Sequence[tuple[int, Event]], prepared: Prepared | None = None
) -> None:
    """Apply stored events, in the given (seq) order, inside the caller's transaction;
    ``prepared``: :func:`prepare` of the same events, in the same order, made beforehand (and
    used up here)."""
    apply_run(conn, [seq for seq, _ in items], [e for _, e in items], prepared)


def apply_run(
    conn: Connection,
    seqs: Sequence[int],
    events: Sequence[Event],
    prepared: Prepared | None = None,
) -> None:
    """:func:`apply_many` of the events ``events`` stored at ``seqs`` (no pair made per event:
    an append calls it under its lock)."""
    if len(seqs) != len(events):
        raise ValueError("one seq per event")
    if prepared is None:
        prepared = prepare(events)
    elif prepared.used or len(prepared.rows) != len(events):
        raise ValueError("prepared for another run of events, or applied already")
    prepared.used = True
    keys = prepared.keys
    records = _load_records(conn, keys)
    # a case has persons or perpetrators only once it has its record row (both are written only
    # with it): a run of new cases (ingest's usual one) looks for neither
    known = keys & records.keys()
    persons = _load_persons(conn, known)
    perpetrators = _load_perpetrators(conn, known)
    erasures = _load_erasures(conn, keys)
    new_erasures: list[Row] = []
    records_before = set(records)
    persons_before = {k for k, v in persons.items() if v}
    perpetrators_before = {k for k, v in perpetrators.items() if v}
    dirty_records: set[CaseKey] = set()
    dirty_persons: set[CaseKey] = set()
    dirty_perpetrators: set[CaseKey] = set()
    releases: list[Row] = []
    rejections: list[Row] = []
    links = _LinkWriter(conn)

    no_erasures: set[tuple[str, str]] = set()  # read only
    for seq, ev, fresh in zip(seqs, events, prepared.rows, strict=True):
        if fresh is not None:  # a RecordAccepted (prepared for it)
            key = fresh[0]
            erased = erasures.get(key, no_erasures)
            _accept(records, persons, erased, fresh)
            _accept_perpetrators(perpetrators, key, erased, fresh[3])
            dirty_records.add(key)
            dirty_persons.add(key)
            dirty_perpetrators.add(key)
        elif isinstance(ev, RecordLinked):  # the other bulk of a store: tested second
            links.linked(seq, ev)
        elif isinstance(ev, RecordRetracted):
            key = (ev.source_id, ev.case_id)
            rec = records.get(key)
            if rec is None:
                records[key] = _record_row(key, ev.event_id, True, 0, None, None)
            else:
                records[key] = _record_row(key, ev.event_id, True, *rec[_R_VERSION:])
            case_persons = persons.get(key)
            if case_persons:
                for vid, row in case_persons.items():
                    case_persons[vid] = _flagged(row, _P_RETRACTED)
            case_perpetrators = perpetrators.get(key)
            if case_perpetrators:
                for pid, row in case_perpetrators.items():
                    case_perpetrators[pid] = _flagged(row, _PP_RETRACTED)
            dirty_records.add(key)
            dirty_persons.add(key)
            dirty_perpetrators.add(key)
        elif isinstance(ev, ConsentWithdrawn):
            key = (ev.source_id, ev.case_id)
            _erase(erasures, new_erasures, key, ev.victim_id, CONSENT_WITHDRAWN)
            case_persons = persons.get(key, {})
            person = case_persons.get(ev.victim_id)
            if person is not None:
                case_persons[ev.victim_id] = _flagged(person, _P_WITHDRAWN)
                dirty_persons.add(key)
        elif isinstance(ev, DisposalRequested):
            key = (ev.source_id, ev.case_id)
            _erase(erasures, new_erasures, key, ev.victim_id or EVERY_VICTIM, DISPOSED)
            case_persons = persons.get(key, {})
            if ev.victim_id is None:
                targets = list(case_persons)
            else:
                targets = [ev.victim_id] if ev.victim_id in case_persons else []
            for vid in targets:
                case_persons[vid] = _flagged(case_persons[vid], _P_DISPOSED)
            if targets:
                dirty_persons.add(key)
            if ev.victim_id is None and perpetrators.get(key):
                case_perpetrators = perpetrators[key]
                for pid, row in case_perpetrators.items():
                    case_perpetrators[pid] = _flagged(row, _PP_DISPOSED)
                dirty_perpetrators.add(key)
        elif isinstance(ev, MessageRejected):
            rejections.append(
                {
                    "seq": seq,
                    "source_id": ev.source_id,
                    "reason": ev.reason,
                    "event_id": ev.event_id,
                    "field_path": ev.field_path,
                }
            )
        elif isinstance(ev, ReleaseIssued):
            releases.append(
                {
                    "consumer": ev.consumer,
                    "stream": ev.stream,
                    "sequence": ev.sequence,
                    "release_id": ev.release_id,
                    "issued_at_ms": ev.issued_at_ms,
                    "cells_digest": ev.cells_digest,
                }
            )

        elif isinstance(ev, SubscriptionAdded | SubscriptionApproved | SubscriptionRemoved):
            _write_subscription(conn, ev)
        elif isinstance(ev, PrincipalAdded | PrincipalRevoked):
            _write_principal(conn, ev)
        elif isinstance(ev, LinkReviewOpened):
            # a review's row depends on no link: the run of links it falls in stays one run
            links.other(seq, ev)
        elif isinstance(ev, RecordUnlinked | PersonsMerged | PersonSplit | LinkOverridden):
            links.flush()
            links.other(seq, ev)
    links.flush()

    order = prepared.order
    _write_records(conn, records, _in_order(dirty_records, order), records_before)
    _write_persons(conn, persons, _in_order(dirty_persons, order), persons_before)
    _write_perpetrators(
        conn, perpetrators, _in_order(dirty_perpetrators, order), perpetrators_before
    )
    bulk_insert(conn, _erasures, new_erasures)
    bulk_insert(conn, proj_rejections, rejections)
    bulk_insert(conn, proj_releases, releases)


@lru_cache(maxsize=8)
def _compiled_add_records(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """``records = records + n`` of the linked person ``p``: the SQL for ``dialect`` and, for a
    positional driver, its parameters' order."""
    stmt = (
        update(_linked)
        .where(_linked.c.person_id == bindparam("p"))
        .values(records=_linked.c.records + bindparam("n"))
    )
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return compiled.string, order


def victim_text(v: VictimRef) -> str:
    """A victim record's key as compact JSON (how ``proj_link_overrides`` names records)."""
    return json.dumps(
        [v.source_id, v.case_id, v.victim_id], separators=(",", ":"), ensure_ascii=False
    )


def _victim_where(table: Table, v: VictimRef) -> ColumnElement[bool]:
    return and_(
        table.c.source_id == v.source_id,
        table.c.case_id == v.case_id,
        table.c.victim_id == v.victim_id,
    )


class _LinkWriter:
    """Applies linkage's events; runs of ``RecordLinked`` (one per new record: the bulk of them)
    are written in a few batched statements, anything else one event at a time, in order (a
    review opened, which reads and writes no link, is written at once without ending a run)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.links: list[Row] = []
        self.new_persons: dict[str, Row] = {}
        self.joined: Counter[str] = Counter()

    def linked(self, seq: int, ev: RecordLinked) -> None:
        v = ev.victim
        self.links.append(
            {
                "source_id": v.source_id,
                "case_id": v.case_id,
                "victim_id": v.victim_id,
                "person_id": ev.person_id,
                "linked_seq": seq,
            }
        )
        if ev.decision in (LinkDecision.NEW_PERSON, LinkDecision.PENDING_REVIEW):
            self.new_persons[ev.person_id] = {
                "person_id": ev.person_id,
                "records": 1,
                "merged_into": None,
                "created_seq": seq,
            }
        elif ev.person_id in self.new_persons:
            self.new_persons[ev.person_id]["records"] += 1
        else:
            self.joined[ev.person_id] += 1

    def flush(self) -> None:
        # a duplicate key here means linkage linked a record twice: the append fails whole
        bulk_insert(self.conn, _links, self.links)
        bulk_insert(self.conn, _linked, list(self.new_persons.values()))
        self._add_records(dict(self.joined))
        self.links, self.new_persons, self.joined = [], {}, Counter()

    def _add_records(self, delta: dict[str, int]) -> None:
        if not delta:
            return
        # through the driver's executemany, compiled once per dialect: SQLAlchemy's own
        # executemany processes every row's parameters (a replay joins tens of thousands)
        sql, order = _compiled_add_records(self.conn.dialect)
        rows = [{"p": p, "n": n} for p, n in sorted(delta.items())]
        params: Any = rows if order is None else [tuple(r[k] for k in order) for r in rows]
        self.conn.exec_driver_sql(sql, params)

    def other(self, seq: int, ev: Event) -> None:
        conn = self.conn
        if isinstance(ev, RecordUnlinked):
            conn.execute(delete(_links).where(_victim_where(_links, ev.victim)))
            self._add_records({ev.person_id: -1})
            conn.execute(
                update(_reviews)
                .where(_victim_where(_reviews, ev.victim), _reviews.c.status == "open")
                .values(status="withdrawn")
            )
        elif isinstance(ev, PersonsMerged):
            absorbed = [p for p in ev.absorbed if p != ev.person_id]
            moved = conn.execute(
                select(_linked.c.records).where(_linked.c.person_id.in_(absorbed))
            ).scalars()
            n = sum(int(r) for r in moved)
            conn.execute(
                update(_links)
                .where(_links.c.person_id.in_(absorbed))
                .values(person_id=ev.person_id)
            )
            # earlier merges into an absorbed person now point at the survivor: no chains
            conn.execute(
                update(_linked)
                .where(_linked.c.merged_into.in_(absorbed))
                .values(merged_into=ev.person_id)
            )
            conn.execute(
                update(_linked)
                .where(_linked.c.person_id.in_(absorbed))
                .values(records=0, merged_into=ev.person_id)
            )
            self._add_records({ev.person_id: n})
        elif isinstance(ev, PersonSplit):
            for v in ev.moved:
                conn.execute(
                    update(_links)
                    .where(_victim_where(_links, v), _links.c.person_id == ev.person_id)
                    .values(person_id=ev.new_person_id)
                )
            bulk_insert(
                conn,
                _linked,
                [
                    {
                        "person_id": ev.new_person_id,
                        "records": len(ev.moved),
                        "merged_into": None,
                        "created_seq": seq,
                    }
                ],
            )
            self._add_records({ev.person_id: -len(ev.moved)})
        elif isinstance(ev, LinkOverridden):
            mine = victim_text(ev.victim)
            others = sorted({victim_text(o) for o in ev.others} - {mine})
            pairs = [(mine, o) for o in others] + [(o, mine) for o in others]
            for a, b in pairs:
                conn.execute(
                    delete(_overrides).where(_overrides.c.record == a, _overrides.c.other == b)
                )
            bulk_insert(
                conn,
                _overrides,
                [{"record": a, "other": b, "same": ev.same, "decided_seq": seq} for a, b in pairs],
            )
            if ev.review_id is not None:
                conn.execute(
                    update(_reviews)
                    .where(_reviews.c.review_id == ev.review_id, _reviews.c.status == "open")
                    .values(status="accepted" if ev.same else "rejected")
                )
        elif isinstance(ev, LinkReviewOpened):
            best = {
                person: max((e.probability for e in pairs), default=0.0)
                for person, pairs in sorted(ev.candidates.items())
            }
            bulk_insert(
                conn,
                _reviews,
                [
                    {
                        "review_id": ev.review_id,
                        "source_id": ev.victim.source_id,
                        "case_id": ev.victim.case_id,
                        "victim_id": ev.victim.victim_id,
                        "person_id": ev.person_id,
                        "candidates": json.dumps(best, sort_keys=True),
                        "status": "open",
                        "opened_seq": seq,
                    }
                ],
            )


PRE_REVIEW = "(before release review)"
"""Who approved a subscription added before release review: it was in force, and stays so."""


def _write_subscription(
    conn: Connection, ev: SubscriptionAdded | SubscriptionApproved | SubscriptionRemoved
) -> None:
    t = proj_subscriptions
    if isinstance(ev, SubscriptionApproved):  # approves the request it names, if still current
        conn.execute(
            update(t)
            .where(t.c.consumer == ev.consumer, t.c.stream == ev.stream)
            .where(t.c.request_id == ev.request_id)
            .values(
                approved_by=ev.approved_by,
                approved_at_ms=ev.approved_at_ms,
                definition=ev.definition,
            )
        )
        return
    conn.execute(delete(t).where(t.c.consumer == ev.consumer, t.c.stream == ev.stream))
    if isinstance(ev, SubscriptionAdded):
        before_review = not ev.requested_by
        bulk_insert(
            conn,
            t,
            [
                {
                    "consumer": ev.consumer,
                    "stream": ev.stream,
                    "purpose": ev.purpose,
                    "added_at_ms": ev.added_at_ms,
                    "requested_by": ev.requested_by,
                    "request_id": None if before_review else ev.event_id,
                    "approved_by": PRE_REVIEW if before_review else None,
                    "approved_at_ms": ev.added_at_ms if before_review else None,
                    "definition": None,
                }
            ],
        )


# --- principals ----------------------------------------------------------------------------------


def _write_principal(conn: Connection, ev: PrincipalAdded | PrincipalRevoked) -> None:
    t = proj_principals
    if isinstance(ev, PrincipalRevoked):
        conn.execute(
            update(t)
            .where(t.c.name == ev.name, t.c.revoked_at_ms.is_(None))
            .values(revoked_at_ms=ev.revoked_at_ms)
        )
        return
    conn.execute(delete(t).where(t.c.name == ev.name))
    row = {
        "name": ev.name,
        "role": ev.role,
        "source_id": ev.source,
        "token_id": ev.token_id,
        "token_salt": ev.token_salt,
        "token_hash": ev.token_hash,
        "added_by": ev.added_by,
        "added_at_ms": ev.added_at_ms,
        "revoked_at_ms": None,
    }
    bulk_insert(conn, t, [row])


# --- end of principals ----------------------------------------------------------------------


def _record_row(
    key: CaseKey, event_id: str, retracted: bool, version: int, year: Any, country: Any
) -> RecordRow:
    # in _RECORD_COLUMNS' order (checked where the columns are named)
    return (key[0], key[1], event_id, retracted, version, year, country)


CONSENT_WITHDRAWN, DISPOSED = "consent_withdrawn", "disposed"
EVERY_VICTIM = ""  # a proj_erasures row for every victim of the case


def _load_erasures(conn: Connection, keys: set[CaseKey]) -> dict[CaseKey, set[tuple[str, str]]]:
    out: dict[CaseKey, set[tuple[str, str]]] = {}
    for source_id, case_id, victim_id, kind in _select_cases(
        conn, _erasures, _ERASURE_COLUMNS, keys
    ):
        out.setdefault((source_id, case_id), set()).add((victim_id, kind))
    return out


def _erase(
    erasures: dict[CaseKey, set[tuple[str, str]]],
    new: list[Row],
    key: CaseKey,
    victim_id: str,
    kind: str,
) -> None:
    known = erasures.setdefault(key, set())
    if (victim_id, kind) not in known:
        known.add((victim_id, kind))
        new.append({"source_id": key[0], "case_id": key[1], "victim_id": victim_id, "kind": kind})


def _accepted_rows(ev: RecordAccepted) -> _AcceptedRows:
    """An accepted record's rows when nothing is known of its case before (see
    :class:`Prepared`): what is the same for all its victims is worked out once."""
    tip_event = ev.record.get("event") or {}
    year = tip_event.get("year_of_exploitation")
    country = tip_event.get("country_of_exploitation")
    forms = _joined(tip_event.get("forms_of_exploitation") or ())
    countries = _codes([country, *(tip_event.get("countries_of_exploitation") or ())])
    source_id, case_id = key = (ev.source_id, ev.case_id)
    persons: dict[str, PersonRow] = {}
    for victim in ev.victims:
        get = victim.get
        age = get("age_at_identification")
        lower, upper = get("age_range_lower"), get("age_range_upper")
        status = get("majority_status") or "Unknown"
        vid = victim["victim_id"]
        # in _PERSON_COLUMNS' order (checked where the columns are named)
        persons[vid] = (
            source_id,
            case_id,
            vid,
            get("sex") or "Unknown",
            age,
            lower,
            upper,
            status,
            age_group_of(age, lower, upper, status),
            forms,
            year,
            _codes(get("citizenships") or ()),
            countries,
            False,
            False,
            False,
        )
    listed = ev.record.get("perpetrators") or ()
    perpetrators: dict[str, PerpetratorRow] | None = None
    if listed:
        perpetrators = {}
        for perpetrator in listed:
            pid = perpetrator.get("perpetrator_id")
            if not isinstance(pid, str) or not pid:
                continue  # an id the agreement's fields leave out: no distinct record to count
            # in _PERPETRATOR_COLUMNS' order (checked where the columns are named)
            perpetrators[pid] = (
                source_id,
                case_id,
                pid,
                ";".join(sorted(set(perpetrator.get("roles") or ()))),
                year,
                False,
                False,
            )
    return key, _record_row(key, ev.event_id, False, 1, year, country), persons, perpetrators


def _accept(
    records: dict[CaseKey, RecordRow],
    persons: dict[CaseKey, dict[str, PersonRow]],
    erased: set[tuple[str, str]],
    fresh: _AcceptedRows,
) -> None:
    # the one step every accepted record takes, on the rows prepared for it: a case with nothing
    # known about it before (the usual case) takes them as they are
    key, record, rows, _ = fresh
    prev = records.get(key)
    if prev is None:
        records[key] = record
    else:  # a later version of the case
        records[key] = (*record[:_R_VERSION], prev[_R_VERSION] + 1, *record[_R_VERSION + 1 :])
    old = persons.get(key)
    if not old and not erased:
        persons[key] = rows  # the run's own (Prepared is applied once)
        return
    case_disposed = (EVERY_VICTIM, DISPOSED) in erased
    new: dict[str, PersonRow] = {}
    for vid, row in rows.items():
        before = old.get(vid) if old else None
        if before is None and not erased:
            new[vid] = row
            continue
        withdrawn = bool(before and before[_P_WITHDRAWN]) or (vid, CONSENT_WITHDRAWN) in erased
        disposed = (
            bool(before and before[_P_DISPOSED]) or (vid, DISPOSED) in erased or case_disposed
        )
        new[vid] = (
            (*row[:_P_WITHDRAWN], withdrawn, disposed, False) if withdrawn or disposed else row
        )
    persons[key] = new


def _accept_perpetrators(
    perpetrators: dict[CaseKey, dict[str, PerpetratorRow]],
    key: CaseKey,
    erased: set[tuple[str, str]],
    fresh: dict[str, PerpetratorRow] | None,
) -> None:
    """Replace the case's perpetrator rows with the accepted version's, ``fresh`` (prepared by
    :func:`_accepted_rows`; flags carried over as :func:`_accept` carries the persons': a
    whole-case disposal applies to every version)."""
    old = perpetrators.get(key)
    if fresh is None and not old:
        return
    case_disposed = (EVERY_VICTIM, DISPOSED) in erased
    if not old and not case_disposed:
        perpetrators[key] = {} if fresh is None else fresh  # the run's own, as the persons
        return
    new: dict[str, PerpetratorRow] = {}
    for pid, row in (fresh or {}).items():
        before = old.get(pid) if old else None
        disposed = case_disposed or bool(before and before[_PP_DISPOSED])
        new[pid] = (*row[:_PP_DISPOSED], True, False) if disposed else row
    perpetrators[key] = new


def _joined(codes: Sequence[str]) -> str:
    """Codes as a ``proj_persons`` column: ``;``-joined, sorted, each once."""
    if len(codes) == 1 and type(codes[0]) is str:  # most lists hold one code: nothing to sort
        return codes[0]
    return ";".join(sorted(set(codes)))


def _codes(codes: Sequence[str | None]) -> str:
    """Country codes as a ``proj_persons`` column: ``;``-joined, sorted, ``Unknown`` left out."""
    if len(codes) == 1 and (type(codes[0]) is str or codes[0] is None):
        one = codes[0]
        return one if one and one != "Unknown" else ""
    return ";".join(sorted({c for c in codes if c and c != "Unknown"}))


def by_source(keys: Iterable[CaseKey]) -> Iterable[tuple[str, list[str]]]:
    """``(source_id, case_ids)`` chunks: ``source_id = ? AND case_id IN (...)`` uses the index
    prefix on every database, where a row-value ``IN`` may scan the table."""
    cases: dict[str, list[str]] = {}
    for source_id, case_id in sorted(keys):
        cases.setdefault(source_id, []).append(case_id)
    for source_id, ids in cases.items():
        for i in range(0, len(ids), _CHUNK):
            yield source_id, ids[i : i + _CHUNK]


def _where_cases(table: Table, source_id: str, case_ids: list[str]) -> ColumnElement[bool]:
    return and_(table.c.source_id == source_id, table.c.case_id.in_(case_ids))


# The columns a run loads, in the tables' order; the flags among them come back from SQLite as
# 0/1 and are made booleans again, as SQLAlchemy's Boolean type would.
_RECORD_COLUMNS = tuple(c.name for c in _records.columns)
_PERSON_COLUMNS = tuple(c.name for c in _persons.columns)
_ERASURE_COLUMNS = ("source_id", "case_id", "victim_id", "kind")
_RECORD_FLAGS = ("retracted",)
if _RECORD_COLUMNS != (  # pragma: no cover - a schema change must update _record_row
    "source_id",
    "case_id",
    "event_id",
    "retracted",
    "version",
    "year",
    "country",
):
    raise RuntimeError("proj_records' columns changed: update _record_row")
(_R_RETRACTED,) = (_RECORD_COLUMNS.index(f) for f in _RECORD_FLAGS)
_R_VERSION = _RECORD_COLUMNS.index("version")
_PERSON_FLAGS = ("consent_withdrawn", "disposed", "retracted")
#: the order :func:`_accept` builds a person's tuple in; the table's own, or the module fails here
_PERSON_ORDER = (
    "source_id",
    "case_id",
    "victim_id",
    "sex",
    "age_at_identification",
    "age_range_lower",
    "age_range_upper",
    "majority_status",
    "age_group",
    "forms_of_exploitation",
    "year_of_exploitation",
    "citizenships",
    "countries_of_exploitation",
    "consent_withdrawn",
    "disposed",
    "retracted",
)
if _PERSON_COLUMNS != _PERSON_ORDER:  # pragma: no cover - a schema change must update _accept
    raise RuntimeError("proj_persons' columns changed: update _PERSON_ORDER and _accept")
_P_WITHDRAWN, _P_DISPOSED, _P_RETRACTED = (_PERSON_COLUMNS.index(f) for f in _PERSON_FLAGS)
_P_FIRST_FLAG = _P_WITHDRAWN  # the flags are the last columns (_PERSON_ORDER)


def _flagged(row: tuple[Any, ...], index: int) -> tuple[Any, ...]:
    """``row`` with the flag at ``index`` set."""
    return (*row[:index], True, *row[index + 1 :])


_PERPETRATOR_COLUMNS = tuple(c.name for c in _perpetrators.columns)
_PERPETRATOR_FLAGS = ("disposed", "retracted")
if _PERPETRATOR_COLUMNS != (  # pragma: no cover - a schema change must update the builder
    "source_id",
    "case_id",
    "perpetrator_id",
    "roles",
    "year_of_exploitation",
    "disposed",
    "retracted",
):
    raise RuntimeError("proj_perpetrators' columns changed: update _accept_perpetrators")
# the flags are the last columns
_PP_DISPOSED, _PP_RETRACTED = (_PERPETRATOR_COLUMNS.index(f) for f in _PERPETRATOR_FLAGS)


def _select_cases(
    conn: Connection, table: Table, columns: Sequence[str], keys: set[CaseKey]
) -> Iterable[tuple[Any, ...]]:
    """The ``columns`` of ``table``'s rows of the cases ``keys``, as the driver gives them:
    ``source_id = ? AND case_id IN (...)`` per source (the index's prefix on every database),
    sent as written (:func:`select_in`). A run of new cases finds nothing, and an ``IN`` list
    SQLAlchemy expands again on every execution would cost more than the queries."""
    cases: dict[str, list[str]] = {}
    for source_id, case_id in keys:
        cases.setdefault(source_id, []).append(case_id)
    for source_id, case_ids in sorted(cases.items()):
        yield from select_in(
            conn, table, columns, "case_id", sorted(case_ids), where={"source_id": source_id}
        )


def _load_records(conn: Connection, keys: set[CaseKey]) -> dict[CaseKey, RecordRow]:
    out: dict[CaseKey, RecordRow] = {}
    r = _R_RETRACTED
    for values in _select_cases(conn, _records, _RECORD_COLUMNS, keys):
        out[(values[0], values[1])] = (*values[:r], bool(values[r]), *values[r + 1 :])
    return out


def _load_persons(conn: Connection, keys: set[CaseKey]) -> dict[CaseKey, dict[str, PersonRow]]:
    out: dict[CaseKey, dict[str, PersonRow]] = {}
    first = _P_FIRST_FLAG
    for values in _select_cases(conn, _persons, _PERSON_COLUMNS, keys):
        row = (*values[:first], *(bool(v) for v in values[first:]))
        out.setdefault((row[0], row[1]), {})[row[2]] = row
    return out


def _load_perpetrators(
    conn: Connection, keys: set[CaseKey]
) -> dict[CaseKey, dict[str, PerpetratorRow]]:
    out: dict[CaseKey, dict[str, PerpetratorRow]] = {}
    first = _PP_DISPOSED
    for values in _select_cases(conn, _perpetrators, _PERPETRATOR_COLUMNS, keys):
        row = (*values[:first], *(bool(v) for v in values[first:]))
        out.setdefault((row[0], row[1]), {})[row[2]] = row
    return out


def _in_order(dirty: set[CaseKey], order: list[CaseKey]) -> list[CaseKey]:
    """``dirty`` sorted, picked out of ``order`` (the run's cases, sorted before the lock)."""
    picked = [k for k in order if k in dirty]
    return picked if len(picked) == len(dirty) else sorted(dirty)


def _write_records(
    conn: Connection,
    records: dict[CaseKey, RecordRow],
    dirty: list[CaseKey],
    before: set[CaseKey],
) -> None:
    """Write the ``dirty`` cases' rows (``dirty`` sorted; ``before``: the cases that had one)."""
    inserts = [records[k] for k in dirty if k not in before]
    updates = [
        {**dict(zip(_RECORD_COLUMNS, records[k], strict=True)), "k_source": k[0], "k_case": k[1]}
        for k in dirty
        if k in before
    ]
    insert_values(conn, _records, _RECORD_COLUMNS, inserts)
    if updates:
        stmt = (
            update(_records)
            .where(_records.c.source_id == bindparam("k_source"))
            .where(_records.c.case_id == bindparam("k_case"))
            .values(
                event_id=bindparam("event_id"),
                retracted=bindparam("retracted"),
                version=bindparam("version"),
                year=bindparam("year"),
                country=bindparam("country"),
            )
        )
        conn.execute(
            stmt,
            [{c: u[c] for c in ("k_source", "k_case", *_RECORD_VALUE_COLUMNS)} for u in updates],
        )


_RECORD_VALUE_COLUMNS = ("event_id", "retracted", "version", "year", "country")


def _write_persons(
    conn: Connection,
    persons: dict[CaseKey, dict[str, PersonRow]],
    dirty: list[CaseKey],
    before: set[CaseKey],
) -> None:
    # Replace the dirty cases' persons wholesale: fewer statements than a per-row diff.
    if before:
        for source_id, case_ids in by_source(before.intersection(dirty)):
            conn.execute(delete(_persons).where(_where_cases(_persons, source_id, case_ids)))
    rows: list[PersonRow] = []
    for k in dirty:
        case = persons.get(k)
        if case:  # in victim id order; most cases have one victim
            rows.extend(case.values() if len(case) == 1 else (r for _, r in sorted(case.items())))
    insert_values(conn, _persons, _PERSON_COLUMNS, rows)


def _write_perpetrators(
    conn: Connection,
    perpetrators: dict[CaseKey, dict[str, PerpetratorRow]],
    dirty: list[CaseKey],
    before: set[CaseKey],
) -> None:
    # as the persons: the dirty cases' rows are replaced wholesale
    if before:
        for source_id, case_ids in by_source(before.intersection(dirty)):
            conn.execute(
                delete(_perpetrators).where(_where_cases(_perpetrators, source_id, case_ids))
            )
    rows: list[PerpetratorRow] = []
    for k in dirty:
        case = perpetrators.get(k)
        if case:  # in perpetrator id order; most cases have one
            rows.extend(case.values() if len(case) == 1 else (r for _, r in sorted(case.items())))
    insert_values(conn, _perpetrators, _PERPETRATOR_COLUMNS, rows)


def clear(conn: Connection) -> None:
    """Delete every projection row (inside the caller's transaction)."""
    for table in PROJECTION_TABLES:
        conn.execute(delete(table))


#: SQLite's page cache (KiB) while a rebuild fills whole tables: their indexes (a person id's, a
#: case's key) take rows in no order of theirs, and with the default 2 MiB nearly every insert
#: reads and spills index pages (a tenth of a 10^6-event replay's writes). A fixed size: memory
#: stays flat whatever the store's size.
REBUILD_CACHE_KIB = 65_536


@contextmanager
def bulk_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, :data:`REBUILD_CACHE_KIB` of page cache for this connection while the block
    runs (the connection's own setting again after it); nothing on other databases."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{REBUILD_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


def rebuild(engine: Engine, *, batch: int = 10_000) -> int:
    """Empty the projections and replay every stored event in seq order, in one transaction.

    Returns the number of events replayed. Readers see either the old or the new state. The
    events are read by :func:`replay_page` (what the projections read of each event, the bulk
    of a replay built without the converter) and folded by :func:`apply_many`, as live.
    """
    replayed = 0
    with writer(engine).begin() as conn, bulk_cache(conn):
        clear(conn)
        after = 0
        while True:
            page = replay_page(conn, after, batch)
            if not page:
                break
            apply_many(conn, page)
            replayed += len(page)
            after = page[-1][0]
    return replayed


# --- replay: the stored events as the projections read them -------------------------------------
#
# A replay decodes every stored event, and most of them are an accepted record or a link. The
# converter builds each through generic structuring (a third of a replay's time), and an
# accepted record's sealed identifiers and a link's evidence are nested objects no projection
# reads. ``replay_page`` builds those two events directly from their JSON (an accepted record of
# version 3 from its binary body), with the identifiers and the evidence left empty; anything else (another type, another stored version, a row this
# shortcut does not recognise) goes through :func:`decode` as on every other path.


def replay_page(conn: Connection, after_seq: int, limit: int) -> list[tuple[int, Event]]:
    """Up to ``limit`` stored events after ``after_seq`` in seq order, for :func:`apply_many`:
    as :func:`read_page` reads them, except that an accepted record's ``sealed_identifiers``
    and a link's ``evidence`` are empty (the projections read neither)."""
    c = stored_events.c
    stmt = (
        select(c.seq, c.event_type, c.payload, c.body, c.body_schema, c.event_id, c.source_id)
        .where(c.seq > after_seq)
        .order_by(c.seq)
        .limit(limit)
    )
    # the driver's own rows (text, bytes, integers: what SQLAlchemy's rows would hold), without
    # a SQLAlchemy row per stored event
    compiled = stmt.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args: Any = (
        tuple(params[k] for k in compiled.positiontup or ()) if compiled.positional else params
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, args)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return [(seq, _replayed(t, p, b, schema, eid, sid)) for seq, t, p, b, schema, eid, sid in rows]


def _replayed(
    event_type: str,
    text: str,
    body: bytes | None,
    body_schema: bytes | None,
    event_id: str | None = None,
    source_id: str | None = None,
) -> Event:
    if text == _BODY_PAYLOAD and event_type == RecordAccepted.event_type:
        # an accepted record's version-3 body: read directly, its sealed identifiers left out
        if type(body) is bytes and type(body_schema) is bytes:
            try:
                return _accepted_body_of(body, body_schema, event_id, source_id, sealed=False)
            except Exception:  # decode says what is wrong with it
                pass
        return decode(
            event_type, {_VERSION_KEY: 3}, body, body_schema, event_id=event_id, source_id=source_id
        )
    if event_type in _SHORTCUTS:
        # orjson reads the JSON in a tenth of json's time (a link's evidence is most of its
        # bytes), but reads an integer beyond 64 bits as a float, silently: the shortcut takes
        # only rows whose integers came back as integers, and json reads any other
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:  # e.g. a lone surrogate, which json reads
            data = None
        if isinstance(data, dict):
            if event_id is not None and "event_id" not in data:
                data["event_id"] = event_id  # a packed link's: its row's column
            try:
                found = _SHORTCUTS[event_type](data, body, body_schema)
            except (KeyError, TypeError):
                found = None  # not the shape this shortcut knows: the converter decides
            if found is not None:
                return found
    # json, not orjson: orjson reads an integer beyond 64 bits as a float, silently
    return decode(
        event_type,
        json.loads(text),
        body,
        body_schema,
        event_id=event_id,
        source_id=source_id,
    )


def _is_int(value: object) -> bool:
    return type(value) is int


def _accepted_shortcut(
    data: dict[str, Any], body: bytes | None, body_schema: bytes | None
) -> Event | None:
    # a version-2 row (version 3 is read above, from its body)
    if body is None or body_schema is None or data.get(_VERSION_KEY) != 2:
        return None
    produced, accepted = data["produced_at_ms"], data["accepted_at_ms"]
    agreement = data.get("agreement_version")
    if not (_is_int(produced) and _is_int(accepted) and (agreement is None or _is_int(agreement))):
        return None
    return RecordAccepted(
        event_id=data["event_id"],
        source_id=data["source_id"],
        case_id=data["case_id"],
        record=decode_record(body_schema, body),
        sealed_identifiers={},
        produced_at_ms=produced,
        accepted_at_ms=accepted,
        kind=data.get("kind", "RecordUpsert"),
        agreement_version=agreement,
    )


def _linked_shortcut(
    data: dict[str, Any], body: bytes | None, body_schema: bytes | None
) -> Event | None:
    # version 1, or 2 (the evidence packed): the evidence is left out either way
    if data.get(_VERSION_KEY) not in (1, 2) or not _is_int(data["linked_at_ms"]):
        return None
    v = data["victim"]
    return RecordLinked(
        event_id=data["event_id"],
        victim=VictimRef(v["source_id"], v["case_id"], v["victim_id"]),
        person_id=data["person_id"],
        decision=data["decision"],
        model_version=data["model_version"],
        evidence=[],
        linked_at_ms=data["linked_at_ms"],
    )


_SHORTCUTS: dict[str, Callable[[dict[str, Any], bytes | None, bytes | None], Event | None]] = {
    RecordAccepted.event_type: _accepted_shortcut,
    RecordLinked.event_type: _linked_shortcut,
}
"""The events a replay builds directly from their JSON (see the note above)."""


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows (followers' too) as sorted tuples: for tests and the CLI."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn, conn.begin():
        for table in (*PROJECTION_TABLES, *FOLLOWER_TABLES):
            rows = [tuple(r) for r in conn.execute(select(table))]
            out[table.name] = sorted(rows, key=lambda r: tuple((v is None, v) for v in r))
    return out
