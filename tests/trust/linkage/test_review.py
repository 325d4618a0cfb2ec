"""The operator's side of linkage: the review queue, decisions as events that linkage follows (and
every count with it), explanations with ids, levels and weights only, and the one audited view
of identifying values."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from trust.follow import follow
from trust.linkage import KeyedHasher, LinkageError, LinkageReason, LinkageSettings, Linker
from trust.linkage import review as rv
from trust.linkage.model import default_model
from trust.linkage.resolver import Resolver
from trust.release.counts import ReleaseCounts, cell_counts, counted_persons
from trust.release.streams import STREAMS, VICTIMS
from trust.store.events import (
    IdentifiersViewed,
    LinkDecision,
    LinkOverridden,
    LinkReviewOpened,
    PersonsMerged,
    PersonSplit,
    RecordAccepted,
    RecordLinked,
    RecordUnlinked,
    VictimRef,
)
from trust.store.eventstore import EventStore, Position
from trust.store.tables import release_cell_counts
from trust.store.vault import Vault

from ..store.builders import case_record, eid
from .people import age_on_record

POLICE = VictimRef("police", "C1", "v1")
NGO = VictimRef("ngo", "N1", "v1")
NRM = VictimRef("nrm", "R1", "v1")
SOURCES = ["ngo", "nrm", "police"]
# what the records hold: none of it may appear in an explanation
SECRETS = ("ana", "popescu", "d777", "1990-05-17", "1975-11-02")


def ids(
    given: str = "Ana", surname: str = "Popescu", dob: date | None = None, doc: str = ""
) -> dict[str, Any]:
    return {
        "given_names": given,
        "surnames": surname,
        "date_of_birth": dob,
        "documents": [{"number": doc, "issuing_country": "RO"}] if doc else [],
        "phone": None,
    }


class Trust:
    """A store, its vault and linkage (deterministic person ids), and the release counts."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.vault = Vault(store.engine, os.urandom(32))
        counter = itertools.count(1)
        linker = Linker(LinkageSettings(), default_model(), KeyedHasher(self.vault.linkage_key()))
        self.resolver = Resolver(self.vault, linker, person_ids=lambda: f"P-{next(counter)}")
        self.model = linker.model
        self.offset = 0

    def accept(self, victim: VictimRef, identifiers: dict[str, Any], sex: str = "Feminine") -> None:
        source, case, v = victim.key()
        record = case_record(source, case, [(v, sex, age_on_record(identifiers))])
        record["victims"][0]["identifiers"] = identifiers
        minimised, sealed = self.vault.seal_identifiers(source, case, record)
        event = RecordAccepted(eid(), source, case, minimised, sealed, 1, 2)
        self.store.append([event], Position("tip.inbound", 0, self.offset), "ingest")
        self.offset += 1

    def link(self) -> None:
        follow(self.store, self.resolver)

    def person(self, v: VictimRef) -> str | None:
        return rv.person_of(self.store, v)

    def events(self, cls: type) -> list[Any]:
        return [ev for _, ev in self.store.read() if isinstance(ev, cls)]

    def counts(self) -> tuple[int, dict[str, dict[tuple[str, ...], int]], list[tuple[Any, ...]]]:
        """Counted persons, each stream's cell counts, and the release stage's stored counts."""
        follow(self.store, ReleaseCounts(STREAMS))
        with self.store.engine.connect() as conn:
            cells = {name: cell_counts(conn, spec, SOURCES) for name, spec in STREAMS.items()}
            stored = sorted(tuple(r) for r in conn.execute(select(release_cell_counts)).all())
        return len(counted_persons(self.store)), cells, stored


@pytest.fixture
def trust(store: EventStore) -> Iterator[Trust]:
    yield Trust(store)


def bridge(trust: Trust) -> rv.Review:
    """Two persons (same names, different dates of birth), then a record agreeing with both:
    it goes to review (a bridging record merges nobody by itself)."""
    trust.accept(POLICE, ids(dob=date(1990, 5, 17)))
    trust.accept(NGO, ids(dob=date(1975, 11, 2), doc="D777"))
    trust.link()
    trust.accept(NRM, ids(doc="D777"))
    trust.link()
    (review,) = rv.open_reviews(trust.store)
    assert review.victim == NRM
    assert set(review.candidates) == {trust.person(POLICE), trust.person(NGO)}
    return review


