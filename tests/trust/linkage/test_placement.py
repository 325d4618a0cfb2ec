"""Where the resolver places a new record among the persons it met: the persons compete for it
(it is at most one of them), a bridge is never merged by it, and a contradicted person is
joined only when what agrees outweighs what contradicts."""

from __future__ import annotations

import math

import pytest

from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.resolver import Placement, choose
from trust.linkage.settings import LinkageSettings
from trust.store.events import PairEvidence, VictimRef

SETTINGS = LinkageSettings()


def pair(record: str, probability: float, weight: float | None = None) -> PairEvidence:
    """A scored pair with the record ``record`` (its match weight from the probability unless
    given)."""
    if weight is None:
        weight = math.log2(probability / (1.0 - probability))
    return PairEvidence(VictimRef("src", record, "v1"), probability, weight, {})


def test_a_person_met_alone_joins_when_more_likely_than_a_new_person() -> None:
    assert choose({"P1": [pair("a", 0.7)]}, SETTINGS) == Placement(["P1"], [])
    assert choose({"P1": [pair("a", 0.3)]}, SETTINGS) == Placement([], [])


def test_namesakes_compete_for_a_record_and_none_takes_it() -> None:
    """Each of five persons would have taken the record alone; among them each is one in six."""
    crowd = {f"P{i}": [pair(f"r{i}", 0.8)] for i in range(5)}
    assert choose(crowd, SETTINGS) == Placement([], [])  # a person of its own, no review
    assert choose({"P0": crowd["P0"]}, SETTINGS) == Placement(["P0"], [])


def test_a_close_call_opens_a_review_and_counts_in_the_likelier_person() -> None:
    placed = choose({"P1": [pair("a", 0.55)], "P2": [pair("b", 0.2)]}, SETTINGS)
    assert placed.joins == [] and placed.reviews == ["P1"] and placed.lean == "P1"
    # a person less likely than a new one is named by the review, the record stays apart
    placed = choose({"P1": [pair("a", 0.47)]}, SETTINGS)
    assert placed == Placement([], ["P1"], None)


def test_a_record_two_established_persons_would_take_is_a_bridge() -> None:
    placed = choose({"P1": [pair("a", 0.97)], "P2": [pair("b", 0.99)]}, SETTINGS)
    assert placed.joins == ["P1", "P2"] and placed.lean is None  # review, merges nobody


def test_a_contradicted_person_is_joined_only_when_agreement_outweighs_it() -> None:
    # a repeat victim: the same name and date of birth (+20 bits), another year's record (-3)
    strong = {"P1": [pair("a", 1.0 - 2**-20, 20.0), pair("b", 0.11, -3.0)]}
    assert choose(strong, SETTINGS) == Placement(["P1"], [])
    # a name alone agrees (+4 bits), a different date of birth contradicts (-10): review
    weak = {"P1": [pair("a", 0.95, 4.2), pair("b", 0.001, -10.0)]}
    assert choose(weak, SETTINGS) == Placement([], ["P1"], None)


def test_a_review_share_above_the_join_share_is_refused() -> None:
    with pytest.raises(LinkageError) as caught:
        LinkageSettings(join_share=0.5, review_share=0.6)
    assert caught.value.reason == LinkageReason.BAD_SETTINGS
