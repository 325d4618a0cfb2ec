"""The operator's side of linkage: the review queue, decisions, and explanations.

Linkage opens a review when it will not decide alone (``LinkReviewOpened``). An operator lists
the queue, looks at a review — the comparison levels and weights of each candidate pair
(:func:`review_detail`) and, because the operator is the trust's reviewer, the two records'
identifying values side by side (:func:`side_by_side`), every such view recorded
(``IdentifiersViewed``) — and decides (:func:`resolve`). A decision is an event
(``LinkOverridden``) that overrides the model for those pairs from then on; linkage follows it
with the merge or split it implies, and every count follows linkage. An operator may also judge
two records outside any review (:func:`decide_pair`), e.g. to undo a wrong merge.

Explanations (:func:`review_detail`, :func:`explain_pair`, :func:`person_history`) give ids,
levels and weights, never values. Only :func:`side_by_side` returns values, and only after it has
recorded the view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from trust.linkage.errors import LinkageError, LinkageReason
from trust.store.events import (
    Event,
    IdentifiersViewed,
    LinkOverridden,
    LinkReviewOpened,
    PairEvidence,
    PersonsMerged,
    PersonSplit,
    RecordLinked,
    RecordUnlinked,
    VictimRef,
    new_event_id,
)
from trust.store.eventstore import EventStore
from trust.store.projections import victim_text
from trust.store.tables import link_features as _features
from trust.store.tables import proj_link_overrides as _overrides
from trust.store.tables import proj_link_reviews as _reviews
from trust.store.tables import proj_linked_persons as _persons
from trust.store.tables import proj_person_links as _links

if TYPE_CHECKING:  # for annotations only: callers pass the model and the resolver in
    from trust.linkage.linker import PairScore
    from trust.linkage.model import MatchModel
    from trust.linkage.record import LinkRecord
    from trust.linkage.resolver import Resolver

OPERATOR = "trust-operator"
"""The store consumer name of what operators record."""

MayLink = Callable[[str, str], bool]
"""Whether records of two sources may be linked (the agreements in force: ``Policy.may_link``)."""

_PAGE = 5000  # events per read when a history is gathered

_VALUE_FIELDS = (
    "given_name",
    "surname",
    "date_of_birth",
    "sex",
    "nationality",
    "document_number",
)
"""What :func:`side_by_side` shows of each record."""


def record_text(v: VictimRef) -> str:
    """How explanations name a record: ``source/case/victim`` (ids only)."""
    return "/".join(v.key())


# -- the queue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    """One review of the queue: the record, its own (pending) person, each candidate person's
    best probability, and its status (``open``, ``accepted``, ``rejected``, ``withdrawn``)."""

    review_id: str
    victim: VictimRef
    person_id: str
    candidates: dict[str, float]
    status: str
    opened_seq: int


def _review_of(row: Any) -> Review:
    return Review(
        review_id=row.review_id,
        victim=VictimRef(row.source_id, row.case_id, row.victim_id),
        person_id=row.person_id,
        candidates={k: float(v) for k, v in json.loads(row.candidates).items()},
        status=row.status,
        opened_seq=int(row.opened_seq),
    )


def reviews(store: EventStore, status: str | None = "open") -> list[Review]:
    """The reviews with ``status`` (all with None), oldest first."""
    stmt = select(_reviews).order_by(_reviews.c.opened_seq)
    if status is not None:
        stmt = stmt.where(_reviews.c.status == status)
    with store.engine.connect() as conn:
        return [_review_of(r) for r in conn.execute(stmt)]


def open_reviews(store: EventStore) -> list[Review]:
    return reviews(store, "open")


def review(store: EventStore, review_id: str) -> Review:
    """Raises:
    LinkageError: ``unknown_review``."""
    with store.engine.connect() as conn:
        row = conn.execute(select(_reviews).where(_reviews.c.review_id == review_id)).first()
    if row is None:
        raise LinkageError(LinkageReason.UNKNOWN_REVIEW, "no review has this id")
    return _review_of(row)


def _opened(store: EventStore, r: Review) -> LinkReviewOpened:
    """The event that opened ``r`` (read at its own seq, not by scanning the store)."""
    for _, ev in store.read_types(("LinkReviewOpened",), r.opened_seq - 1, r.opened_seq, 1):
        if isinstance(ev, LinkReviewOpened) and ev.review_id == r.review_id:
            return ev
    raise LinkageError(LinkageReason.UNKNOWN_REVIEW, "the review's event is not in the store")


def review_evidence(store: EventStore, review_id: str) -> dict[str, list[PairEvidence]]:
    """Per candidate person (as when the review opened), the pairs that scored, best first.

    Raises:
        LinkageError: ``unknown_review``.
    """
    return _opened(store, review(store, review_id)).candidates


# -- persons and records now -----------------------------------------------------------------


def current_person(store: EventStore, person_id: str) -> str:
    """The person ``person_id`` is now (itself, or the survivor it was merged into).

    Raises:
        LinkageError: ``unknown_person``.
    """
    with store.engine.connect() as conn:
        row = conn.execute(
            select(_persons.c.merged_into).where(_persons.c.person_id == person_id)
        ).first()
    if row is None:
        raise LinkageError(LinkageReason.UNKNOWN_PERSON, "no person has this id")
    return str(row[0]) if row[0] else person_id


def person_records(store: EventStore, person_id: str) -> list[VictimRef]:
    """The victim records of a person now (following a merge to its survivor).

    Raises:
        LinkageError: ``unknown_person``.
    """
    person = current_person(store, person_id)
    with store.engine.connect() as conn:
        return _records_of(conn, person)


def _records_of(conn: Connection, person_id: str) -> list[VictimRef]:
    rows = conn.execute(
        select(_links.c.source_id, _links.c.case_id, _links.c.victim_id)
        .where(_links.c.person_id == person_id)
        .order_by(_links.c.linked_seq, _links.c.source_id, _links.c.case_id, _links.c.victim_id)
    ).all()
    return [VictimRef(s, c, v) for s, c, v in rows]


def person_of(store: EventStore, victim: VictimRef) -> str | None:
    """The person a victim record is in now (None: it is not linked)."""
    c = _links.c
    with store.engine.connect() as conn:
        found = conn.execute(
            select(c.person_id).where(
                c.source_id == victim.source_id,
                c.case_id == victim.case_id,
                c.victim_id == victim.victim_id,
            )
        ).scalar()
    return None if found is None else str(found)


def pair_verdict(store: EventStore, a: VictimRef, b: VictimRef) -> bool | None:
    """The operators' latest verdict on the pair (True: same person), None if there is none."""
    with store.engine.connect() as conn:
        same = conn.execute(
            select(_overrides.c.same).where(
                _overrides.c.record == victim_text(a), _overrides.c.other == victim_text(b)
            )
        ).scalar()
    return None if same is None else bool(same)