def test_the_queue_shows_a_review_with_named_levels_and_weights_and_no_value(trust: Trust) -> None:
    review = bridge(trust)
    assert rv.reviews(trust.store, None) == [review] == rv.reviews(trust.store, "open")
    assert rv.review(trust.store, review.review_id) == review
    assert set(rv.review_evidence(trust.store, review.review_id)) == set(review.candidates)

    detail = rv.review_detail(trust.store, trust.model, review.review_id)
    assert detail.record_person == trust.person(NRM) == review.person_id
    assert detail.explained_by == detail.model_version == trust.model.version
    # best candidate first: the NGO's person shares the document too
    assert [c.current for c in detail.candidates] == [trust.person(NGO), trust.person(POLICE)]
    ngo_pair = detail.candidates[0].pairs[0]
    police_pair = detail.candidates[1].pairs[0]
    assert (ngo_pair.other, police_pair.other) == (NGO, POLICE)
    levels = {t.comparison: t.level for t in ngo_pair.terms}
    assert levels["document_number"] == "exact" and levels["given_name"] == "exact"
    assert {t.comparison: t.level for t in police_pair.terms}["date_of_birth"] == "no_data"
    weights = {p.name: p.weights() for p in trust.model.comparisons}
    for t in ngo_pair.terms:
        assert t.weight == (0.0 if t.index == 0 else weights[t.comparison][t.index - 1])
    for pair in (ngo_pair, police_pair):  # the prior, the levels and the names' frequencies
        explained = trust.model.prior_weight + sum(t.weight or 0.0 for t in pair.terms)
        assert pair.adjustment is not None
        assert explained + pair.adjustment == pytest.approx(pair.match_weight)
    text = json.dumps(detail.as_json()).lower()
    assert not [s for s in SECRETS if s in text]
    assert trust.events(IdentifiersViewed) == []

    with pytest.raises(LinkageError) as unknown:
        rv.review_detail(trust.store, trust.model, "no-such-review")
    assert unknown.value.reason == LinkageReason.UNKNOWN_REVIEW


def test_accept_of_the_best_candidate_confirms_the_provisional_person(trust: Trust) -> None:
    review = bridge(trust)
    ngo = trust.person(NGO)
    assert trust.person(NRM) == ngo  # placed provisionally with the best candidate
    persons, cells, _ = trust.counts()
    assert persons == 2

    decision = rv.resolve(trust.store, review.review_id, same=True, operator="alice")
    assert decision.others == []  # the best (by default) already holds the record: confirmed
    trust.link()
    assert trust.events(PersonsMerged) == [] and trust.events(RecordUnlinked) == []
    assert trust.person(NRM) == trust.person(NGO) == ngo != trust.person(POLICE)
    assert rv.reviews(trust.store, None)[0].status == "accepted"
    assert rv.open_reviews(trust.store) == []
    assert trust.counts()[:2] == (persons, cells)

    for same in (True, False):  # a closed review is not decided again
        with pytest.raises(LinkageError) as closed:
            rv.resolve(trust.store, review.review_id, same=same, operator="bob")
        assert closed.value.reason == LinkageReason.REVIEW_CLOSED
    assert len(trust.events(LinkOverridden)) == 1


def test_joined_persons_merge_into_the_oldest_id_and_the_counts_follow(trust: Trust) -> None:
    bridge(trust)
    police, ngo = trust.person(POLICE), trust.person(NGO)
    persons, cells, _ = trust.counts()
    rv.decide_pair(trust.store, NGO, POLICE, same=True, operator="alice")
    trust.link()
    (merged,) = trust.events(PersonsMerged)
    assert (merged.person_id, merged.absorbed) == (police, [ngo])  # the older id survives
    assert trust.person(NGO) == trust.person(NRM) == trust.person(POLICE) == police
    assert rv.current_person(trust.store, ngo or "") == police
    after, after_cells, _ = trust.counts()
    assert after == persons - 1
    for name, spec in STREAMS.items():  # one person fewer; perpetrator records are not linked
        fewer = 1 if spec.subject == VICTIMS else 0
        assert sum(after_cells[name].values()) == sum(cells[name].values()) - fewer


