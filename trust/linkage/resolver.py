"""Linkage in the trust: every victim record placed in a person, and every placement an event.

:class:`Resolver` follows the store (accepted records, retractions, consent withdrawals,
disposals) and is the only writer of linkage's events (:data:`trust.store.events.LINKAGE_EVENTS`).
It appends them in the same transaction that records its position, so each decision is made
exactly once; the person projections (``proj_person_links`` …) follow from the events.

Per new victim record:

1. its identifiers are opened from the vault (the sex and citizenship come from the record);
2. its keyed blocking digests are looked up in ``link_blocks`` — an index, so the cost per record
   does not grow with the store. A key whose block holds more than ``block_cap`` records (a
   common name and its birth year) is looked up through its refinements instead (the same key
   with the record's sex, nationality and year of exploitation; with its date of birth), each
   used if its own block is within the cap; every block is read with a limit, so a huge one
   costs no more than a small one. Of the records found, the ``max_candidates`` found under the
   most keys are kept (records sharing an identifier both agreements declare first);
3. every record of each person found that way is compared with it (the comparisons of
   :class:`trust.linkage.Linker`): the fields come from ``link_features``, sealed under each
   person's own data key. The comparisons of a whole batch are made ahead in one vectorised pass
   (each new record with the persons it met and the batch's records it may meet; a pair's levels
   depend on its two records only), the few pairs not foreseen when the record is placed. An
   exact agreement on a name weighs by that name's frequency among the linked records
   (``link_terms``, keyed digests: a common name says less than a rare one) at the moment the
   record is placed — for a pair of one nationality and sex, its frequency within them;
4. the decision, among the candidate *persons* (:func:`choose`): a person whose records say
   "someone else" (below the conflict threshold) as often as "more likely the same" (at or
   above the lower one), more strongly than its best record says "the same", is *conflicted*;

   - several persons each joinable on their own (a pair at or above the upper threshold, not
     conflicted): the record would bridge persons established apart — it never merges them by
     itself: it joins the best of them provisionally (``provisional``: counted there, as it
     most likely is one of them) and a review is opened; accepting another candidate moves it
     there, rejecting them all makes it a person of its own;
   - otherwise the persons compete for the record (it is at most one of them): a person's
     *share* is its odds over one (a new person) plus the odds of every person met. The record
     joins the person whose share is at least ``join_share`` (``joined``: more likely than all
     alternatives together); a share of at least ``review_share``, or a conflicted person with
     a pair at or above the upper threshold, opens a review — the record counts in the best
     person meanwhile if that is more likely than a new one (``provisional``), else it is a
     person of its own (``pending_review``);
   - otherwise a new person.

   The prior of the pairs' probabilities follows the store's size (:meth:`MatchModel.among`):
   the more records stored, the more namesakes a record meets, and the less likely each is.
   An operator's verdict on a pair (``LinkOverridden``) overrides the model from then on.
   Victims of the same case record are different persons by construction and never compared.

A record leaves its person when its case is retracted, when its victim withdraws consent or is
disposed of, or when a new version of its case drops or changes it (a changed record is then
placed afresh). Its blocking digests and sealed fields are deleted with it. The person's
remaining records are then re-resolved: their pairs are scored again and, if they no longer hang
together (the record that left was the bridge), the part holding the person's first record keeps
the id and each other part becomes a new person (``PersonSplit``). A person id, once issued, is
never reused or silently changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import Connection, and_, delete, select

from trust.follow import Batch
from trust.linkage.blocking import KeyedHasher, Lookup, rank_candidates
from trust.linkage.comparison import compare_pairs
from trust.linkage.linker import Linker, PairScore, frequency_columns
from trust.linkage.model import (
    TermFrequencies,
    group_digests,
    group_of,
    probability,
    value_digest,
    within_group,
)
from trust.linkage.record import FORM_CODES, LinkRecord, PreparedRecord, RecordTable, prepare
from trust.linkage.settings import LinkageSettings
from trust.stewardship.policy import Policy
from trust.store.db import bulk_insert, param_mark, select_in, select_keys
from trust.store.errors import KeyShredded
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    Event,
    LinkDecision,
    LinkOverridden,
    LinkReviewOpened,
    PairEvidence,
    PersonsMerged,
    PersonSplit,
    RecordAccepted,
    RecordLinked,
    RecordRetracted,
    RecordUnlinked,
    SealedBlob,
    VictimRef,
    new_event_id,
)
from trust.store.eventstore import EventStore, follower_state_in
from trust.store.projections import by_source, victim_text
from trust.store.tables import link_blocks as _blocks
from trust.store.tables import link_features as _features
from trust.store.tables import link_terms as _terms
from trust.store.tables import proj_link_overrides as _overrides
from trust.store.tables import proj_link_reviews as _reviews
from trust.store.tables import proj_linked_persons as _persons
from trust.store.tables import proj_person_links as _links
from trust.store.tables import proj_persons as _proj_persons
from trust.store.tables import stored_events as _stored
from trust.store.vault import Vault

RESOLVER = "trust-linkage"
# prepared records kept in memory between batches (about 1.6 KiB each: ~320 MiB when full); at
# 10^5 simulated persons the store holds 196,064 records, and a record's candidates not held here
# are read, opened and normalised again (at 100,000 that was about 40 % of a record's time)
KNOWN_RECORDS = 200_000
PLACEMENTS_MAX = 2_000_000  # placements (and index digests) kept in memory between batches

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (source_id, case_id, victim_id)

_CHUNK = 300  # keys per IN (...) list
_EVIDENCE = 5  # pairs kept as a decision's evidence, best first
_FEATURES_AAD = b"tiptrust/link-features/v1\x00"
_LINK_FIELDS = tuple(f.name for f in fields(LinkRecord) if f.name != "id")


class UnlinkReason:
    RETRACTED = "retracted"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    DISPOSED = "disposed"
    SUPERSEDED = "superseded"  # a new version of the case dropped or changed the record


def new_person_id() -> str:
    """A fresh person id (never reused; says nothing about the person)."""
    return "P-" + uuid.uuid4().hex


def _ref(key: Key) -> VictimRef:
    return VictimRef(*key)


def _features_aad(key: Key) -> bytes:
    return _FEATURES_AAD + json.dumps(list(key)).encode()


def link_record(
    key: Key,
    victim: Mapping[str, Any],
    identifiers: Mapping[str, Any],
    case: Mapping[str, Any] | None = None,
) -> LinkRecord:
    """What linkage compares of one victim: the sealed identifiers (names, date of birth, first
    document) with the record's sex and first known citizenship, and from its ``case`` (the
    minimised record) the context: age and the year it was recorded in, year and forms of
    exploitation."""
    documents = identifiers.get("documents") or []
    citizenships = [c for c in victim.get("citizenships") or () if c and c != "Unknown"]
    sex = victim.get("sex") or ""
    event = (case or {}).get("event") or {}
    event_year = event.get("year_of_exploitation")
    age = victim.get("age_at_identification")
    recorded = _year_of(((case or {}).get("reporting_entity") or {}).get("date_recorded"))
    return LinkRecord(
        id=json.dumps(list(key)),
        given_name=identifiers.get("given_names") or "",
        surname=identifiers.get("surnames") or "",
        date_of_birth=str(identifiers.get("date_of_birth") or ""),
        sex="" if sex in ("Unknown", "NonSpecifiedUnknown") else str(sex),
        nationality=citizenships[0] if citizenships else "",
        document_number=(documents[0].get("number") or "") if documents else "",
        age="" if age is None else str(age),
        # the age was taken when the victim was identified: the record's date, else the year
        # of exploitation
        age_year=str(recorded or event_year or "") if age is not None else "",
        event_year="" if event_year is None else str(event_year),
        forms=";".join(sorted({str(f) for f in event.get("forms_of_exploitation") or ()})),
    )


def _year_of(value: Any) -> int | None:
    """The year of a record date as stored (a date, ISO text or days since 1970)."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.year
    if isinstance(value, int):
        return (dt.date(1970, 1, 1) + dt.timedelta(days=value)).year
    text = str(value)
    return int(text[:4]) if len(text) >= 4 and text[:4].isdigit() else None


def _fields_of(record: LinkRecord) -> dict[str, str]:
    return {name: getattr(record, name) for name in _LINK_FIELDS}


def _features_of(record: LinkRecord, shared: tuple[tuple[str, str], ...]) -> bytes:
    """A fingerprint of what is compared of a record (its fields and shared identifiers), to
    spot a record that a new case version changed: 16 bytes held in memory instead of the
    fields themselves (a remembered record cost about 2.1 KiB with them, 1.6 without)."""
    values = [getattr(record, name) for name in _LINK_FIELDS]
    return hashlib.blake2b(orjson.dumps([values, shared]), digest_size=16).digest()


Shared = tuple[tuple[str, str], ...]  # (scheme, value) of a record's shared identifiers


def shared_ids(identifiers: Mapping[str, Any]) -> Shared:
    """A victim's shared identifiers (scheme, value), trimmed, distinct, sorted."""
    out = set()
    for item in identifiers.get("shared_ids") or ():
        scheme, value = str(item.get("scheme") or "").strip(), str(item.get("value") or "").strip()
        if scheme and value:
            out.add((scheme, value))
    return tuple(sorted(out))


