"""Linkage in the trust: records become persons through events, person ids stay stable, a record
that leaves re-resolves its person, a bridging record waits for review, erasure removes the
index, and the release counts count persons."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from schemas.codec import default_registry
from trust.follow import follow
from trust.linkage import KeyedHasher, LinkageSettings, Linker
from trust.linkage.model import default_model
from trust.linkage.resolver import RESOLVER, Resolver
from trust.release import counts as release_counts
from trust.release.counts import ReleaseCounts, counted_persons
from trust.release.streams import STREAMS
from trust.stewardship.agreement import Agreement, Agreements, LinkageTerms, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store import projections
from trust.store.events import (
    LinkDecision,
    LinkReviewOpened,
    PersonSplit,
    RecordAccepted,
    RecordLinked,
    RecordUnlinked,
)
from trust.store.eventstore import EventStore, Position
from trust.store.tables import (
    link_blocks,
    link_features,
    link_terms,
    proj_link_reviews,
    proj_linked_persons,
    proj_person_links,
    proj_persons,
    stored_events,
)
from trust.store.vault import Vault

from ..store.builders import case_record, consent, eid, retracted
from .people import age_on_record

ANA = {"given_names": "Ana", "surnames": "Popescu", "date_of_birth": date(1990, 5, 17)}


def ids(
    given: str = "Ana",
    surname: str = "Popescu",
    dob: date | None = None,
    doc: str = "",
    shared: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "given_names": given,
        "surnames": surname,
        "date_of_birth": dob,
        "documents": [{"number": doc, "issuing_country": "RO"}] if doc else [],
        "phone": None,
        "shared_ids": [{"scheme": k, "value": v} for k, v in (shared or {}).items()],
    }


class Trust:
    """A store, its vault and linkage, with deterministic person ids."""

    def __init__(self, store: EventStore, policy: Policy | None = None) -> None:
        self.store = store
        self.vault = Vault(store.engine, os.urandom(32))
        counter = itertools.count(1)
        linker = Linker(LinkageSettings(), default_model(), KeyedHasher(self.vault.linkage_key()))
        self.resolver = Resolver(
            self.vault, linker, person_ids=lambda: f"P-{next(counter)}", policy=policy
        )
        self.offset = 0

    def accept(
        self,
        source: str,
        case: str,
        victims: list[tuple[str, str, dict[str, Any] | None]],
        year: int | None = 2024,
        forms: tuple[str, ...] = ("SexualExploitation",),
    ) -> None:
        """``year=None, forms=()``: a record without context (linkage then weighs identifiers
        only)."""
        ages = [(v, sex, age_on_record(i)) for v, sex, i in victims]
        record = case_record(source, case, ages, year=year, forms=forms)
        for victim, (_, _, identifiers) in zip(record["victims"], victims, strict=True):
            victim["identifiers"] = identifiers
        minimised, sealed = self.vault.seal_identifiers(source, case, record)
        event = RecordAccepted(eid(), source, case, minimised, sealed, 1, 2)
        self.append(event)

    def append(self, event: Any) -> None:
        self.store.append([event], Position("tip.inbound", 0, self.offset), "ingest")
        self.offset += 1

    def link(self) -> int:
        return follow(self.store, self.resolver)

    def person(self, source: str, case: str, victim: str = "v1") -> str | None:
        c = proj_person_links.c
        with self.store.engine.connect() as conn:
            return conn.execute(
                select(c.person_id).where(
                    c.source_id == source, c.case_id == case, c.victim_id == victim
                )
            ).scalar()

    def events(self, cls: type) -> list[Any]:
        return [ev for _, ev in self.store.read() if isinstance(ev, cls)]

    def persons(self) -> int:
        follow(self.store, ReleaseCounts(STREAMS))
        return len(counted_persons(self.store))


@pytest.fixture
def trust(store: EventStore) -> Iterator[Trust]:
    yield Trust(store)


def test_the_same_person_from_two_agencies_is_one_person_and_another_is_not(trust: Trust) -> None:
    trust.accept("police", "C1", [("v1", "Feminine", ids(dob=date(1990, 5, 17), doc="D777"))])
    trust.accept("ngo", "N1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("ngo", "N2", [("v1", "Feminine", ids("Elena", "Dumitru", date(1985, 1, 2)))])
    assert trust.persons() == 3  # before linkage: one unit per record
    trust.link()
    assert trust.person("police", "C1") == trust.person("ngo", "N1") == "P-1"
    assert trust.person("ngo", "N2") == "P-2"
    assert trust.persons() == 2
    joined = [e for e in trust.events(RecordLinked) if e.decision == LinkDecision.JOINED]
    assert len(joined) == 1
    assert joined[0].model_version == trust.resolver.model_version
    assert joined[0].evidence[0].probability >= 0.9
    assert joined[0].evidence[0].other.case_id == "C1"
    assert set(joined[0].evidence[0].levels) >= {"given_name", "surname", "date_of_birth"}


def test_no_identifying_value_reaches_events_or_the_index_in_clear(trust: Trust) -> None:
    trust.accept(
        "police",
        "C1",
        [("v1", "Feminine", ids("Zinaida", "Vasilescu", date(1990, 5, 17), "RX991"))],
    )
    trust.accept("ngo", "N1", [("v1", "Feminine", ids("Zinaida", "Vasilescu", date(1990, 5, 17)))])
    trust.link()
    with trust.store.engine.connect() as conn:
        texts = [
            str(v)
            for t in (stored_events, link_blocks, link_features, link_terms)
            for row in conn.execute(select(t))
            for v in row
        ]
    blob = " ".join(texts).lower()
    for secret in ("zinaida", "vasilescu", "rx991", "1990-05-17", "z412"):  # z412: its soundex
        assert secret not in blob


def test_person_ids_are_stable_and_an_unchanged_case_decides_nothing(trust: Trust) -> None:
    trust.accept("police", "C1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.link()
    first = trust.person("police", "C1")
    trust.accept("ngo", "N1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("nrm", "R1", [("v1", "Feminine", ids(dob=date(1990, 5, 17), doc="D1"))])
    trust.link()
    assert trust.person("ngo", "N1") == trust.person("nrm", "R1") == first
    before = len(trust.events(RecordLinked))
    trust.accept("police", "C1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])  # same again
    trust.link()
    assert len(trust.events(RecordLinked)) == before
    assert trust.person("police", "C1") == first


def test_co_victims_of_one_case_are_never_one_person(trust: Trust) -> None:
    same = ids(dob=date(1990, 5, 17))
    trust.accept("police", "C1", [("v1", "Feminine", same), ("v2", "Feminine", same)])
    trust.link()
    assert trust.person("police", "C1", "v1") != trust.person("police", "C1", "v2")
    assert trust.persons() == 2


def test_a_victim_without_identifiers_is_a_person_of_their_own(trust: Trust) -> None:
    trust.accept("police", "C1", [("v1", "Feminine", None)])
    trust.accept("ngo", "N1", [("v1", "Feminine", None)])
    trust.link()
    assert trust.persons() == 2
    assert {e.decision for e in trust.events(RecordLinked)} == {LinkDecision.NEW_PERSON}


def _bridge(trust: Trust) -> None:
    trust.accept("police", "C1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("ngo", "N1", [("v1", "Feminine", ids(dob=date(1975, 11, 2), doc="D777"))])
    trust.link()
    # names and document agree with the NGO's person, names with the police's
    trust.accept("nrm", "R1", [("v1", "Feminine", ids(doc="D777"))])
    trust.link()


def test_a_bridging_record_joins_the_best_person_provisionally_and_merges_nobody(
    trust: Trust,
) -> None:
    _bridge(trust)
    police, ngo, nrm = (
        trust.person(s, c) for s, c in (("police", "C1"), ("ngo", "N1"), ("nrm", "R1"))
    )
    assert police != ngo  # the two persons stay apart
    assert nrm == ngo  # the best candidate: names and the document agree
    (review,) = trust.events(LinkReviewOpened)
    assert review.person_id == ngo
    assert set(review.candidates) == {police, ngo}
    assert [e.decision for e in trust.events(RecordLinked)][-1] == LinkDecision.PROVISIONAL
    with trust.store.engine.connect() as conn:
        rows = conn.execute(select(proj_link_reviews.c.status, proj_link_reviews.c.victim_id)).all()
    assert rows == [("open", "v1")]
    assert trust.persons() == 2  # counted in its provisional person, not as a third


@pytest.mark.parametrize("choice", ["police", "none"])
def test_a_review_moves_a_provisional_record_or_sets_it_apart(trust: Trust, choice: str) -> None:
    from trust.linkage import review as rv

    _bridge(trust)
    police, ngo = trust.person("police", "C1"), trust.person("ngo", "N1")
    (review,) = rv.open_reviews(trust.store)
    if choice == "police":
        rv.resolve(trust.store, review.review_id, same=True, operator="op", persons=[police or ""])
    else:
        rv.resolve(trust.store, review.review_id, same=False, operator="op")
    trust.link()
    nrm = trust.person("nrm", "R1")
    assert trust.person("police", "C1") == police and trust.person("ngo", "N1") == ngo
    if choice == "police":
        assert nrm == police  # moved to the chosen person; the NGO's keeps its own record
    else:
        assert nrm not in (police, ngo)  # a person of its own
    assert trust.persons() == (2 if choice == "police" else 3)


def test_a_retraction_re_resolves_the_person_and_splits_what_no_longer_hangs_together(
    trust: Trust,
) -> None:
    a = ids(dob=date(1990, 5, 17))
    b = ids(dob=date(1990, 5, 17), doc="D777")
    c = ids(surname="", doc="D777")  # agrees with b (document), not enough with a
    trust.accept("police", "A", [("v1", "Feminine", a)])
    trust.accept("ngo", "B", [("v1", "Feminine", b)])
    trust.accept("nrm", "C", [("v1", "Feminine", c)], year=None, forms=())
    trust.link()
    person = trust.person("police", "A")
    assert trust.person("ngo", "B") == trust.person("nrm", "C") == person
    assert trust.persons() == 1

    trust.append(retracted("ngo", "B"))
    trust.link()
    assert trust.person("ngo", "B") is None
    assert trust.person("police", "A") == person  # the first record keeps the id
    split = trust.events(PersonSplit)
    assert len(split) == 1 and split[0].person_id == person
    assert trust.person("nrm", "C") == split[0].new_person_id != person
    assert [e.reason for e in trust.events(RecordUnlinked)] == ["retracted"]
    assert trust.persons() == 2
    with trust.store.engine.connect() as conn:
        records = dict(
            conn.execute(
                select(proj_linked_persons.c.person_id, proj_linked_persons.c.records)
            ).all()
        )
    assert records[person] == 1 and records[split[0].new_person_id] == 1


def test_a_changed_record_is_placed_afresh(trust: Trust) -> None:
    trust.accept("police", "C1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("ngo", "N1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.link()
    assert trust.persons() == 1
    trust.accept("ngo", "N1", [("v1", "Feminine", ids("Elena", "Dumitru", date(1985, 1, 2)))])
    trust.link()
    assert trust.person("ngo", "N1") != trust.person("police", "C1")
    assert [e.reason for e in trust.events(RecordUnlinked)] == ["superseded"]
    assert trust.persons() == 2


def test_a_withdrawal_removes_the_record_from_its_person_and_the_index(trust: Trust) -> None:
    trust.accept("police", "C1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("ngo", "N1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.link()
    trust.append(consent("ngo", "N1", "v1"))
    trust.link()
    assert trust.person("ngo", "N1") is None
    with trust.store.engine.connect() as conn:
        for table in (link_blocks, link_features):
            left = conn.execute(select(table.c.source_id).where(table.c.source_id == "ngo")).all()
            assert left == []
    assert trust.persons() == 1


def test_an_emptied_index_is_refiled_without_new_decisions(trust: Trust) -> None:
    trust.accept("police", "C1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("ngo", "N1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.link()
    decided = len(trust.events(RecordLinked))
    trust.store.reset_follower(RESOLVER, trust.resolver.clear)
    trust.link()
    assert len(trust.events(RecordLinked)) == decided
    with trust.store.engine.connect() as conn:
        assert conn.execute(select(link_features.c.source_id)).all()
    trust.accept("nrm", "R1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.link()
    assert trust.person("nrm", "R1") == trust.person("police", "C1")


def test_rebuilt_projections_equal_the_live_ones(trust: Trust) -> None:
    _bridge(trust)
    trust.append(retracted("police", "C1"))
    trust.link()
    live = projections.snapshot(trust.store.engine)
    trust.store.rebuild_projections()
    assert projections.snapshot(trust.store.engine) == live


def test_a_release_counts_a_person_from_its_allowed_sources_only(trust: Trust) -> None:
    # one person: a child by the police's record (16), an adult by the NGO's (30)
    record_ids = ids(dob=date(1990, 5, 17))
    trust.accept("police", "C1", [("v1", "Feminine", record_ids)])
    trust.accept("ngo", "N1", [("v1", "Feminine", record_ids)])
    c = proj_person_links.c
    trust.link()
    with trust.store.engine.begin() as conn:
        conn.execute(
            proj_persons.update()
            .where(proj_persons.c.source_id == "police")
            .values(age_at_identification=16, age_group="12-17")
        )
    counts = ReleaseCounts(STREAMS)
    follow(trust.store, counts)
    spec = next(s for s in STREAMS.values() if "age_group" in s.dimensions)
    at = spec.dimensions.index("age_group")
    with trust.store.engine.begin() as conn:
        counts.recount(conn, {trust.person("police", "C1") or ""})
        counts_all = release_counts.cell_counts(conn, spec, ["police", "ngo"])
        only_ngo = release_counts.cell_counts(conn, spec, ["ngo"])
        only_police = release_counts.cell_counts(conn, spec, ["police"])
        assert release_counts.contributing_sources(conn, spec.name) == ["ngo", "police"]
        assert conn.execute(select(c.person_id).distinct()).all()
    assert sum(counts_all.values()) == sum(only_ngo.values()) == sum(only_police.values()) == 1
    assert [k[at] for k in counts_all] == ["12-17"]  # the youngest recorded age
    assert [k[at] for k in only_ngo] == ["25-34"]
    assert [k[at] for k in only_police] == ["12-17"]


def test_stored_decisions_name_records_by_ids_only(trust: Trust) -> None:
    trust.accept("police", "C1", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.link()
    with trust.store.engine.connect() as conn:
        payload = conn.execute(
            select(stored_events.c.payload).where(stored_events.c.event_type == "RecordLinked")
        ).scalar_one()
    assert set(json.loads(payload)["victim"]) == {"source_id", "case_id", "victim_id"}


def test_a_record_that_one_record_of_a_person_contradicts_is_not_joined(trust: Trust) -> None:
    # b has a's name, date of birth and a document; c has b's document but is recorded as male
    trust.accept("police", "A", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("ngo", "B", [("v1", "Feminine", ids(dob=date(1990, 5, 17), doc="D777"))])
    trust.link()
    trust.accept("nrm", "C", [("v1", "Masculine", ids(doc="D777"))], year=None, forms=())
    trust.link()
    person = trust.person("police", "A")
    assert trust.person("ngo", "B") == person
    assert trust.person("nrm", "C") != person  # as many records say "someone else" as "same"
    (review,) = trust.events(LinkReviewOpened)
    assert set(review.candidates) == {person}


def test_name_frequencies_follow_the_linked_records(trust: Trust) -> None:
    trust.accept("police", "A", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("ngo", "B", [("v1", "Feminine", ids("Elena", "Popescu", date(1985, 1, 2)))])
    trust.link()

    def totals() -> dict[str, int]:
        with trust.store.engine.connect() as conn:
            rows = conn.execute(
                select(link_terms.c.column, link_terms.c.count).where(link_terms.c.digest == "")
            ).all()
        return {c: int(n) for c, n in rows}

    assert totals() == {"given": 2, "surname": 2}
    trust.append(retracted("ngo", "B"))
    trust.link()
    assert totals() == {"given": 1, "surname": 1}


def _policy(**terms: LinkageTerms) -> Policy:
    agreements = [
        Agreement(
            source,
            1,
            date(2020, 1, 1),
            None,
            ("$",),
            (ReleaseGrant("ministry", ("statistics",)),),
            10,
            linkage,
        )
        for source, linkage in terms.items()
    ]
    return Policy(Agreements(agreements, default_registry().current("case_record")))


def test_sources_whose_agreements_forbid_it_are_never_linked(store: EventStore) -> None:
    trust = Trust(
        store,
        _policy(
            police=LinkageTerms(("*",)),
            ngo=LinkageTerms(()),  # its records are linked only among themselves
            nrm=LinkageTerms(("*",)),
        ),
    )
    same = ids(dob=date(1990, 5, 17), doc="D777")
    trust.accept("police", "C1", [("v1", "Feminine", same)])
    trust.accept("ngo", "N1", [("v1", "Feminine", same)])
    trust.accept("ngo", "N2", [("v1", "Feminine", same)])
    trust.accept("nrm", "R1", [("v1", "Feminine", same)])
    trust.link()
    police, ngo1, ngo2, nrm = (
        trust.person(s, c)
        for s, c in (("police", "C1"), ("ngo", "N1"), ("ngo", "N2"), ("nrm", "R1"))
    )
    assert police == nrm != ngo1
    assert ngo1 == ngo2  # the NGO's own records link
    assert trust.persons() == 2
    for ev in trust.events(RecordLinked):  # no decision even names the other side as evidence
        sides = {ev.victim.source_id == "ngo"} | {e.other.source_id == "ngo" for e in ev.evidence}
        assert len(sides) == 1


def test_a_shared_identifier_links_before_scoring_but_only_between_declaring_sources(
    store: EventStore,
) -> None:
    trust = Trust(
        store,
        _policy(
            nrm=LinkageTerms(("*",), ("nrm_referral",)),
            police=LinkageTerms(("*",), ("nrm_referral",)),
            court=LinkageTerms(("*",), ()),  # holds the number but does not declare it
        ),
    )
    ref = {"nrm_referral": "NRM-2024-0042"}
    trust.accept("nrm", "R1", [("v1", "Feminine", ids("Oksana", "Melnyk", shared=ref))])
    # the police spelled the name another way and have no date of birth: scores alone would fail
    trust.accept("police", "C1", [("v1", "Feminine", ids("Xenia", "Melnik", shared=ref))])
    trust.accept("court", "K1", [("v1", "Feminine", ids("Xenia", "Melnik", shared=ref))])
    trust.link()
    assert trust.person("police", "C1") == trust.person("nrm", "R1")
    seeded = [e for e in trust.events(RecordLinked) if e.victim.source_id == "police"]
    assert seeded[0].decision == LinkDecision.SHARED_IDENTIFIER
    assert seeded[0].evidence[0].levels == {"shared:nrm_referral": 1}
    court = next(e for e in trust.events(RecordLinked) if e.victim.source_id == "court")
    assert court.decision != LinkDecision.SHARED_IDENTIFIER
    with trust.store.engine.connect() as conn:
        text = " ".join(str(v) for row in conn.execute(select(link_blocks)) for v in row)
    assert "NRM-2024-0042" not in text


def test_a_shared_identifier_pointing_at_two_persons_goes_to_review(store: EventStore) -> None:
    trust = Trust(
        store,
        _policy(
            nrm=LinkageTerms(("*",), ("nrm_referral",)),
            police=LinkageTerms(("*",), ("nrm_referral",)),
        ),
    )
    trust.accept(
        "nrm", "R1", [("v1", "Feminine", ids("Oksana", "Melnyk", shared={"nrm_referral": "A-1"}))]
    )
    trust.accept(
        "nrm", "R2", [("v1", "Feminine", ids("Elena", "Dumitru", shared={"nrm_referral": "B-2"}))]
    )
    trust.link()
    both = {"nrm_referral": "A-1"}
    record = ids("Zoe", "Nobody", shared=both)
    record["shared_ids"].append({"scheme": "nrm_referral", "value": "B-2"})
    trust.accept("police", "C1", [("v1", "Feminine", record)])
    trust.link()
    (review,) = trust.events(LinkReviewOpened)
    r1, r2 = trust.person("nrm", "R1"), trust.person("nrm", "R2")
    assert set(review.candidates) == {r1, r2} and r1 != r2  # merged by nobody
    assert trust.person("police", "C1") in (r1, r2)  # provisionally with one of them


def test_a_person_exploited_in_two_different_years_is_a_repeat_victim(trust: Trust) -> None:
    from trust.release.streams import REPEAT_VICTIMISATION

    ana = ids(dob=date(1990, 5, 17))
    trust.accept("police", "C1", [("v1", "Feminine", ana)], year=2021)
    trust.accept("ngo", "N1", [("v1", "Feminine", ana)], year=2021)  # the same event, twice
    trust.accept("ngo", "N7", [("v1", "Feminine", ana)], year=2024)  # exploited again
    trust.accept(
        "nrm", "R1", [("v1", "Feminine", ids("Elena", "Dumitru", date(1985, 1, 2)))], year=2024
    )
    trust.link()
    follow(trust.store, ReleaseCounts(STREAMS))
    spec = REPEAT_VICTIMISATION
    with trust.store.engine.connect() as conn:
        cells = release_counts.cell_counts(conn, spec, ["police", "ngo", "nrm"])
    assert cells == {("2021", "Feminine", "Repeated"): 1, ("2024", "Feminine", "Once"): 1}
    with trust.store.engine.connect() as conn:  # without the NGO's later case: once
        cells = release_counts.cell_counts(conn, spec, ["police", "nrm"])
    assert cells == {("2021", "Feminine", "Once"): 1, ("2024", "Feminine", "Once"): 1}


def test_a_given_name_alone_joins_the_person_whose_event_it_shares(trust: Trust) -> None:
    """Agencies that meet a victim briefly often record a given name only: the record's context
    (year and forms of exploitation) decides whether it is the person the police identified."""
    trust.accept("police", "A", [("v1", "Feminine", ids(dob=date(1990, 5, 17)))])
    trust.accept("ngo", "B", [("v1", "Feminine", ids(surname=""))])
    trust.accept(
        "ngo", "C", [("v1", "Feminine", ids(surname=""))], year=2019, forms=("ForcedLabour",)
    )
    trust.link()
    assert trust.person("ngo", "B") == trust.person("police", "A")
    assert trust.person("ngo", "C") not in (trust.person("police", "A"), None)