def _refuse_join(groups: Sequence[Sequence[VictimRef]], may_link: MayLink | None) -> None:
    """Raise ``bad_mode`` unless these groups of records (persons) may become one person: no
    two victims of one case, and (given ``may_link``) no two sources whose agreements forbid
    linking their records."""
    if _co_victims(groups):
        raise LinkageError(
            LinkageReason.BAD_MODE,
            "the persons to join hold victims of one case: victims of one case are different "
            "persons",
        )
    if may_link is None:
        return
    sources = [sorted({v.source_id for v in g}) for g in groups]
    for i, mine in enumerate(sources):
        for theirs in sources[i + 1 :]:
            if any(not may_link(a, b) for a in mine for b in theirs if a != b):
                raise LinkageError(
                    LinkageReason.BAD_MODE,
                    "the sources' agreements do not allow linking these persons' records",
                )


def _co_victims(groups: Sequence[Sequence[VictimRef]]) -> bool:
    """Whether records of two different groups are victims of one case (so the groups can never
    be one person)."""
    seen: dict[tuple[str, str], int] = {}
    for i, group in enumerate(groups):
        for v in group:
            if seen.setdefault(v.key()[:2], i) != i:
                return True
    return False


# -- decisions -------------------------------------------------------------------------------


def resolve(
    store: EventStore,
    review_id: str,
    *,
    same: bool,
    operator: str,
    persons: Sequence[str] = (),
    may_link: MayLink | None = None,
) -> LinkOverridden:
    """Record an operator's decision on an open review.

    ``same``: the record is the same person as ``persons`` (default: the best candidate) — their
    persons are merged, the oldest id surviving. Not ``same``: the record is none of ``persons``
    (default: every candidate) — the model never joins those pairs again. Candidates are named
    as the review names them (a candidate merged since stands for its survivor).

    Raises:
        LinkageError: ``unknown_review``; ``review_closed``; ``unknown_person`` for a person that
            is not a candidate of this review, or (to join) a candidate that holds no record any
            more; ``bad_mode`` to join persons that hold victims of one case, or records of
            sources that may not be linked (``may_link``).
    """
    r = review(store, review_id)
    if r.status != "open":
        raise LinkageError(LinkageReason.REVIEW_CLOSED, f"the review is {r.status}")
    chosen = list(dict.fromkeys(persons))
    if not chosen:
        ranked = sorted(r.candidates.items(), key=lambda kv: (-kv[1], kv[0]))
        chosen = [ranked[0][0]] if same else [p for p, _ in ranked]
    unknown = [p for p in chosen if p not in r.candidates]
    if unknown:
        raise LinkageError(LinkageReason.UNKNOWN_PERSON, "not a candidate of this review")
    mine = person_of(store, r.victim)
    with store.engine.connect() as conn:
        own = _records_of(conn, mine) if mine is not None else [r.victim]
    groups: dict[str, list[VictimRef]] = {}  # the chosen persons now, and their records
    for p in chosen:
        now = current_person(store, p)
        records = person_records(store, now)
        if same and not records:
            raise LinkageError(
                LinkageReason.UNKNOWN_PERSON, "a chosen candidate holds no record any more"
            )
        groups[now] = [v for v in records if not same or v not in own]
    others = [v for records in groups.values() for v in records if v != r.victim]
    if same:
        _refuse_join([own, *groups.values()], may_link)
    decision = LinkOverridden(
        event_id=new_event_id(),
        victim=r.victim,
        others=others,
        same=same,
        review_id=review_id,
        operator=operator,
        decided_at_ms=int(time.time() * 1000),
    )
    store.append([decision], None, OPERATOR)
    return decision