@dataclass
class _Upsert:
    key: Key
    record: LinkRecord
    prepared: PreparedRecord
    digests: tuple[str, ...]  # every digest it is filed under
    shared: Shared = ()
    # its keys and their refinements, to look candidates up
    lookup: Lookup = field(default_factory=lambda: Lookup(()))
    shared_digests: tuple[str, ...] = ()  # the digests of its shared identifiers


@dataclass
class _Remove:
    key: Key
    reason: str


@dataclass
class _CaseVictims:
    """After a case's new version: its victims not in ``present`` leave their persons (for
    ``reason``; None: retracted when none is present, else superseded)."""

    source_id: str
    case_id: str
    present: frozenset[str]
    reason: str | None = None


_Op = _Upsert | _Remove | _CaseVictims | LinkOverridden


class _Memory:
    """What a resolver keeps of the stored placements and blocking index between batches, so that
    a record's candidates and their persons are not read again from the store each time.

    It is valid only while this resolver is the only one deciding: :meth:`Resolver.apply`
    empties it when another process linked events meanwhile (the store holds events of linkage's
    types between what this memory has seen and where the follower stands), when its last
    batch did not commit (the follower stands before what it has seen), and when a batch fails.
    """

    def __init__(self) -> None:
        self.person: dict[Key, str | None] = {}  # placement (None: not linked)
        self.members: dict[str, set[Key]] = {}  # person -> its records known here
        self.complete: set[str] = set()  # persons whose every record is in ``members``
        self.index: dict[str, set[Key]] = {}  # digest -> its records (blocks read whole)
        self.indexed: set[str] = set()  # digests whose every stored record is in ``index``
        self.oversize: set[str] = set()  # digests shared by more records than their limit
        # ``link_terms`` as read and written here: (column, digest) -> count (0: no row)
        self.terms: dict[tuple[str, str], int] = {}
        # whether no operator verdict is stored (None: not asked yet); verdicts come only as
        # events this resolver handles (``LinkOverridden``), so once asked it stays known
        self.no_verdicts: bool | None = None
        self.seen: int | None = None  # the store position this memory reflects

    def clear(self) -> None:
        for held in (self.person, self.members, self.index, self.terms):
            held.clear()
        for digests in (self.complete, self.indexed, self.oversize):
            digests.clear()
        self.no_verdicts = None
        self.seen = None

    def too_large(self) -> bool:
        return (
            len(self.person) > PLACEMENTS_MAX
            or len(self.indexed) > 4 * PLACEMENTS_MAX
            or len(self.terms) > PLACEMENTS_MAX
        )


class Resolver:
    """Places victim records in persons (a StoreFollower that decides: see the module text)."""

    name = RESOLVER
    event_types = frozenset(
        cls.event_type
        for cls in (
            RecordAccepted,
            RecordRetracted,
            ConsentWithdrawn,
            DisposalRequested,
            LinkOverridden,
        )
    )
    # Linkage's decisions are events, not a rebuildable table: its version never changes with
    # its code. (Re-linking under a new model is its own step, with merge and split events.)
    version = "1"
    reads_records = True

    def __init__(
        self,
        vault: Vault,
        linker: Linker,
        *,
        clock: Callable[[], float] = time.time,
        person_ids: Callable[[], str] = new_person_id,
        policy: Policy | None = None,
    ) -> None:
        self.vault = vault
        self.linker = linker
        self.policy = policy
        # linked records' opened and prepared fields, most recently used last: a record meets
        # the same candidates again and again, and opening and normalising them was most of
        # the cost per record. Kept current by this resolver (filed, removed); bounded.
        self.known: OrderedDict[Key, tuple[bytes, Shared, PreparedRecord]] = OrderedDict()
        self.known_size = KNOWN_RECORDS
        self.memory = _Memory()
        self.clock = clock
        self.person_ids = person_ids
        # bulk seeding (:meth:`seed_with`): record -> the label of the person it belongs to
        self.seed: dict[Key, str] = {}
        self.seeded: dict[str, str] = {}  # label -> the person id issued for it

    @property
    def model_version(self) -> str:
        return self.linker.model_version

    def apply(self, conn: Connection, events: Batch) -> None:
        self._check_memory(conn)
        try:
            self._apply(conn, events)
        except BaseException:
            self.clear_memory()  # what it learnt may not be committed
            raise
        if events:
            self.memory.seen = max(self.memory.seen or 0, events[-1][0])

    def _check_memory(self, conn: Connection) -> None:
        """Empty what this resolver remembers unless it still reflects the store: nobody else
        linked events since, and its last batch committed (see :class:`_Memory`)."""
        at = follower_state_in(conn, self.name).last_seq
        seen = self.memory.seen
        stale = seen is not None and (
            at < seen
            or (
                at > seen
                and conn.execute(
                    select(_stored.c.seq)
                    .where(
                        _stored.c.seq > seen,
                        _stored.c.seq <= at,
                        _stored.c.event_type.in_(sorted(self.event_types)),
                    )
                    .limit(1)
                ).first()
                is not None
            )
        )
        if stale or self.memory.too_large():
            self.clear_memory()
        self.memory.seen = at

    def _apply(self, conn: Connection, events: Batch) -> None:
        # the victims' data keys, unwrapped in one read instead of one per person
        self.vault.warm(
            blob.person_key_id
            for _, ev in events
            if isinstance(ev, RecordAccepted)
            for blob in ev.sealed_identifiers.values()
        )
        # victims already erased (withdrawn or disposed of, maybe before their case came) are
        # never linked: their identifiers are gone, and they are not counted
        erased = _erased_victims(
            conn, {(ev.source_id, ev.case_id) for _, ev in events if isinstance(ev, RecordAccepted)}
        )
        # a victim erased later in the stream than its record is linked, and leaves at the erasure
        later = _erasures_after(conn, events, {k[:2] for k in erased}) if erased else {}
        # the batch's keyed digests made once each (records share names, years, nationalities)
        hasher = self.linker.hasher.for_run()
        ops: list[_Op] = []
        for seq, ev in events:
            ops.extend(self._ops(conn, ev, _erased_before(erased, later, seq), hasher))
        if ops:
            _Run(self, conn, ops, hasher).run()

    def clear(self, conn: Connection) -> None:
        """Empty linkage's index. Its decisions stay (they are events): following again from 0
        re-files the linked records without deciding anything anew."""
        conn.execute(delete(_blocks))
        conn.execute(delete(_features))
        conn.execute(delete(_terms))
        self.clear_memory()

    def remember(self, key: Key, features: bytes, shared: Shared, prepared: PreparedRecord) -> None:
        self.known[key] = (features, shared, prepared)
        self.known.move_to_end(key)
        while len(self.known) > self.known_size:
            self.known.popitem(last=False)

    def forget(self, key: Key) -> None:
        self.known.pop(key, None)

    def clear_memory(self) -> None:
        self.known.clear()
        self.memory.clear()

    def seed_with(self, labels: Mapping[Key, str]) -> None:
        """Place the records in ``labels``, when they arrive, in the person of their label
        instead of scoring them: the first record of a label makes a new person, the others
        join it (``RecordLinked`` events without evidence). They are filed, sealed and counted
        exactly as a decided record is, so a store can be loaded in bulk from known persons
        (another linkage's clusters, a migration, a benchmark's truth) and later records are
        linked against it as usual. Each label's person id, once issued, stays its own."""
        self.seed.update(labels)

    def score_pair(self, conn: Connection, a: LinkRecord, b: LinkRecord) -> PairScore:
        """How the model scores ``(a, b)`` now, name frequencies included (as a decision would):
        for explanations."""
        terms = _Terms(conn, self.linker.hasher, _frequency_columns(self.linker))
        prepared_a = prepare(a)
        terms.load([prepared_a])
        linker = Linker(
            self.linker.settings,
            self.linker.model.among(terms.records()),
            self.linker.hasher,
            terms.frequencies(),
        )
        return linker.score(prepared_a, b)

    # -- events to operations -----------------------------------------------------------------

    def _ops(self, conn: Connection, ev: Event, erased: set[Key], hasher: KeyedHasher) -> list[_Op]:
        if isinstance(ev, RecordAccepted):
            out: list[_Op] = []
            present = []
            for victim in ev.victims:
                key = (ev.source_id, ev.case_id, str(victim["victim_id"]))
                if key in erased:
                    continue  # not present for linkage: if it was linked, it leaves its person
                present.append(key[2])
                opened = self._link_record(
                    key, victim, ev.sealed_identifiers.get(key[2]), ev.record
                )
                if opened is None:
                    continue  # being erased: the withdrawal or disposal removes it
                record, shared = opened
                prepared = prepare(record)
                keys = self.linker.candidates_keys(prepared, hasher)
                by_shared = tuple(self.shared_digest(s, v, hasher) for s, v in shared)
                digests = tuple(k.digest for k in keys) + by_shared
                out.append(
                    _Upsert(key, record, prepared, digests, shared, Lookup.of(keys), by_shared)
                )
            return [_CaseVictims(ev.source_id, ev.case_id, frozenset(present)), *out]
        if isinstance(ev, RecordRetracted):
            return [_CaseVictims(ev.source_id, ev.case_id, frozenset())]
        if isinstance(ev, ConsentWithdrawn):
            key = (ev.source_id, ev.case_id, ev.victim_id)
            return [_Remove(key, UnlinkReason.CONSENT_WITHDRAWN)]
        if isinstance(ev, DisposalRequested):
            if ev.victim_id is None:  # the whole case: its victims as the batch holds them
                return [_CaseVictims(ev.source_id, ev.case_id, frozenset(), UnlinkReason.DISPOSED)]
            return [_Remove((ev.source_id, ev.case_id, ev.victim_id), UnlinkReason.DISPOSED)]
        if isinstance(ev, LinkOverridden):
            return [ev]
        return []

    def _link_record(
        self,
        key: Key,
        victim: Mapping[str, Any],
        blob: SealedBlob | None,
        case: Mapping[str, Any] | None = None,
    ) -> tuple[LinkRecord, Shared] | None:
        identifiers: Mapping[str, Any] = {}
        if blob is not None:
            try:
                identifiers = self.vault.open_identifiers(*key, blob)
            except KeyShredded:
                return None
        return link_record(key, victim, identifiers, case), shared_ids(identifiers)

    def shared_digest(self, scheme: str, value: str, hasher: KeyedHasher | None = None) -> str:
        """The keyed blocking digest of a shared identifier (never the value in clear)."""
        return (hasher or self.linker.hasher).digest(f"shared:{scheme}", (value,))

    # -- sealed fields ------------------------------------------------------------------------

    def seal_features(
        self, conn: Connection, key: Key, record: LinkRecord, shared: Shared = ()
    ) -> dict[str, str]:
        values: dict[str, Any] = {**_fields_of(record), "shared_ids": [list(x) for x in shared]}
        blob = self.vault.seal_in(
            conn, self.vault.person_key_id(*key), orjson.dumps(values), _features_aad(key)
        )
        return {
            "source_id": key[0],
            "case_id": key[1],
            "victim_id": key[2],
            "person_key_id": blob.person_key_id,
            "nonce": blob.nonce,
            "ciphertext": blob.ciphertext,
        }

    def open_features(self, row: Mapping[str, Any]) -> LinkRecord | None:
        """The fields of a ``link_features`` row; None once the person's key is shredded."""
        opened = self.open_linkable(row)
        return None if opened is None else opened[0]

    def open_linkable(self, row: Mapping[str, Any]) -> tuple[LinkRecord, Shared] | None:
        """The fields and shared identifiers of a ``link_features`` row (None once shredded)."""
        key = (row["source_id"], row["case_id"], row["victim_id"])
        blob = SealedBlob(row["person_key_id"], row["nonce"], row["ciphertext"])
        try:
            values = json.loads(self.vault.open(blob, _features_aad(key)))
        except KeyShredded:
            return None
        shared = tuple(sorted((str(s), str(v)) for s, v in values.pop("shared_ids", [])))
        return LinkRecord(id=json.dumps(list(key)), **values), shared