def test_reject_keeps_the_record_apart_even_when_it_is_sent_again(trust: Trust) -> None:
    review = bridge(trust)
    police, ngo = trust.person(POLICE), trust.person(NGO)
    decision = rv.resolve(trust.store, review.review_id, same=False, operator="alice")
    assert {POLICE, NGO} <= set(decision.others)  # every candidate
    trust.link()
    nrm = trust.person(NRM)
    assert nrm not in {police, ngo, None}  # out of its provisional person, on its own
    assert trust.events(PersonsMerged) == []
    assert rv.reviews(trust.store, None)[0].status == "rejected"

    trust.accept(NRM, ids(doc="D777"))  # the same record again: nothing to decide
    trust.link()
    assert trust.person(NRM) == nrm
    assert len(trust.events(RecordLinked)) == 3

    # sent again with the police's date of birth: by the model alone it is the police's person
    trust.accept(NRM, ids(dob=date(1990, 5, 17), doc="D777"))
    trust.link()
    assert rv.explain_pair(trust.store, trust.resolver, NRM, POLICE).probability >= 0.9
    assert [e.reason for e in trust.events(RecordUnlinked)] == ["superseded"]
    placed = trust.events(RecordLinked)[-1]
    assert placed.victim == NRM and placed.decision == LinkDecision.NEW_PERSON
    assert trust.person(NRM) not in {police, ngo, None}
    assert len(trust.events(LinkReviewOpened)) == 1  # and no new review either
    assert trust.counts()[0] == 3


def test_a_wrong_merge_undone_by_separate_changes_every_count_back(trust: Trust) -> None:
    trust.accept(POLICE, ids(dob=date(1990, 5, 17)))  # two persons (different dates of birth)
    trust.accept(NGO, ids(dob=date(1975, 11, 2), doc="D777"))
    trust.link()
    police, ngo = trust.person(POLICE), trust.person(NGO)
    before = trust.counts()
    assert before[0] == 2

    # the operator wrongly judges the NGO's person to be the police's: they merge
    rv.decide_pair(trust.store, NGO, POLICE, same=True, operator="alice")
    trust.link()
    assert trust.person(NGO) == trust.person(POLICE) == police
    merged = trust.counts()
    assert merged[0] == 1
    assert merged[1] != before[1] and merged[2] != before[2]

    # undone by a verdict outside the review: the person splits, every count goes back
    rv.decide_pair(trust.store, NGO, POLICE, same=False, operator="alice")
    trust.link()
    (split,) = trust.events(PersonSplit)
    assert split.person_id == police and NGO in split.moved
    assert trust.person(POLICE) == police  # the first record keeps the id
    assert trust.person(NGO) == split.new_person_id not in {police, ngo}  # never reused
    assert trust.counts() == before


def test_identifying_values_only_through_side_by_side_and_every_view_recorded(
    trust: Trust,
) -> None:
    review = bridge(trust)
    with pytest.raises(LinkageError):
        rv.side_by_side(trust.store, trust.resolver, "no-such-review", "alice")
    assert trust.events(IdentifiersViewed) == []

    values = rv.side_by_side(trust.store, trust.resolver, review.review_id, "alice")
    assert values["nrm/R1/v1"]["document_number"] == "D777"
    assert values["police/C1/v1"]["date_of_birth"] == "1990-05-17"
    assert values["ngo/N1/v1"]["surname"] == "Popescu"
    (viewed,) = trust.events(IdentifiersViewed)
    assert viewed.operator == "alice" and review.review_id in viewed.purpose
    assert set(viewed.victims) == {NRM, POLICE, NGO}


def test_a_persons_history_has_ids_levels_and_weights_only(trust: Trust) -> None:
    review = bridge(trust)
    ngo = trust.person(NGO)
    assert ngo is not None and trust.person(NRM) == ngo  # provisionally with the NGO's person
    rv.resolve(trust.store, review.review_id, same=True, operator="alice")
    trust.link()
    rv.decide_pair(trust.store, NRM, NGO, same=False, operator="bob")
    trust.link()
    split = trust.person(NRM)
    assert split not in {ngo, None}

    history = rv.person_history(trust.store, ngo, trust.model)
    whats = [e["what"] for e in history]
    assert whats == ["linked", "linked", "review_opened", "operator", "operator", "split"]
    assert [e["record"] for e in history if e["what"] == "linked"] == ["ngo/N1/v1", "nrm/R1/v1"]
    linked = history[1]
    assert linked["decision"] == LinkDecision.PROVISIONAL and linked["person"] == ngo
    evidence = {p["with"]: p for p in linked["evidence"]}
    levels = {x["comparison"]: x["level"] for x in evidence["ngo/N1/v1"]["levels"]}
    assert levels["document_number"] == "exact" and levels["date_of_birth"] == "no_data"
    assert evidence["ngo/N1/v1"]["probability"] >= 0.9
    assert [e["same"] for e in history if e["what"] == "operator"] == [True, False]

    # the person a split made knows where its record came from
    born = rv.person_history(trust.store, split or "", trust.model)
    assert born[0]["what"] == "linked" and born[0]["record"] == "nrm/R1/v1"
    assert born[-1]["what"] == "split" and born[-1]["new_person"] == split

    text = json.dumps([history, born]).lower()
    assert not [s for s in SECRETS if s in text]
    with pytest.raises(LinkageError) as unknown:
        rv.person_history(trust.store, "P-404")
    assert unknown.value.reason == LinkageReason.UNKNOWN_PERSON