def decide_pair(
    store: EventStore,
    a: VictimRef,
    b: VictimRef,
    *,
    same: bool,
    operator: str,
    may_link: MayLink | None = None,
) -> LinkOverridden:
    """Record an operator's verdict on two records outside any review (e.g. to undo a wrong
    merge: ``same=False`` splits them apart; ``same=True`` merges their persons).

    Raises:
        LinkageError: ``unknown_record`` if either record is not linked; ``bad_mode`` for the same
            record twice, two victims of one case, or to join persons that hold victims of one
            case or records of sources that may not be linked (``may_link``).
    """
    if a == b:
        raise LinkageError(LinkageReason.BAD_MODE, "give two different records")
    persons = []
    for v in (a, b):
        p = person_of(store, v)
        if p is None:
            raise LinkageError(LinkageReason.UNKNOWN_RECORD, "the record is not linked")
        persons.append(p)
    if a.key()[:2] == b.key()[:2]:
        raise LinkageError(
            LinkageReason.BAD_MODE,
            "the records are victims of one case: different persons by construction",
        )
    if same and persons[0] != persons[1]:
        with store.engine.connect() as conn:
            mine, theirs = _records_of(conn, persons[0]), _records_of(conn, persons[1])
        _refuse_join([mine, theirs], may_link)
    decision = LinkOverridden(
        event_id=new_event_id(),
        victim=a,
        others=[b],
        same=same,
        review_id=None,
        operator=operator,
        decided_at_ms=int(time.time() * 1000),
    )
    store.append([decision], None, OPERATOR)
    return decision


# -- explanations: levels and weights, never values ------------------------------------------