_ERASURES = (ConsentWithdrawn.event_type, DisposalRequested.event_type)


def _erased_victims(conn: Connection, cases: set[tuple[str, str]]) -> set[Key]:
    """:func:`trust.stewardship.erasure.erased_victims` — the victims of these cases whose
    consent was withdrawn or who were disposed of — through the driver (one statement per
    source: it runs for every batch, and a record linked alone paid more for SQLAlchemy's
    expanding ``IN`` than for the query)."""
    out: set[Key] = set()
    for source_id, case_ids in by_source(cases):
        rows = select_in(
            conn,
            _proj_persons,
            ("case_id", "victim_id", "consent_withdrawn", "disposed"),
            "case_id",
            case_ids,
            where={"source_id": source_id},
        )
        out.update(
            (source_id, str(c), str(v))
            for c, v, withdrawn, disposed in rows
            if withdrawn or disposed
        )
    return out


def _erased_before(erased: set[Key], later: Mapping[Key, list[int]], seq: int) -> set[Key]:
    """Of ``erased`` (victims withdrawn or disposed of by now, as the projections say), those
    erased before position ``seq`` of the stream. A victim erased by an event after it is linked
    where its record stands and leaves its person at that event — as when the resolver read the
    record before the erasure was stored — so the records placed in between are placed the same
    however the stream was cut into pages, and whenever the resolver ran. ``later``: the
    erasure events from the batch's start on (:func:`_erasures_after`).

    An erasure stored twice (before and after ``seq``) is read as after; the victim's key is
    then normally shredded already, and the record is not linked (it cannot be opened)."""
    if not erased:
        return erased
    out = set()
    for key in erased:
        seqs = later.get(key, []) + later.get((key[0], key[1], ""), [])
        if not seqs or min(seqs) < seq:
            out.add(key)  # erased before the batch, or earlier in it
    return out


def _erasures_after(
    conn: Connection, events: Batch, cases: set[tuple[str, str]]
) -> dict[Key, list[int]]:
    """The erasure events of ``cases`` from the start of ``events`` to the store's end: their
    seqs by the victim they name (``""``: the whole case). From the events of the
    batch; the store is read only past the batch (what was stored since the batch was read)."""
    out: dict[Key, list[int]] = {}

    def add(seq: int, source_id: str, case_id: str, victim_id: str | None) -> None:
        if (source_id, case_id) in cases:
            out.setdefault((source_id, case_id, victim_id or ""), []).append(seq)

    for seq, ev in events:
        if isinstance(ev, ConsentWithdrawn | DisposalRequested):
            add(seq, ev.source_id, ev.case_id, ev.victim_id)
    c = _stored.c
    rows = conn.execute(
        select(c.seq, c.payload).where(
            c.seq > (events[-1][0] if events else 0),
            c.event_type.in_(_ERASURES),
            c.source_id.in_(sorted({s for s, _ in cases})),
        )
    ).all()
    for seq, payload in rows:
        body = json.loads(payload)
        add(int(seq), str(body.get("source_id")), str(body.get("case_id")), body.get("victim_id"))
    return out


def _case_links(conn: Connection, source_id: str, case_id: str) -> list[Key]:
    rows = conn.execute(
        select(_links.c.source_id, _links.c.case_id, _links.c.victim_id).where(
            _links.c.source_id == source_id, _links.c.case_id == case_id
        )
    ).all()
    return sorted((str(a), str(b), str(c)) for a, b, c in rows)


_KEY_COLUMNS = ("source_id", "case_id", "victim_id")
_FEATURE_COLUMNS = (*_KEY_COLUMNS, "person_key_id", "nonce", "ciphertext")
_BLOCK_COLUMNS = ("block_key", *_KEY_COLUMNS)


def _bounded_blocks(
    conn: Connection, digests: Sequence[str], rows: int
) -> Iterator[tuple[Any, ...]]:
    """The ``link_blocks`` rows of each digest, at most ``rows`` of each: one statement per 200
    digests, each digest's rows read through the index with their own limit (a block of a million
    rows costs what one of ``rows`` does)."""
    q = conn.dialect.identifier_preparer.quote
    mark = param_mark(conn)
    columns = ", ".join(q(c) for c in _BLOCK_COLUMNS)
    one = f"SELECT {columns} FROM {q(_blocks.name)} WHERE {q('block_key')} = {mark} LIMIT {rows:d}"
    for i in range(0, len(digests), _UNION_CHUNK):
        chunk = list(digests[i : i + _UNION_CHUNK])
        sql = " UNION ALL ".join(f"SELECT * FROM ({one}) AS b{k}" for k in range(len(chunk)))
        yield from conn.exec_driver_sql(sql, tuple(chunk))


_UNION_CHUNK = 200  # digests per statement (SQLite allows 500 terms in a compound select)


def _key_is(table: Any, key: Key) -> Any:
    return and_(*(table.c[c] == v for c, v in zip(_KEY_COLUMNS, key, strict=True)))


_TOTAL, _SQUARES = "", "*"  # link_terms rows holding a column's total and sum of squares


def _frequency_columns(linker: Linker) -> list[str]:
    return frequency_columns(linker.settings.comparisons)


@dataclass(frozen=True, slots=True)
class _RecordTerms:
    """A record's term-frequency digests: its name group (:func:`group_of`; empty: none), per
    name column its value's digest and, with a group, the digests of the value within the group
    and of the group's records; and every (column, digest) it is counted under."""

    group: str
    names: dict[str, tuple[str, tuple[str, str] | None]]
    counted: list[tuple[str, str]]


