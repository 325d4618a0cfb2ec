"""The operator's side of linkage: the review queue, decisions, and explanations.

Linkage opens a review when it will not decide alone (``LinkReviewOpened``). An operator lists
the queue, looks at a review — the comparison levels and weights of each candidate pair and,
because the operator is the trust's reviewer, the two records' identifying values side by side,
every such view recorded (``IdentifiersViewed``) — and decides. A decision is an event
(``LinkOverridden``) that overrides the model for those pairs from then on; linkage follows it
with the merge or split it implies, and every count follows linkage.

Explanations (:func:`explain_pair`, :func:`person_history`) give levels and weights, never values.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.linker import PairScore
from trust.linkage.resolver import Key, Resolver
from trust.store.events import (
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
from trust.store.tables import link_features as _features
from trust.store.tables import proj_link_reviews as _reviews
from trust.store.tables import proj_linked_persons as _persons
from trust.store.tables import proj_person_links as _links

OPERATOR = "trust-operator"
"""The store consumer name of what operators record."""


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


def review_evidence(store: EventStore, review_id: str) -> dict[str, list[PairEvidence]]:
    """Per candidate person, the pairs that scored when the review was opened (best first)."""
    for ev in _events_of(store, ("LinkReviewOpened",)):
        if isinstance(ev, LinkReviewOpened) and ev.review_id == review_id:
            return ev.candidates
    raise LinkageError(LinkageReason.UNKNOWN_REVIEW, "no review has this id")


def _events_of(store: EventStore, types: Sequence[str]) -> list[Any]:
    return [ev for _, ev in store.read_types(types, 0, store.last_seq(), 10**9)]


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
    """The victim records of a person now (following a merge to its survivor)."""
    person = current_person(store, person_id)
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(_links.c.source_id, _links.c.case_id, _links.c.victim_id)
            .where(_links.c.person_id == person)
            .order_by(_links.c.linked_seq)
        ).all()
    return [VictimRef(s, c, v) for s, c, v in rows]


def _person_of(store: EventStore, victim: VictimRef) -> str | None:
    c = _links.c
    with store.engine.connect() as conn:
        return conn.execute(
            select(c.person_id).where(
                c.source_id == victim.source_id,
                c.case_id == victim.case_id,
                c.victim_id == victim.victim_id,
            )
        ).scalar()


def resolve(
    store: EventStore,
    review_id: str,
    *,
    same: bool,
    operator: str,
    persons: Sequence[str] = (),
) -> LinkOverridden:
    """Record an operator's decision on an open review.

    ``same``: the record is the same person as ``persons`` (default: the best candidate) — their
    persons are merged, the oldest id surviving. Not ``same``: the record is none of ``persons``
    (default: every candidate) — the model never joins those pairs again.

    Raises:
        LinkageError: ``unknown_review``, ``review_closed``, or ``unknown_person`` for a person
            that is not a candidate of this review.
    """
    r = review(store, review_id)
    if r.status != "open":
        raise LinkageError(LinkageReason.REVIEW_CLOSED, f"the review is {r.status}")
    chosen = list(persons)
    if not chosen:
        ranked = sorted(r.candidates.items(), key=lambda kv: (-kv[1], kv[0]))
        chosen = [ranked[0][0]] if same else [p for p, _ in ranked]
    unknown = [p for p in chosen if p not in r.candidates]
    if unknown:
        raise LinkageError(LinkageReason.UNKNOWN_PERSON, "not a candidate of this review")
    others: list[VictimRef] = []
    for p in chosen:
        others.extend(person_records(store, p))
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
    store: EventStore, a: VictimRef, b: VictimRef, *, same: bool, operator: str
) -> LinkOverridden:
    """Record an operator's verdict on two records outside any review (e.g. to undo a wrong
    merge: ``same=False`` splits them apart).

    Raises:
        LinkageError: ``unknown_record`` if either record is not linked.
    """
    for v in (a, b):
        if _person_of(store, v) is None:
            raise LinkageError(LinkageReason.UNKNOWN_RECORD, "the record is not linked")
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


def _features_of(store: EventStore, resolver: Resolver, key: Key) -> Any:
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
    """How the current model scores two linked records: levels and weights, no values."""
    return resolver.linker.score(
        _features_of(store, resolver, a.key()), _features_of(store, resolver, b.key())
    )


def side_by_side(
    store: EventStore, resolver: Resolver, review_id: str, operator: str
) -> dict[str, dict[str, str]]:
    """The identifying values of a review's record and of the candidates' scoring records, for
    the trust's reviewer only: recorded as an ``IdentifiersViewed`` event before it is returned.
    Keys are ``source/case/victim``; records whose person was erased are left out."""
    r = review(store, review_id)
    evidence = review_evidence(store, review_id)
    victims = [r.victim, *{e.other for pairs in evidence.values() for e in pairs}]
    out: dict[str, dict[str, str]] = {}
    shown: list[VictimRef] = []
    for v in victims:
        try:
            record = _features_of(store, resolver, v.key())
        except LinkageError:
            continue
        out["/".join(v.key())] = {
            name: getattr(record, name)
            for name in ("given_name", "surname", "date_of_birth", "sex", "nationality")
        } | {"document_number": record.document_number}
        shown.append(v)
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


def person_history(store: EventStore, person_id: str) -> list[dict[str, Any]]:
    """Every linkage event that made ``person_id`` what it is, oldest first: links with their
    decision, probability and levels; unlinks, merges and splits. Ids, levels and weights only."""
    current_person(store, person_id)  # raises for an unknown id
    out: list[dict[str, Any]] = []
    types = ("RecordLinked", "RecordUnlinked", "PersonsMerged", "PersonSplit", "LinkOverridden")
    for seq, ev in store.read_types(types, 0, store.last_seq(), 10**9):
        if isinstance(ev, RecordLinked) and ev.person_id == person_id:
            out.append(
                {
                    "seq": seq,
                    "what": "linked",
                    "record": "/".join(ev.victim.key()),
                    "decision": ev.decision,
                    "model_version": ev.model_version,
                    "evidence": [
                        {
                            "with": "/".join(e.other.key()),
                            "probability": e.probability,
                            "match_weight": e.match_weight,
                            "levels": e.levels,
                        }
                        for e in ev.evidence
                    ],
                }
            )
        elif isinstance(ev, RecordUnlinked) and ev.person_id == person_id:
            out.append(
                {
                    "seq": seq,
                    "what": "unlinked",
                    "record": "/".join(ev.victim.key()),
                    "reason": ev.reason,
                }
            )
        elif isinstance(ev, PersonsMerged) and person_id in (ev.person_id, *ev.absorbed):
            out.append(
                {
                    "seq": seq,
                    "what": "merged",
                    "survivor": ev.person_id,
                    "absorbed": ev.absorbed,
                    "reason": ev.reason,
                }
            )
        elif isinstance(ev, PersonSplit) and person_id in (ev.person_id, ev.new_person_id):
            out.append(
                {
                    "seq": seq,
                    "what": "split",
                    "from": ev.person_id,
                    "new_person": ev.new_person_id,
                    "moved": ["/".join(v.key()) for v in ev.moved],
                    "reason": ev.reason,
                }
            )
    return out