@dataclass(frozen=True)
class LevelTerm:
    """One comparison's level in a pair, named by the model, and the bits it adds (None when
    the model has no such comparison or level: the pair was scored under other settings)."""

    comparison: str
    index: int
    level: str
    weight: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "comparison": self.comparison,
            "level": self.level,
            "index": self.index,
            "weight": None if self.weight is None else round(self.weight, 4),
        }


def level_terms(model: MatchModel, levels: Mapping[str, int]) -> list[LevelTerm]:
    """Stored level indices (``PairEvidence.levels``) named and weighed by ``model``, in the
    model's order of comparisons (any comparison the model does not know last)."""
    out: list[LevelTerm] = []
    known = set()
    for params in model.comparisons:
        known.add(params.name)
        if params.name not in levels:
            continue
        i = int(levels[params.name])
        if i == 0:
            out.append(LevelTerm(params.name, 0, "no_data", 0.0))
        elif 0 < i <= len(params.levels):
            out.append(LevelTerm(params.name, i, params.levels[i - 1], params.weights()[i - 1]))
        else:
            out.append(LevelTerm(params.name, i, str(i), None))
    for name in sorted(set(levels) - known):
        out.append(LevelTerm(name, int(levels[name]), str(levels[name]), None))
    return out


@dataclass(frozen=True)
class PairView:
    """A scored pair as a review or a decision recorded it, explained under a model.

    ``adjustment``: the bits of the recorded match weight that neither the prior nor the levels
    explain (the term-frequency adjustment of a rare or common name), when the pair was scored
    under the explaining model; None otherwise."""

    other: VictimRef
    probability: float
    match_weight: float
    terms: list[LevelTerm]
    adjustment: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "with": record_text(self.other),
            "probability": self.probability,
            "match_weight": self.match_weight,
            "levels": [t.as_json() for t in self.terms],
            "term_frequency_adjustment": (
                None if self.adjustment is None else round(self.adjustment, 4)
            ),
        }


def pair_view(model: MatchModel, evidence: PairEvidence, scored_under: str) -> PairView:
    terms = level_terms(model, evidence.levels)
    adjustment = None
    if scored_under == model.version and all(t.weight is not None for t in terms):
        explained = model.prior_weight + sum(t.weight or 0.0 for t in terms)
        adjustment = evidence.match_weight - explained
    return PairView(evidence.other, evidence.probability, evidence.match_weight, terms, adjustment)


@dataclass(frozen=True)
class CandidateView:
    """A candidate person of a review: as the review names it, what it is now, its records now,
    and the pairs that scored against it (best first)."""

    person_id: str
    current: str
    records: list[VictimRef]
    best: float
    pairs: list[PairView]

    def as_json(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "now": self.current,
            "records": [record_text(v) for v in self.records],
            "best_probability": self.best,
            "pairs": [p.as_json() for p in self.pairs],
        }


@dataclass(frozen=True)
class ReviewDetail:
    """What an operator sees of a review without values: ids, levels and weights."""

    review: Review
    record_person: str | None  # the record's person now (None: it left linkage)
    model_version: str  # the model the review was opened under
    explained_by: str  # the model that names and weighs the levels
    prior_weight: float
    candidates: list[CandidateView]

    def as_json(self) -> dict[str, Any]:
        r = self.review
        return {
            "review_id": r.review_id,
            "status": r.status,
            "record": record_text(r.victim),
            "person_id": r.person_id,
            "record_person_now": self.record_person,
            "opened_seq": r.opened_seq,
            "model_version": self.model_version,
            "explained_by": self.explained_by,
            "prior_weight": round(self.prior_weight, 4),
            "candidates": [c.as_json() for c in self.candidates],
        }