class _Terms:
    """The name-value frequencies of the linked records (``link_terms``), read and moved within
    one run; :meth:`frequencies` is a live view the linker's term-frequency adjustment reads.

    ``counts``: what is already known of the table (the resolver's memory, kept between runs
    under the same rules as its placements), else a fresh dict; values read or moved here are
    added to it."""

    def __init__(
        self,
        conn: Connection,
        hasher: KeyedHasher,
        columns: Sequence[str],
        counts: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.conn = conn
        self.hasher = hasher
        self.names = tuple(columns)
        self.columns = (*self.names, *(within_group(c) for c in self.names))
        self.counts: dict[tuple[str, str], int] = {} if counts is None else counts
        self.dirty: set[tuple[str, str]] = set()
        # each record's values, by the record object (kept with it: an id is not reused while
        # its object lives): a record's keyed digests are made once a run, not at each count
        self._values: dict[int, tuple[PreparedRecord, _RecordTerms]] = {}
        self._fetch([(c, d) for c in self.names for d in (_TOTAL, _SQUARES)])
        self.view = TermFrequencies(
            counts={c: _ColumnCounts(self, c) for c in self.columns},
            totals=_Totals(self),
            average=_Averages(self),
        )

    def of(self, record: PreparedRecord) -> _RecordTerms:
        """The record's name values' digests (see :class:`_RecordTerms`), made once a run."""
        held = self._values.get(id(record))
        if held is not None and held[0] is record:
            return held[1]
        out = self._terms_of(record)
        self._values[id(record)] = (record, out)
        return out

    def values(self, record: PreparedRecord) -> list[tuple[str, str]]:
        """(column, digest) of the record's name values that carry a frequency, and of its
        name values and records within its name group (nationality and sex)."""
        return self.of(record).counted

    def _terms_of(self, record: PreparedRecord) -> _RecordTerms:
        counted: list[tuple[str, str]] = []
        names: dict[str, tuple[str, tuple[str, str] | None]] = {}
        group = group_of(record.nationality, record.sex)
        for column in self.names:
            name = getattr(record, _RECORD_ATTR[column], None)
            if name is not None and name.text:
                digest = value_digest(self.hasher, column, name.text)
                counted.append((column, digest))
                in_group = None
                if group:
                    in_group = group_digests(self.hasher, column, group, name.text)
                    counted.extend((within_group(column), d) for d in in_group)
                names[column] = (digest, in_group)
        return _RecordTerms(group, names, counted)

    def adjustments(self, record: PreparedRecord, column: str) -> tuple[float, float | None]:
        """The bits an exact agreement on ``record``'s value of ``column`` adds (0 without a
        value): over all linked records, and within the record's name group (None: too few
        counted there) — :meth:`TermFrequencies.adjustment` and ``adjustment_within`` at this
        moment's counts, from the digests kept with the record."""
        held = self.of(record).names.get(column)
        if held is None:
            return 0.0, None
        digest, in_group = held
        frequencies = self.view
        overall = frequencies.adjustment_of(column, digest)
        within = None if in_group is None else frequencies.adjustment_within_of(column, *in_group)
        return overall, within

    def load(self, records: Iterable[PreparedRecord]) -> None:
        self._fetch([v for r in records for v in self.values(r)])

    def _fetch(self, keys: Sequence[tuple[str, str]]) -> None:
        counts = self.counts
        wanted = sorted({k for k in keys if k not in counts})
        if not wanted:
            return
        for column in sorted({c for c, _ in wanted}):
            digests = [d for c, d in wanted if c == column]
            rows = select_in(
                self.conn, _terms, ("digest", "count"), "digest", digests, where={"column": column}
            )
            for digest, count in rows:
                self.counts[(column, digest)] = int(count)
        for k in wanted:
            self.counts.setdefault(k, 0)

    def move(self, record: PreparedRecord, by: int) -> None:
        """Count ``record``'s name values in (+1) or out (-1)."""
        values = self.values(record)
        self._fetch(values)
        for column, digest in values:
            before = self.counts[(column, digest)]
            after = max(before + by, 0)
            self.counts[(column, digest)] = after
            self.dirty.add((column, digest))
            if column in self.names:  # a group's counts have no total: each group counts itself
                self.counts[(column, _TOTAL)] += after - before
                self.counts[(column, _SQUARES)] += after * after - before * before
                self.dirty.update({(column, _TOTAL), (column, _SQUARES)})

    def write(self) -> None:
        """Write the counts moved since the last write: one upsert for those above zero, and
        the rows of those back at zero deleted."""
        dirty = sorted(self.dirty)
        for column in self.columns:
            gone = [d for c, d in dirty if c == column and self.counts[(c, d)] <= 0]
            for i in range(0, len(gone), _CHUNK):
                self.conn.execute(
                    delete(_terms).where(
                        _terms.c.column == column, _terms.c.digest.in_(gone[i : i + _CHUNK])
                    )
                )
        rows = [(c, d, self.counts[(c, d)]) for c, d in dirty if self.counts[(c, d)] > 0]
        if rows:
            self.conn.exec_driver_sql(_upsert_terms_sql(self.conn), rows)
        self.dirty.clear()

    def records(self) -> int:
        """About how many records are linked: the most counted in any name column (the records
        carrying that name; a record with no name at all is rarely anyone's candidate)."""
        return max((self.counts.get((c, _TOTAL), 0) for c in self.names), default=0)

    def frequencies(self) -> TermFrequencies:
        return self.view


def _upsert_terms_sql(conn: Connection) -> str:
    """``link_terms`` rows (column, digest, count) written whatever is there: one statement for
    all of them (SQLite and PostgreSQL share the syntax)."""
    q = conn.dialect.identifier_preparer.quote
    mark = param_mark(conn)
    column, digest, count = (q(c.name) for c in (_terms.c.column, _terms.c.digest, _terms.c.count))
    return (
        f"INSERT INTO {q(_terms.name)} ({column}, {digest}, {count}) "
        f"VALUES ({mark}, {mark}, {mark}) "
        f"ON CONFLICT ({column}, {digest}) DO UPDATE SET {count} = excluded.{count}"
    )


# the PreparedRecord attribute each term-frequency column of the record table comes from
_RECORD_ATTR = {"given": "given", "surname": "surname"}


class _ColumnCounts(Mapping[str, int]):
    def __init__(self, terms: _Terms, column: str) -> None:
        self.terms, self.column = terms, column

    def __getitem__(self, digest: str) -> int:
        count = self.terms.counts.get((self.column, digest))
        if count is None:
            raise KeyError(digest)
        return count

    def __iter__(self) -> Iterator[str]:
        return iter(d for c, d in self.terms.counts if c == self.column)

    def __len__(self) -> int:
        return sum(1 for c, _ in self.terms.counts if c == self.column)


class _Totals(Mapping[str, int]):
    def __init__(self, terms: _Terms) -> None:
        self.terms = terms

    def __getitem__(self, column: str) -> int:
        total = self.terms.counts.get((column, _TOTAL), 0)
        if total <= 0:
            raise KeyError(column)  # nothing counted yet: no adjustment
        return total

    def __iter__(self) -> Iterator[str]:
        return iter(self.terms.names)

    def __len__(self) -> int:
        return len(self.terms.names)


class _Averages(_Totals, Mapping[str, float]):
    def __getitem__(self, column: str) -> float:  # type: ignore[override]
        total = super().__getitem__(column)
        return self.terms.counts.get((column, _SQUARES), 0) / (total * total)


class _Run:
    """One batch of operations, in order, inside the follower's transaction."""

    def __init__(
        self, resolver: Resolver, conn: Connection, ops: list[_Op], hasher: KeyedHasher
    ) -> None:
        self.r = resolver
        self.conn = conn
        self.ops = ops
        self.settings = resolver.linker.settings
        base = resolver.linker
        self.terms = _Terms(conn, hasher, _frequency_columns(base), resolver.memory.terms)
        self.linker = Linker(self.settings, base.model, hasher, self.terms.frequencies())
        self._sized_at = -1  # the store size the linker's prior was last scaled to
        self.pending: list[Event] = []
        memory = resolver.memory  # placements and index, kept between runs
        self.memory = memory
        self.person = memory.person
        self.members = memory.members
        self.complete = memory.complete
        self.index = memory.index
        self.loaded: set[Key] = set()  # records whose fields this run has read
        self.placed: set[Key] = set()  # records placed or moved by this run
        self.prepared: dict[Key, PreparedRecord] = {}
        self.features: dict[Key, bytes] = {}  # record -> its fields' fingerprint (changes)
        self.shared: dict[Key, Shared] = {}  # record -> its shared identifiers
        self._may: dict[str, bool] = {}  # other source -> may be linked (per record's source)
        self._may_source = ""
        self.removed: set[Key] = set()
        self.block_rows: list[dict[str, str]] = []  # index rows to write at the end of the run
        self.filed: dict[str, set[Key]] = {}  # digest -> records filed by this run (not written)
        self.feature_rows: list[dict[str, str]] = []
        self.case_links: dict[tuple[str, str], set[Key]] = {}  # linked records of touched cases
        self.now_ms = int(resolver.clock() * 1000)
        # the candidates each new record met when the batch was read (:meth:`_prefetch`), and
        # how many records had been filed or removed then (``changes``): reused if none since
        self.found: dict[int, tuple[int, list[Key]]] = {}  # by id(op)
        self.changes = 0
        # the pairs of each new record compared ahead for the whole batch
        # (:meth:`_compare_ahead`): by id(op), the other record -> the pair's index in
        # ``ahead_levels`` and ``ahead_right`` (the row of ``ahead_records`` it was compared with)
        self.ahead: dict[int, dict[Key, int]] = {}
        self.ahead_levels = np.zeros((0, len(self.settings.comparisons)), dtype=np.int8)
        self.ahead_right: list[int] = []
        self.ahead_records: list[PreparedRecord] = []
        # the comparisons whose exact level a name's frequency adjusts: (index, column)
        self.tf_columns = [
            (c, column)
            for c, comparison in enumerate(self.settings.comparisons)
            if (column := comparison.term_frequency_column) is not None
        ]

    # -- the run --------------------------------------------------------------------------

    def run(self) -> None:
        upserts = [op for op in self.ops if isinstance(op, _Upsert)]
        self._prefetch_cases(
            {(op.source_id, op.case_id) for op in self.ops if isinstance(op, _CaseVictims)}
        )
        # a record its case's links do not hold is not linked, and has no stored fields (a
        # record is filed when it is placed, and its fields deleted when it leaves): nothing to
        # read of it
        for new in upserts:
            links = self.case_links.get((new.key[0], new.key[1]))
            if (
                links is not None
                and new.key not in links
                and new.key not in self.loaded
                and self.person.get(new.key) is None
            ):
                self.loaded.add(new.key)
                self.person[new.key] = None
        seed = self.r.seed
        if seed and all(op.key in seed for op in upserts):
            self._load([op.key for op in upserts])  # placed as labelled: no candidates read
            self.terms.load(op.prepared for op in upserts)
        else:
            self._prefetch(upserts)
        for op in self.ops:
            if isinstance(op, _Upsert):
                self._upsert(op)
            elif isinstance(op, _Remove):
                self._remove(op.key, op.reason)
            elif isinstance(op, LinkOverridden):
                self._override(op)
            else:
                for key in self._linked_in_case(op.source_id, op.case_id):
                    if key[2] not in op.present:
                        self._remove(
                            key,
                            op.reason
                            or (
                                UnlinkReason.RETRACTED
                                if not op.present
                                else UnlinkReason.SUPERSEDED
                            ),
                        )
        self._flush()
        bulk_insert(self.conn, _blocks, self.block_rows)
        bulk_insert(self.conn, _features, self.feature_rows)
        self.terms.write()

    def _flush(self) -> None:
        if self.pending:
            EventStore.append_in(self.conn, self.pending)
            self.pending = []

    def _emit(self, event: Event) -> None:
        self.pending.append(event)

    # -- reading what is stored -----------------------------------------------------------

    def _prefetch(self, upserts: Sequence[_Upsert]) -> None:
        """Load, once for the batch: the stored records sharing a digest with a new one, their
        fields and persons, and the new records' own placement and fields."""
        cap, most = self.settings.block_cap, self.settings.max_block_size
        self._fetch_blocks(sorted({d for op in upserts for d, _ in op.lookup.keys}), cap)
        self._fetch_blocks(sorted({d for op in upserts for d in op.shared_digests}), most)
        # the refinements of keys whose block is over the cap, in one go
        self._fetch_blocks(
            sorted(
                {
                    d
                    for op in upserts
                    for key, narrow in op.lookup.keys
                    if key in self.memory.oversize
                    for d in narrow
                }
            ),
            cap,
        )
        hits = []
        for op in upserts:
            found = self._candidates(op)
            # kept for its placement, valid while no record is filed or removed meanwhile
            self.found[id(op)] = (self.changes, found)
            hits.extend(found)
        wanted = sorted({*hits, *(op.key for op in upserts)})
        self._load(wanted)
        self.terms.load(op.prepared for op in upserts)
        # every record of the persons found, in one go (each record is compared with them all)
        self._complete([p for k in wanted if (p := self.person.get(k)) is not None])
        self._compare_ahead(upserts)

    def _compare_ahead(self, upserts: Sequence[_Upsert]) -> None:
        """Compare each new record, in one vectorised pass for the batch, with the records
        :meth:`_place` will most likely score it against: every stored record of the persons it
        met when the batch was read, and the batch's other new records it shares a block with,
        with the stored records of the persons they met (placed before it, they join those, and
        it meets them). Record by record, building small tables and calling into numpy cost
        more than the comparisons themselves. A pair's levels depend on its two records only,
        so :meth:`_score` reads them here as long as the other record is the one compared; the
        pairs it finds no levels for here are compared there. A batch of one record (a record
        linked as it arrives) gains nothing from it: it is compared at its placement."""
        if len(upserts) < 2:
            return
        cap = self.settings.block_cap
        rows: dict[int, int] = {}  # id(prepared record) -> its row of the table
        records: list[PreparedRecord] = []

        def row(record: PreparedRecord) -> int:
            at = rows.get(id(record))
            if at is None:
                at = rows[id(record)] = len(records)
                records.append(record)
            return at

        # each person's stored records that can be compared, with their rows
        held: dict[str, tuple[list[Key], list[int]]] = {}

        def of_person(person: str) -> tuple[list[Key], list[int]]:
            found = held.get(person)
            if found is None:
                keys = [k for k in self.members.get(person, ()) if k in self.prepared]
                found = held[person] = (keys, [row(self.prepared[k]) for k in keys])
            return found

        # by position in the batch: the persons each new record met, and the new records that
        # met each person or are filed under each digest (positions ascending)
        met: list[set[str]] = []
        by_person: dict[str, list[int]] = {}
        by_digest: dict[str, list[int]] = {}
        oversize = self.memory.oversize
        for i, op in enumerate(upserts):
            found = self.found.get(id(op))
            persons = (
                set()
                if found is None
                else {p for c in found[1] if (p := self.person.get(c)) is not None}
            )
            met.append(persons)
            for person in persons:
                by_person.setdefault(person, []).append(i)
            for d in set(op.digests):
                if d not in oversize:  # (looked up through its refinements)
                    by_digest.setdefault(d, []).append(i)
        right: list[int] = []
        left: list[int] = []
        for i, op in enumerate(upserts):
            # only records placed before it can be in the persons it meets
            mates: set[int] = set()
            for d in set(op.digests):
                block = by_digest.get(d)
                if block is not None and len(block) <= cap:
                    mates.update(block[: bisect_left(block, i)])
            persons = met[i]
            for person in persons:
                block = by_person[person]
                mates.update(block[: bisect_left(block, i)])
            plan: dict[Key, int] = {}
            start = len(right)
            for person in persons:
                keys, at = of_person(person)
                plan.update(zip(keys, range(len(right), len(right) + len(keys)), strict=True))
                right.extend(at)
            for m in mates:
                mate = upserts[m]
                if mate.key[:2] != op.key[:2]:
                    plan[mate.key] = len(right)
                    right.append(row(mate.prepared))
            if plan:
                left.extend([row(op.prepared)] * (len(right) - start))
                self.ahead[id(op)] = plan
        if not left or len({f for r in records for f in r.forms}) >= FORM_CODES:
            # (a table of more form codes than it tells apart compares forms coarsely: each
            # record is then compared in its own small table, as before)
            self.ahead.clear()
            return
        self.ahead_records = records
        self.ahead_right = right
        self.ahead_levels = compare_pairs(
            self.settings.comparisons,
            RecordTable.of(records),
            np.array(left, dtype=np.intp),
            np.array(right, dtype=np.intp),
        ).levels

    def _fetch_blocks(self, digests: Sequence[str], limit: int) -> None:
        """Read the blocks of ``digests`` not yet known here, at most ``limit + 1`` rows each: a
        block with more is over the limit (remembered as such), one within it is complete."""
        memory = self.memory
        fresh = [d for d in digests if d not in memory.indexed and d not in memory.oversize]
        if not fresh:
            return
        rows: dict[str, list[Key]] = {}
        for d, s, c, v in _bounded_blocks(self.conn, fresh, limit + 1):
            rows.setdefault(str(d), []).append((str(s), str(c), str(v)))
        for d in fresh:
            found = rows.get(d, [])
            if len(found) > limit:
                memory.oversize.add(d)
                self.index.pop(d, None)
                continue
            # the records filed by this run are not written yet: the block is both
            self.index[d] = {*found, *self.filed.get(d, ())}
            memory.indexed.add(d)

    def _block(self, digest: str, limit: int) -> set[Key] | None:
        """The records filed under ``digest``, or None when they are more than ``limit``."""
        memory = self.memory
        if digest not in memory.indexed and digest not in memory.oversize:
            self._fetch_blocks([digest], limit)  # grew past the cap within this run
        if digest in memory.oversize:
            return None
        block = self.index.get(digest, set())
        if len(block) > limit:  # grew past the limit: looked up through refinements from now on
            memory.oversize.add(digest)
            memory.indexed.discard(digest)
            del self.index[digest]
            return None
        return block

    def _candidates(self, op: _Upsert) -> list[Key]:
        """The records ``op`` meets in the index (see the module text, step 2): by key, or by
        the key's refinements where its block is over the cap; at most ``max_candidates``, those
        found under the most keys first (and any sharing an identifier before them)."""
        cap = self.settings.block_cap
        hits: dict[Key, int] = {}

        def count(block: Iterable[Key]) -> None:
            for other in block:
                if other[:2] != op.key[:2] and other not in self.removed:
                    hits[other] = hits.get(other, 0) + 1

        for key, narrow in op.lookup.keys:
            block = self._block(key, cap)
            if block is not None:
                count(block)
                continue
            for d in narrow:
                count(self._block(d, cap) or ())
        first: set[Key] = set()
        for d in op.shared_digests:
            block = self._block(d, self.settings.max_block_size) or set()
            count(block)
            first.update(block)
        return rank_candidates(hits, self.settings.max_candidates, first)

    def _load(self, keys: Sequence[Key]) -> None:
        keys = [k for k in dict.fromkeys(keys) if k not in self.loaded]
        self.loaded.update(keys)
        known = self.r.known
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            unknown = []
            for key in chunk:
                held = known.get(key)
                if held is None:
                    unknown.append(key)
                else:
                    self.features[key], self.shared[key], self.prepared[key] = held
            rows = select_keys(self.conn, _features, _FEATURE_COLUMNS, _KEY_COLUMNS, unknown)
            self.r.vault.warm(row[3] for row in rows)
            for row in rows:
                key = (row[0], row[1], row[2])
                opened = self.r.open_linkable(dict(zip(_FEATURE_COLUMNS, row, strict=True)))
                if opened is not None:
                    record, shared = opened
                    self.features[key] = _features_of(record, shared)
                    self.shared[key] = shared
                    self.prepared[key] = prepare(record)
                    self.r.remember(key, self.features[key], shared, self.prepared[key])
            unplaced = [k for k in chunk if k not in self.person]
            links = select_keys(
                self.conn, _links, (*_KEY_COLUMNS, "person_id"), _KEY_COLUMNS, unplaced
            )
            for source_id, case_id, victim_id, person_id in links:
                self._set((source_id, case_id, victim_id), person_id)
            for key in unplaced:
                self.person.setdefault(key, None)

    def _set(self, key: Key, person: str | None) -> None:
        before = self.person.get(key)
        if before is not None:
            self.members.get(before, set()).discard(key)
        self.person[key] = person
        self.placed.add(key)
        if person is not None:
            self.members.setdefault(person, set()).add(key)
            known = self.case_links.get((key[0], key[1]))
            if known is not None:
                known.add(key)

    def _forget_persons(self) -> None:
        """After a merge: placements of records not loaded here changed in the store."""
        self.person.clear()
        self.members.clear()
        self.complete.clear()
        self.loaded.clear()

    def _complete(self, persons: Sequence[str]) -> None:
        """Load every record of these persons (and their fields)."""
        wanted = sorted(set(persons))
        missing = [p for p in wanted if p not in self.complete]
        rows = select_in(self.conn, _links, _KEY_COLUMNS, "person_id", missing)
        keys = [(str(a), str(b), str(c)) for a, b, c in rows]
        for p in wanted:
            if p in self.complete:
                keys.extend(sorted(self.members.get(p, ())))
        self._load(keys)
        self.complete.update(missing)

    def _prefetch_cases(self, cases: set[tuple[str, str]]) -> None:
        """The stored links of every case the run touches, in one query per source."""
        by_source: dict[str, list[str]] = {}
        for source_id, case_id in sorted(cases):
            by_source.setdefault(source_id, []).append(case_id)
            self.case_links.setdefault((source_id, case_id), set())
        keys: list[Key] = []
        for source_id, case_ids in by_source.items():
            rows = select_in(
                self.conn,
                _links,
                ("case_id", "victim_id"),
                "case_id",
                case_ids,
                where={"source_id": source_id},
            )
            for case_id, victim_id in rows:
                key = (source_id, str(case_id), str(victim_id))
                self.case_links[(source_id, key[1])].add(key)
                keys.append(key)
        self._load(keys)

    def _linked_in_case(self, source_id: str, case_id: str) -> list[Key]:
        stored = self.case_links.get((source_id, case_id))
        if stored is None:  # not prefetched: read it, and keep it current from now on
            stored = self.case_links[(source_id, case_id)] = set(
                _case_links(self.conn, source_id, case_id)
            )
            stored.update(
                k for k in self.placed if k[:2] == (source_id, case_id) and self.person.get(k)
            )
        self._load(sorted(stored))
        return sorted(k for k in stored if self.person.get(k) is not None)

    def _upsert(self, op: _Upsert) -> None:
        key = op.key
        self._load([key])
        current = self.person.get(key)
        if current is not None:
            known = self.features.get(key)
            if known == _features_of(op.record, op.shared):
                return  # the same record again (a new case version that left it unchanged)
            if known is None:
                # linked, but not in the index (it was emptied): file it again, decide nothing
                self._file(op)
                return
            self._remove(key, UnlinkReason.SUPERSEDED)
        self._place(op)

    def _file(self, op: _Upsert) -> None:
        key = op.key
        # a record is filed only when it has no rows (new, or removed first): written in bulk
        # at the end of the run
        self.block_rows.extend(
            {"block_key": d, "source_id": key[0], "case_id": key[1], "victim_id": key[2]}
            for d in sorted(set(op.digests))
        )
        self.feature_rows.append(self.r.seal_features(self.conn, key, op.record, op.shared))
        self.shared[key] = op.shared
        for d in op.digests:
            self.filed.setdefault(d, set()).add(key)
            if d in self.memory.indexed:  # a block read whole: it stays whole
                self.index[d].add(key)
        if key not in self.prepared:
            self.terms.move(op.prepared, +1)
        self.prepared[key] = op.prepared
        self.features[key] = _features_of(op.record, op.shared)
        self.removed.discard(key)
        self.changes += 1
        self.r.remember(key, self.features[key], op.shared, op.prepared)

    def _place(self, op: _Upsert) -> None:
        key = op.key
        label = self.r.seed.pop(key, None)
        if label is not None:
            self._place_seeded(op, label)
            return
        # co-victims of one case are different persons: not found
        held = self.found.pop(id(op), None)
        found = held[1] if held is not None and held[0] == self.changes else self._candidates(op)
        self._load(found)
        candidates = sorted(
            other
            for other in found
            if self.person.get(other) is not None and other in self.prepared
        )
        # every record of each candidate person is compared, not only those sharing a key:
        # a person is joined only if its records do not say "someone else" as often as
        # "the same" (the batch clustering's conflict rule)
        blocked_persons = sorted({p for c in candidates if (p := self.person.get(c)) is not None})
        self._complete(blocked_persons)
        # a person holding a record of a source this one may not be linked with is out of reach
        # (both agreements must allow it): it is counted apart, whatever the scores say
        reachable = [
            p
            for p in blocked_persons
            if all(self._may_link(key[0], m[0]) for m in self.members.get(p, ()))
        ]
        apart = {k for k, same in self._verdicts(key).items() if not same}
        seeded = self._seeded(op, reachable, apart)
        if seeded:
            self._decide(op, seeded, sorted(seeded), [], LinkDecision.SHARED_IDENTIFIER)
            return
        pool = sorted(
            {
                other
                for p in reachable
                for other in self.members.get(p, ())
                if other[:2] != key[:2]
                and other not in self.removed
                and other not in apart
                and other in self.prepared
            }
        )
        scored = self._score(op.prepared, pool, self.ahead.pop(id(op), None))
        by_person: dict[str, list[Scored]] = {}
        for pair in scored:
            owner = self.person[pair.key]
            assert owner is not None
            by_person.setdefault(owner, []).append(pair)
        placed = choose(by_person, self.settings)
        self._decide(
            op,
            by_person,
            placed.joins,
            placed.reviews,
            LinkDecision.JOINED,
            scored,
            lean=placed.lean,
        )

    def _place_seeded(self, op: _Upsert, label: str) -> None:
        """Place a seeded record in its label's person (see :meth:`Resolver.seed_with`)."""
        person = self.r.seeded.get(label)
        decision = LinkDecision.JOINED
        if person is None:
            person = self.r.seeded[label] = self.r.person_ids()
            decision = LinkDecision.NEW_PERSON
            self.complete.add(person)
        self._file(op)
        self._set(op.key, person)
        self._emit(
            RecordLinked(
                event_id=new_event_id(),
                victim=_ref(op.key),
                person_id=person,
                decision=decision,
                model_version=self.r.model_version,
                evidence=[],
                linked_at_ms=self.now_ms,
            )
        )

    def _decide(
        self,
        op: _Upsert,
        by_person: Mapping[str, Sequence[Scored]],
        joins: Sequence[str],
        reviews: Sequence[str],
        join_decision: str,
        scored: Sequence[Scored] = (),
        lean: str | None = None,
    ) -> None:
        """Place the record: in the one person it joins; in the best of several (a bridge) or in
        ``lean`` provisionally, with a review; else in a person of its own (with a review when
        ``reviews`` names any)."""
        key = op.key
        model = self.r.model_version
        if len(joins) == 1:
            person = joins[0]
            decision = join_decision
            evidence: Sequence[Scored] = by_person[person]
        elif len(joins) > 1:
            # a bridge between persons established apart: it merges none of them, but each
            # scored at or above the upper threshold, so it is most likely one of them (on the
            # demo 87 % truly were): it joins the best provisionally — counted there, not as a
            # new person — and an operator's review decides
            # ties go to the person whose best record has the smallest key (data, not ids)
            person = min(
                joins,
                key=lambda p: (
                    -max(e.probability for e in by_person[p]),
                    min(e.other.key() for e in by_person[p]),
                ),
            )
            decision = LinkDecision.PROVISIONAL
            evidence = by_person[person]
        elif lean is not None:
            # no person took the record, but one is more likely than a new person: it counts
            # there until the review is resolved
            person = lean
            decision = LinkDecision.PROVISIONAL
            evidence = by_person[person]
        else:
            person = self.r.person_ids()
            decision = LinkDecision.PENDING_REVIEW if joins or reviews else LinkDecision.NEW_PERSON
            evidence = scored or [e for p in joins for e in by_person[p]]
            self.complete.add(person)
        self._file(op)
        self._set(key, person)
        self._emit(
            RecordLinked(
                event_id=new_event_id(),
                victim=_ref(key),
                person_id=person,
                decision=decision,
                model_version=model,
                evidence=_kept(evidence),
                linked_at_ms=self.now_ms,
            )
        )
        if decision in (LinkDecision.PENDING_REVIEW, LinkDecision.PROVISIONAL):
            self._emit(
                LinkReviewOpened(
                    event_id=new_event_id(),
                    review_id=new_event_id(),
                    victim=_ref(key),
                    person_id=person,
                    candidates={p: _kept(by_person[p]) for p in [*joins, *reviews]},
                    model_version=model,
                    opened_at_ms=self.now_ms,
                )
            )

    def _may_link(self, source: str, other: str) -> bool:
        policy = self.r.policy
        if policy is None or source == other:
            return True
        if self._may_source != source:
            self._may, self._may_source = {}, source
        known = self._may.get(other)
        if known is None:
            known = self._may[other] = policy.may_link(source, other, self.now_ms)
        return known

    def _share(self, a: Key, b: Key) -> bool:
        """Whether two records hold the same shared identifier under a scheme both declare."""
        policy = self.r.policy
        if policy is None:
            return False
        common = {s for s, _ in set(self.shared.get(a, ())) & set(self.shared.get(b, ()))}
        return bool(common & policy.shared_schemes(a[0], b[0], self.now_ms))

    def _seeded(
        self, op: _Upsert, persons: Sequence[str], apart: set[Key]
    ) -> dict[str, list[PairEvidence]]:
        """The persons holding a record with one of ``op``'s shared identifiers, under a scheme
        both sources' agreements declare: linked before any scoring."""
        policy = self.r.policy
        if not op.shared or policy is None:
            return {}
        mine = set(op.shared)
        out: dict[str, list[PairEvidence]] = {}
        for person in persons:
            for other in sorted(self.members.get(person, ())):
                if other[:2] == op.key[:2] or other in apart or other in self.removed:
                    continue
                common = {s for s, v in mine & set(self.shared.get(other, ()))}
                schemes = common & policy.shared_schemes(op.key[0], other[0], self.now_ms)
                if schemes:
                    levels = {f"shared:{s}": 1 for s in sorted(schemes)}
                    out.setdefault(person, []).append(PairEvidence(_ref(other), 1.0, 0.0, levels))
        return out

    def _score(
        self,
        record: PreparedRecord,
        candidates: Sequence[Key],
        ahead: Mapping[Key, int] | None = None,
    ) -> list[_Pair]:
        """``record`` against each candidate, best first: the levels compared ahead
        (:meth:`_compare_ahead`), the others in one vectorised pass; the weights at this
        moment's prior and name frequencies (each pair's evidence is made only if a decision
        keeps it)."""
        if not candidates:
            return []
        self._size_prior()
        comparisons = self.settings.comparisons
        n = len(candidates)
        rows = np.full(n, -1, dtype=np.intp)
        missing = []
        compared, right = self.ahead_records, self.ahead_right
        for i, other in enumerate(candidates):
            at = ahead.get(other) if ahead else None
            if at is not None and compared[right[at]] is self.prepared[other]:
                rows[i] = at
            else:
                missing.append(i)
        if missing:
            levels = np.zeros((n, len(comparisons)), dtype=np.int8)
            levels[rows >= 0] = self.ahead_levels[rows[rows >= 0]]
            table = RecordTable.of([record, *(self.prepared[candidates[i]] for i in missing)])
            m = len(missing)
            levels[missing] = compare_pairs(
                comparisons, table, np.zeros(m, dtype=np.intp), np.arange(1, m + 1, dtype=np.intp)
            ).levels
        else:
            levels = self.ahead_levels[rows]
        adjustment = self._adjustments(record, candidates, levels).sum(axis=1)
        weights = self.linker.model.match_weights(levels, adjustment)
        names = tuple(c.name for c in comparisons)
        out = [
            _Pair(other, round(p, 9), round(w, 6), names, row)
            for other, p, w, row in zip(
                candidates,
                probability(weights).tolist(),
                weights.tolist(),
                levels.tolist(),
                strict=True,
            )
        ]
        out.sort(key=lambda e: (-e.probability, e.key))
        return out

    def _adjustments(
        self, record: PreparedRecord, candidates: Sequence[Key], levels: npt.NDArray[np.int8]
    ) -> npt.NDArray[np.float64]:
        """Per pair and comparison, the bits a name's frequency adds to an exact agreement —
        ``record``'s value's, within its name group for a candidate of the same group — as
        :meth:`Linker.score_table` adds them with ``record`` on the left, from the digests kept
        with the record (no keyed hash made again)."""
        out = np.zeros(levels.shape, dtype=np.float64)
        same: npt.NDArray[np.bool_] | None = None
        for c, column in self.tf_columns:
            exact = levels[:, c] == 1
            if not exact.any():
                continue
            overall, within = self.terms.adjustments(record, column)
            if within is None:
                out[exact, c] = overall
                continue
            if same is None:
                group = self.terms.of(record).group
                same = np.fromiter(
                    (
                        group_of(r.nationality, r.sex) == group
                        for r in (self.prepared[k] for k in candidates)
                    ),
                    np.bool_,
                    len(candidates),
                )
            out[exact, c] = np.where(same[exact], within, overall)
        return out

    def _size_prior(self) -> None:
        """Scale the model's prior to the records now linked (:meth:`MatchModel.among`)."""
        n = self.terms.records()
        if n != self._sized_at:
            self._sized_at = n
            self.linker.model = self.r.linker.model.among(n)

    # -- operators' decisions -------------------------------------------------------------

    def _verdicts(self, key: Key) -> dict[Key, bool]:
        """The operators' verdicts on pairs with ``key``: other record -> same person."""
        memory = self.memory
        if memory.no_verdicts is None:
            memory.no_verdicts = (
                self.conn.execute(select(_overrides.c.record).limit(1)).first() is None
            )
        if memory.no_verdicts:
            return {}
        rows = self.conn.execute(
            select(_overrides.c.other, _overrides.c.same).where(
                _overrides.c.record == victim_text(_ref(key))
            )
        ).all()
        out: dict[Key, bool] = {}
        for other, same in rows:
            s, c, v = json.loads(other)
            out[(s, c, v)] = bool(same)
        return out

    def _override(self, ev: LinkOverridden) -> None:
        """Merge the persons an operator judged the same (the oldest id survives), or split a
        person whose records an operator judged different."""
        self._flush()
        self.memory.no_verdicts = False  # this one is in the projection now
        key = ev.victim.key()
        others = [o.key() for o in ev.others if o.key() != key]
        self._load([key, *others])
        mine = self.person.get(key)
        if mine is None:
            return  # the record left meanwhile: nothing to move
        if not ev.same:
            if any(self.person.get(o) == mine for o in others):
                self._reresolve(mine, reason=f"operator: {ev.review_id or ev.event_id}")
            return
        # never against the agreements or within one case, whoever asks
        others = [o for o in others if o[:2] != key[:2] and self._may_link(key[0], o[0])]
        chosen = sorted({p for o in others if (p := self.person.get(o)) is not None})
        if chosen and mine not in chosen and self._provisional(ev.review_id, mine):
            # the record was placed provisionally in a candidate the operator did not choose:
            # it moves to the chosen person (the provisional one keeps its other records)
            self._move(key, mine, chosen[0], f"operator: {ev.review_id}")
            mine = chosen[0]
        persons = sorted({mine, *chosen})
        if len(persons) < 2:
            return
        created = dict(
            self.conn.execute(
                select(_persons.c.person_id, _persons.c.created_seq).where(
                    _persons.c.person_id.in_(persons)
                )
            ).all()
        )
        survivor = min(persons, key=lambda p: (created.get(p, 0), p))
        absorbed = [p for p in persons if p != survivor]
        self._emit(
            PersonsMerged(
                event_id=new_event_id(),
                person_id=survivor,
                absorbed=absorbed,
                reason=f"operator: {ev.review_id or ev.event_id}",
                evidence=[],
                merged_at_ms=self.now_ms,
            )
        )
        self._flush()
        self._forget_persons()

    def _provisional(self, review_id: str | None, person: str) -> bool:
        """Whether the review placed its record provisionally in ``person`` (a candidate)."""
        if review_id is None:
            return False
        row = self.conn.execute(
            select(_reviews.c.person_id, _reviews.c.candidates).where(
                _reviews.c.review_id == review_id
            )
        ).first()
        return row is not None and row[0] == person and person in json.loads(row[1])

    def _move(self, key: Key, source: str, target: str, reason: str) -> None:
        """Take ``key`` out of ``source`` and put it in ``target`` (an operator's decision)."""
        self._set(key, None)
        self._emit(
            RecordUnlinked(
                event_id=new_event_id(),
                victim=_ref(key),
                person_id=source,
                reason="operator",
                unlinked_at_ms=self.now_ms,
            )
        )
        self._set(key, target)
        self._emit(
            RecordLinked(
                event_id=new_event_id(),
                victim=_ref(key),
                person_id=target,
                decision=LinkDecision.OPERATOR,
                model_version=self.r.model_version,
                evidence=[],
                linked_at_ms=self.now_ms,
            )
        )
        self._flush()
        self._reresolve(source, reason=reason)

    # -- a record leaves its person -------------------------------------------------------

    def _remove(self, key: Key, reason: str) -> None:
        self._load([key])
        person = self.person.get(key)
        self.conn.execute(delete(_blocks).where(_key_is(_blocks, key)))
        self.conn.execute(delete(_features).where(_key_is(_features, key)))
        self.block_rows = [r for r in self.block_rows if _row_key(r) != key]
        for filed in self.filed.values():
            filed.discard(key)
        self.feature_rows = [r for r in self.feature_rows if _row_key(r) != key]
        self.removed.add(key)
        self.changes += 1
        self.r.forget(key)
        self.features.pop(key, None)
        shared = self.shared.pop(key, ())
        gone = self.prepared.pop(key, None)
        if gone is not None:
            self.terms.move(gone, -1)
        self._unindex(key, gone, shared)
        if person is None:
            return
        self._set(key, None)
        self._emit(
            RecordUnlinked(
                event_id=new_event_id(),
                victim=_ref(key),
                person_id=person,
                reason=reason,
                unlinked_at_ms=self.now_ms,
            )
        )
        self._flush()
        self._reresolve(person)

    def _unindex(self, key: Key, prepared: PreparedRecord | None, shared: Shared) -> None:
        """Take ``key`` out of the remembered index (its rows are deleted)."""
        memory = self.memory
        if prepared is None:  # its digests cannot be told: forget the index, not keep a wrong one
            memory.index.clear()
            memory.indexed.clear()
            memory.oversize.clear()
            return
        digests = [k.digest for k in self.r.linker.candidates_keys(prepared, self.linker.hasher)]
        digests += [self.r.shared_digest(s, v, self.linker.hasher) for s, v in shared]
        for d in digests:
            block = memory.index.get(d)
            if block is not None:
                block.discard(key)
            memory.oversize.discard(d)  # it may be under the limit again: counted afresh

    def _reresolve(self, person: str, reason: str = "re-resolved after a record left") -> None:
        """Split ``person`` if its remaining records no longer hang together."""
        rows = self.conn.execute(
            select(_links.c.source_id, _links.c.case_id, _links.c.victim_id, _links.c.linked_seq)
            .where(_links.c.person_id == person)
            .order_by(_links.c.linked_seq, _links.c.source_id, _links.c.case_id, _links.c.victim_id)
        ).all()
        members: list[Key] = [(s, c, v) for s, c, v, _ in rows]
        if len(members) < 2:
            return
        self._load(members)
        parts = self._parts([k for k in members if k in self.prepared])
        if len(parts) < 2:
            return
        # the part holding the person's first record keeps the id; records being erased (their
        # fields no longer open) are not moved: their own removal follows
        keep = next((i for i, part in enumerate(parts) if members[0] in part), 0)
        for i, part in enumerate(parts):
            if i == keep:
                continue
            new = self.r.person_ids()
            moved = sorted(part)
            for k in moved:
                self._set(k, new)
            self.complete.add(new)
            self._emit(
                PersonSplit(
                    event_id=new_event_id(),
                    person_id=person,
                    new_person_id=new,
                    moved=[_ref(k) for k in moved],
                    reason=reason,
                    split_at_ms=self.now_ms,
                )
            )
        self._flush()

    def _parts(self, members: Sequence[Key]) -> list[set[Key]]:
        """The records joined by pairs at or above the upper threshold (connected parts), in the
        order of their first member."""
        n = len(members)
        parent = list(range(n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        at = {k: i for i, k in enumerate(members)}
        verdicts = {(k, o): same for k in members for o, same in self._verdicts(k).items()}
        if n >= 2:
            table = RecordTable.of([self.prepared[k] for k in members])
            left, right = np.triu_indices(n, k=1)
            self.terms.load(self.prepared[k] for k in members)
            self._size_prior()
            scored = self.linker.score_table(table, left.astype(np.intp), right.astype(np.intp))
            for a, b, p in zip(
                left.tolist(), right.tolist(), scored.probability.tolist(), strict=True
            ):
                ka, kb = members[a], members[b]
                verdict = verdicts.get((ka, kb))
                if verdict is None:
                    joined = self._may_link(ka[0], kb[0]) and (
                        p >= self.settings.upper or self._share(ka, kb)
                    )
                else:
                    joined = verdict
                if joined and members[a][:2] != members[b][:2]:
                    parent[find(a)] = find(b)
        # a pair an operator judged different that other records still hold together: the
        # later of the two leaves on its own
        for (k, o), same in sorted(verdicts.items()):
            if not same and o in at and find(at[k]) == find(at[o]):
                later = max(at[k], at[o])
                for i in range(n):  # re-root the others so that ``later`` stands alone
                    parent[i] = find(i)
                root = parent[later]
                others = [i for i in range(n) if parent[i] == root and i != later]
                if others:
                    for i in others:
                        parent[i] = others[0]
                    parent[later] = later
        groups: dict[int, set[Key]] = {}
        for i, k in enumerate(members):  # dicts keep insertion order: by first member
            groups.setdefault(find(i), set()).add(k)
        return list(groups.values())


def _row_key(row: Mapping[str, str]) -> Key:
    return (row["source_id"], row["case_id"], row["victim_id"])


class Scored(Protocol):
    """A scored pair as :func:`choose` reads it: a :class:`PairEvidence`, or the resolver's
    lighter pair that makes one only when a decision keeps it as evidence."""

    @property
    def other(self) -> VictimRef: ...

    @property
    def probability(self) -> float: ...

    @property
    def match_weight(self) -> float: ...


class _Pair(NamedTuple):
    """A pair scored for a decision. Most pairs only compete (:func:`choose`); the few a
    decision keeps become :class:`PairEvidence` (:meth:`evidence`), so the levels of the
    others are never put in a mapping."""

    key: Key  # the other record
    probability: float
    match_weight: float
    names: tuple[str, ...]  # the comparisons, in the order of ``row``
    row: Sequence[int]  # each comparison's level

    @property
    def other(self) -> VictimRef:
        return _ref(self.key)

    @property
    def levels(self) -> dict[str, int]:
        """Each comparison's level by name (as in :class:`PairEvidence`)."""
        return dict(zip(self.names, self.row, strict=True))

    def evidence(self) -> PairEvidence:
        return PairEvidence(
            other=_ref(self.key),
            probability=self.probability,
            match_weight=self.match_weight,
            levels=self.levels,
        )


@dataclass(frozen=True)
class Placement:
    """Where a new record goes among the persons it met: the persons it joins (one; several is
    a bridge), the persons a review names, and the person it counts in while that review is
    open (None: a person of its own)."""

    joins: list[str]
    reviews: list[str]
    lean: str | None = None


def choose(by_person: Mapping[str, Sequence[Scored]], settings: LinkageSettings) -> Placement:
    """Place a record among the persons it met (``by_person``: each person's scored pairs with
    it), as the module text's step 4 says.

    A person's pairs are read as a whole: it is *conflicted* when its records that say "someone
    else" (below ``conflict``) are at least as many as those that say "more likely the same" (at
    or above ``lower``) and the strongest "someone else" outweighs the strongest "the same" (in
    bits; a repeat victim's record of another year does not bar a record with the same name and
    date of birth). Several persons each joinable (a pair at or above ``upper``, not
    conflicted): a bridge. Otherwise the persons compete for the record — it is at most one of
    them — and a person's *share* is its odds (of its best pair) over one (a new person) plus
    the odds of every person met: with more records stored a record meets more namesakes, and
    each becomes less likely.
    """
    upper, lower, conflict = settings.upper, settings.lower, settings.conflict
    joinable: list[str] = []
    eligible: list[str] = []
    conflicted: list[str] = []  # conflicted, with a pair at or above the upper threshold
    odds: dict[str, float] = {}
    for person_id, pairs in sorted(by_person.items()):
        best = max(e.probability for e in pairs)
        odds[person_id] = _odds(best)
        agree = sum(1 for e in pairs if e.probability >= lower)
        against = [e.match_weight for e in pairs if e.probability < conflict]
        strongest = max(e.match_weight for e in pairs)
        if agree and len(against) >= agree and strongest < -min(against):
            if best >= upper:
                conflicted.append(person_id)
        elif agree:
            eligible.append(person_id)
            if best >= upper:
                joinable.append(person_id)
    if len(joinable) > 1:
        return Placement(joinable, [])  # a bridge: provisional in the best, and a review
    total = 1.0 + sum(odds.values())
    share = {p: o / total for p, o in odds.items()}
    # ties go to the person whose best record has the smallest key (data, not ids)
    best_person = min(
        eligible,
        key=lambda p: (-share[p], min(e.other.key() for e in by_person[p])),
        default=None,
    )
    if best_person is not None and share[best_person] >= settings.join_share:
        return Placement([best_person], [])
    reviews = sorted(p for p in by_person if share[p] >= settings.review_share or p in conflicted)
    # while the review is open the record counts in the person it more likely is than a new
    # one (its best pair at or above ``lower``), as a bridging record does
    lean = best_person if best_person in reviews else None
    return Placement([], reviews, lean)


def _odds(probability: float) -> float:
    """``p / (1 - p)``, finite."""
    p = min(max(probability, 0.0), 1.0 - 1e-12)
    return p / (1.0 - p)


def _kept(pairs: Sequence[Scored]) -> list[PairEvidence]:
    """A decision's evidence: its best pairs (at most a few)."""
    return [p.evidence() if isinstance(p, _Pair) else _as_evidence(p) for p in pairs[:_EVIDENCE]]


def _as_evidence(pair: Scored) -> PairEvidence:
    if not isinstance(pair, PairEvidence):
        raise TypeError(f"not a scored pair: {type(pair).__name__}")
    return pair
