"""Linkage is a function of the sequence of stored events: the same events linked in pages of 1,
of 7 or all at once — or each page linked as it arrives, however ingest cut the stream — give
the same persons (as sets of records) and the same reviews (a record and the records of each
candidate person). Person ids are drawn at random in the trust; here they are counted, and the
outcome is compared by records only."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from trust.follow import follow
from trust.linkage.resolver import new_person_id
from trust.store.eventstore import open_store
from trust.store.tables import proj_link_reviews, proj_person_links

from ..store.builders import consent, disposal, retracted
from .test_resolver import Trust, ids

Key = tuple[str, str, str]

# namesakes and near-namesakes, so that records meet, compete, conflict and bridge
_GIVEN = ("Ana", "Anna", "Ana", "Mei", "Olena")
_SURNAME = ("Popescu", "Popesku", "Popescu", "Li", "Ivanova")
_DOB = (date(1990, 5, 17), date(1990, 5, 17), date(1991, 5, 17), date(1988, 2, 3), None)
_SOURCES = ("police", "ngo", "court")


@dataclass(frozen=True)
class Accept:
    source: str
    case: str
    victims: tuple[tuple[str, str, dict[str, Any] | None], ...]
    year: int


@dataclass(frozen=True)
class Withdraw:
    source: str
    case: str
    victim: str


@dataclass(frozen=True)
class Retract:
    source: str
    case: str


@dataclass(frozen=True)
class Dispose:
    """Disposal of a whole case (its victims as the stream holds them then)."""

    source: str
    case: str


Op = Accept | Withdraw | Retract | Dispose


@st.composite
def histories(draw: st.DrawFn) -> list[Op]:
    ops: list[Op] = []
    accepted: list[tuple[str, str, str]] = []
    for n in range(draw(st.integers(4, 14))):
        kind = draw(st.sampled_from(("accept",) * 6 + ("withdraw", "retract", "dispose")))
        if kind != "accept" and accepted:
            source, case, victim = draw(st.sampled_from(accepted))
            ops.append(
                Withdraw(source, case, victim)
                if kind == "withdraw"
                else Retract(source, case)
                if kind == "retract"
                else Dispose(source, case)
            )
            continue
        source = draw(st.sampled_from(_SOURCES))
        victims = []
        for v in range(draw(st.integers(1, 2))):
            who = draw(st.integers(0, len(_GIVEN) - 1))
            dob = _DOB[who] if draw(st.booleans()) else None
            identifiers = ids(
                _GIVEN[who] if draw(st.integers(0, 4)) else _GIVEN[(who + 1) % len(_GIVEN)],
                _SURNAME[who],
                dob=dob,
            )
            victims.append(
                (f"v{v + 1}", draw(st.sampled_from(("Feminine", "Masculine"))), identifiers)
            )
        case = f"C{n}"
        ops.append(Accept(source, case, tuple(victims), draw(st.sampled_from((2023, 2024)))))
        accepted.extend((source, case, v) for v, _, _ in victims)
    return ops


def _outcome(trust: Trust) -> tuple[list[tuple[Key, ...]], list[tuple[Any, ...]]]:
    """The persons as sets of records, and each review as (record, its person, the candidate
    persons), every person named by its records."""
    with trust.store.engine.connect() as conn:
        c = proj_person_links.c
        links = conn.execute(select(c.source_id, c.case_id, c.victim_id, c.person_id)).all()
        r = proj_link_reviews.c
        reviews = conn.execute(
            select(r.source_id, r.case_id, r.victim_id, r.person_id, r.candidates, r.status)
        ).all()
    persons: dict[str, set[Key]] = {}
    for s, k, v, p in links:
        persons.setdefault(p, set()).add((s, k, v))
    named = {p: tuple(sorted(ks)) for p, ks in persons.items()}
    return (
        sorted(named.values()),
        sorted(
            (
                (s, k, v),
                named.get(p, ()),
                tuple(sorted(named.get(x, ()) for x in json.loads(candidates))),
                status,
            )
            for s, k, v, p, candidates, status in reviews
        ),
    )


def store_ops(trust: Trust, ops: Sequence[Op]) -> None:
    """Append ``ops``' events to the trust's store, as ingest would (nothing linked yet)."""
    for op in ops:
        if isinstance(op, Accept):
            trust.accept(op.source, op.case, list(op.victims), year=op.year)
        elif isinstance(op, Withdraw):
            trust.append(consent(op.source, op.case, op.victim))
        elif isinstance(op, Dispose):
            trust.append(disposal(op.source, op.case, None))
        else:
            trust.append(retracted(op.source, op.case))


def _run(ops: Sequence[Op], pages: Sequence[int], page: int, random_ids: bool = False) -> Any:
    """Append ``ops`` in runs of ``pages`` events (all at once when empty), the resolver
    following in pages of ``page`` after each run; person ids counted, or with ``random_ids``
    drawn as the trust draws them (so no choice may depend on them)."""
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{Path(d) / 'store.db'}")
        try:
            trust = Trust(store)
            if random_ids:
                trust.resolver.person_ids = new_person_id
            cuts = list(pages) or [len(ops)]
            i = 0
            while i < len(ops):
                store_ops(trust, ops[i : i + cuts[0]])
                i += cuts[0]
                cuts = cuts[1:] or cuts
                follow(store, trust.resolver, page=page)
            return _outcome(trust)
        finally:
            store.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(histories(), st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_the_same_events_give_the_same_persons_and_reviews_whatever_the_pages(
    ops: list[Op], arrivals: list[int]
) -> None:
    at_once = _run(ops, [], 10**6)
    assert _run(ops, [], 1) == at_once
    assert _run(ops, [], 7, random_ids=True) == at_once
    # linked as they arrive, in runs of the drawn sizes (ingest's batches)
    assert _run(ops, arrivals, 1000, random_ids=True) == at_once


def test_a_record_withdrawn_later_in_the_stream_is_linked_as_when_it_arrived() -> None:
    """A withdrawal stored after a record's case: the record is linked where it stands in the
    stream and leaves its person at the withdrawal, whether the resolver read the two in one
    page or apart — so a record placed between them meets the same persons either way (here:
    the court's second record, which the withdrawn one makes a close call, opens a review)."""
    anna = ids("Anna", "Popesku", dob=date(1990, 5, 17))
    ops: list[Op] = [
        Accept("police", "C3", (("v1", "Feminine", anna),), 2023),
        Accept("court", "C9", (("v1", "Feminine", anna),), 2024),
        Accept("court", "C10", (("v1", "Masculine", ids("Anna", "Popesku")),), 2024),
        Withdraw("court", "C9", "v1"),
    ]
    as_they_came = _run(ops, [1], 1000)
    assert _run(ops, [], 1000) == as_they_came
    assert _run(ops, [], 1) == as_they_came
    persons, reviews = as_they_came
    assert all(k != ("court", "C9", "v1") for p in persons for k in p)  # it left
    assert [r[0] for r in reviews] == [("court", "C10", "v1")]