def test_explain_pair_gives_the_current_models_levels(trust: Trust) -> None:
    bridge(trust)
    score = rv.explain_pair(trust.store, trust.resolver, NRM, NGO)
    levels = {t.comparison: t.level for t in score.explanation.terms}
    assert levels["document_number"] == "exact" and levels["date_of_birth"] == "no_data"
    assert score.explanation.model_version == trust.model.version
    assert score.probability >= 0.9
    apart = rv.explain_pair(trust.store, trust.resolver, POLICE, NGO)
    assert {t.comparison: t.level for t in apart.explanation.terms}["date_of_birth"] == "other"
    assert apart.probability < 0.5
    with pytest.raises(LinkageError) as unknown:
        rv.explain_pair(trust.store, trust.resolver, NRM, VictimRef("nrm", "R404", "v1"))
    assert unknown.value.reason == LinkageReason.UNKNOWN_RECORD


def test_verdicts_that_cannot_be_are_refused_and_record_nothing(trust: Trust) -> None:
    review = bridge(trust)
    # two victims of one case with the same identifiers: never one person
    same = ids("Elena", "Dumitru", date(1985, 1, 2))
    record = case_record("police", "C2", [("v1", "Feminine", 30), ("v2", "Feminine", 30)])
    for victim in record["victims"]:
        victim["identifiers"] = same
    minimised, sealed = trust.vault.seal_identifiers("police", "C2", record)
    trust.store.append(
        [RecordAccepted(eid(), "police", "C2", minimised, sealed, 1, 2)],
        Position("tip.inbound", 0, trust.offset),
        "ingest",
    )
    trust.offset += 1
    c2v1, c2v2 = VictimRef("police", "C2", "v1"), VictimRef("police", "C2", "v2")
    n2 = VictimRef("ngo", "N2", "v1")
    trust.accept(n2, same)  # agrees with both: a review naming both
    trust.link()
    (second,) = [r for r in rv.open_reviews(trust.store) if r.victim == n2]
    assert set(second.candidates) == {trust.person(c2v1), trust.person(c2v2)}

    def no_police_nrm(a: str, b: str) -> bool:
        return {a, b} != {"police", "nrm"}

    def decide(a: VictimRef, b: VictimRef, same: bool = True) -> object:
        return rv.decide_pair(trust.store, a, b, same=same, operator="a")

    refusals: list[tuple[Callable[[], object], LinkageReason]] = [
        (lambda: decide(NRM, NRM, same=False), LinkageReason.BAD_MODE),
        (lambda: decide(c2v1, c2v2), LinkageReason.BAD_MODE),
        (lambda: decide(NRM, VictimRef("ngo", "N404", "v1")), LinkageReason.UNKNOWN_RECORD),
        (
            lambda: rv.resolve(
                trust.store, second.review_id, same=True, operator="a", persons=[*second.candidates]
            ),
            LinkageReason.BAD_MODE,
        ),
        (
            lambda: rv.resolve(
                trust.store, review.review_id, same=True, operator="a", persons=["P-404"]
            ),
            LinkageReason.UNKNOWN_PERSON,
        ),
        # the agreements of the NGO and the NRM (or the police and the NRM) forbid linking
        (
            lambda: rv.decide_pair(
                trust.store, NRM, POLICE, same=True, operator="a", may_link=no_police_nrm
            ),
            LinkageReason.BAD_MODE,
        ),
        (
            lambda: rv.resolve(
                trust.store,
                review.review_id,
                same=True,
                operator="a",
                persons=[trust.person(POLICE) or ""],
                may_link=no_police_nrm,
            ),
            LinkageReason.BAD_MODE,
        ),
    ]
    for call, reason in refusals:
        with pytest.raises(LinkageError) as refused:
            call()
        assert refused.value.reason == reason
    assert trust.events(LinkOverridden) == []
    assert len(rv.open_reviews(trust.store)) == 2

    # the NGO's record sits provisionally with one victim's person: never also with the other's
    holder = trust.person(n2)
    assert holder in {trust.person(c2v1), trust.person(c2v2)}
    other = c2v2 if holder == trust.person(c2v1) else c2v1
    with pytest.raises(LinkageError) as refused:
        decide(n2, other)
    assert refused.value.reason == LinkageReason.BAD_MODE