def review_detail(store: EventStore, model: MatchModel, review_id: str) -> ReviewDetail:
    """A review's candidate pairs with their levels named and weighed by ``model``.

    Raises:
        LinkageError: ``unknown_review``.
    """
    r = review(store, review_id)
    opened = _opened(store, r)
    candidates = []
    for person, pairs in sorted(
        opened.candidates.items(), key=lambda kv: (-r.candidates.get(kv[0], 0.0), kv[0])
    ):
        try:
            now = current_person(store, person)
            records = person_records(store, now)
        except LinkageError:
            now, records = person, []
        candidates.append(
            CandidateView(
                person_id=person,
                current=now,
                records=records,
                best=r.candidates.get(person, max((e.probability for e in pairs), default=0.0)),
                pairs=[pair_view(model, e, opened.model_version) for e in pairs],
            )
        )
    return ReviewDetail(
        review=r,
        record_person=person_of(store, r.victim),
        model_version=opened.model_version,
        explained_by=model.version,
        prior_weight=model.prior_weight,
        candidates=candidates,
    )


def _features_of(store: EventStore, resolver: Resolver, key: tuple[str, str, str]) -> LinkRecord:
    c = _features.c
    with store.engine.connect() as conn:
        row = conn.execute(
            select(_features).where(
                c.source_id == key[0], c.case_id == key[1], c.victim_id == key[2]
            )
        ).first()
    if row is None:
        raise LinkageError(LinkageReason.UNKNOWN_RECORD, "the record is not linked")
    record = resolver.open_features(dict(row._mapping))
    if record is None:
        raise LinkageError(LinkageReason.UNKNOWN_RECORD, "the record's person was erased")
    return record


def explain_pair(store: EventStore, resolver: Resolver, a: VictimRef, b: VictimRef) -> PairScore:
    """How the current model scores two linked records: levels and weights, no values.

    Raises:
        LinkageError: ``unknown_record`` if either record is not linked (or was erased).
    """
    first, second = _features_of(store, resolver, a.key()), _features_of(store, resolver, b.key())
    with store.engine.connect() as conn:
        return resolver.score_pair(conn, first, second)


def side_by_side(
    store: EventStore, resolver: Resolver, review_id: str, operator: str
) -> dict[str, dict[str, str]]:
    """The identifying values of a review's record and of the candidates' scoring records, for
    the trust's reviewer only: recorded as ONE ``IdentifiersViewed`` event (naming the records
    shown) before anything is returned. Keys are ``source/case/victim``; records that are no
    longer linked or whose person was erased are left out (and nothing is recorded when no record
    is left to show).

    Raises:
        LinkageError: ``unknown_review``.
    """
    r = review(store, review_id)
    evidence = _opened(store, r).candidates
    victims = list(dict.fromkeys([r.victim, *(e.other for ps in evidence.values() for e in ps)]))
    out: dict[str, dict[str, str]] = {}
    shown: list[VictimRef] = []
    for v in victims:
        try:
            record = _features_of(store, resolver, v.key())
        except LinkageError:
            continue
        out[record_text(v)] = {name: getattr(record, name) for name in _VALUE_FIELDS}
        shown.append(v)
    if not shown:
        return {}
    store.append(
        [
            IdentifiersViewed(
                event_id=new_event_id(),
                operator=operator,
                victims=shown,
                purpose=f"linkage review {review_id}",
                viewed_at_ms=int(time.time() * 1000),
            )
        ],
        None,
        OPERATOR,
    )
    return out


# -- a person's history ----------------------------------------------------------------------

_HISTORY_TYPES = (
    "RecordLinked",
    "RecordUnlinked",
    "PersonsMerged",
    "PersonSplit",
    "LinkReviewOpened",
    "LinkOverridden",
)


def _linkage_events(store: EventStore, types: Sequence[str]) -> Iterator[tuple[int, Event]]:
    """The stored events of ``types`` in seq order, read page by page."""
    return store.all_of(types, page=_PAGE)


def _evidence_json(
    pairs: Sequence[PairEvidence], model: MatchModel | None, scored_under: str
) -> list[dict[str, Any]]:
    if model is not None:
        return [pair_view(model, e, scored_under).as_json() for e in pairs]
    return [
        {
            "with": record_text(e.other),
            "probability": e.probability,
            "match_weight": e.match_weight,
            "levels": [
                {"comparison": k, "index": i, "level": str(i), "weight": None}
                for k, i in e.levels.items()
            ],
            "term_frequency_adjustment": None,
        }
        for e in pairs
    ]


def person_history(
    store: EventStore, person_id: str, model: MatchModel | None = None
) -> list[dict[str, Any]]:
    """Every linkage event that made ``person_id`` what it is, oldest first — ids, levels and
    weights only, never a value:

    - ``linked``: a record placed in the person, with the decision, the model version and the
      pairs that scored (their levels named and weighed by ``model`` when given); also the
      original placement of records a split later moved into the person;
    - ``review_opened``: a review of a record of the person or naming it as a candidate;
    - ``operator``: an operator's verdict on a pair involving the person's records;
    - ``merged``, ``split``, ``unlinked``.

    The persons merged into ``person_id`` (directly or through earlier merges) are part of its
    history.

    Raises:
        LinkageError: ``unknown_person``.
    """
    current_person(store, person_id)  # raises for an unknown id
    # first the (few) merges and splits: which ids and records make up this person
    family = {person_id}
    moved_in: set[tuple[str, str, str]] = set()
    merges: list[PersonsMerged] = []
    for _, ev in _linkage_events(store, ("PersonsMerged", "PersonSplit")):
        if isinstance(ev, PersonsMerged):
            merges.append(ev)
        elif isinstance(ev, PersonSplit) and ev.new_person_id == person_id:
            moved_in.update(v.key() for v in ev.moved)
    grew = True
    while grew:
        grew = False
        for m in merges:
            if m.person_id in family and not set(m.absorbed) <= family:
                family.update(m.absorbed)
                grew = True

    records: set[tuple[str, str, str]] = set(moved_in)
    out: list[dict[str, Any]] = []
    for seq, ev in _linkage_events(store, _HISTORY_TYPES):
        if isinstance(ev, RecordLinked):
            if ev.person_id in family:
                records.add(ev.victim.key())
            if ev.person_id in family or ev.victim.key() in moved_in:
                out.append(
                    {
                        "seq": seq,
                        "what": "linked",
                        "record": record_text(ev.victim),
                        "person": ev.person_id,
                        "decision": ev.decision,
                        "model_version": ev.model_version,
                        "evidence": _evidence_json(ev.evidence, model, ev.model_version),
                    }
                )
        elif isinstance(ev, RecordUnlinked) and ev.person_id in family:
            out.append(
                {
                    "seq": seq,
                    "what": "unlinked",
                    "record": record_text(ev.victim),
                    "person": ev.person_id,
                    "reason": ev.reason,
                }
            )
        elif isinstance(ev, PersonsMerged) and family & {ev.person_id, *ev.absorbed}:
            out.append(
                {
                    "seq": seq,
                    "what": "merged",
                    "survivor": ev.person_id,
                    "absorbed": list(ev.absorbed),
                    "reason": ev.reason,
                }
            )
        elif isinstance(ev, PersonSplit) and family & {ev.person_id, ev.new_person_id}:
            if ev.person_id in family:
                records.update(v.key() for v in ev.moved)
            out.append(
                {
                    "seq": seq,
                    "what": "split",
                    "from": ev.person_id,
                    "new_person": ev.new_person_id,
                    "moved": [record_text(v) for v in ev.moved],
                    "reason": ev.reason,
                }
            )
        elif isinstance(ev, LinkReviewOpened) and (
            ev.person_id in family or family & set(ev.candidates)
        ):
            out.append(
                {
                    "seq": seq,
                    "what": "review_opened",
                    "review_id": ev.review_id,
                    "record": record_text(ev.victim),
                    "person": ev.person_id,
                    "model_version": ev.model_version,
                    "candidates": {
                        p: max((e.probability for e in pairs), default=0.0)
                        for p, pairs in sorted(ev.candidates.items())
                    },
                }
            )
        elif isinstance(ev, LinkOverridden) and (
            ev.victim.key() in records or any(o.key() in records for o in ev.others)
        ):
            out.append(
                {
                    "seq": seq,
                    "what": "operator",
                    "record": record_text(ev.victim),
                    "others": [record_text(o) for o in ev.others],
                    "same": ev.same,
                    "review_id": ev.review_id,
                    "operator": ev.operator,
                }
            )
    return out
