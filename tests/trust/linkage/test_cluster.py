"""Persons are a partition; pairs are ordered, unique and carry the path rule's probability."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.linkage.cluster import ScoredPair, cluster
from trust.linkage.errors import LinkageError

IDS = [f"r{i:02d}" for i in range(12)]


def sp(a: str, b: str, p: float) -> ScoredPair:
    return ScoredPair.of(a, b, p)


def test_a_pair_joined_through_others_gets_the_lowest_probability_on_its_path() -> None:
    result = cluster(
        ["a", "b", "c", "d"],
        [sp("a", "b", 0.99), sp("b", "c", 0.95), sp("c", "d", 0.97), sp("a", "d", 0.2)],
        upper=0.9,
        lower=0.5,
    )
    got = {(p.id_l, p.id_r): p.probability for p in result.pairs}
    assert result.persons == (("a", "b", "c", "d"),)
    assert got == {
        ("a", "b"): 0.99,
        ("b", "c"): 0.95,
        ("c", "d"): 0.97,
        ("a", "c"): 0.95,
        ("b", "d"): 0.95,
        ("a", "d"): 0.2,  # scored itself: its own probability
    }


def test_review_holds_only_undecided_pairs_of_different_persons() -> None:
    result = cluster(
        ["a", "b", "c"],
        [sp("a", "b", 0.95), sp("b", "c", 0.7), sp("a", "c", 0.6)],
        upper=0.9,
        lower=0.5,
    )
    assert result.persons == (("a", "b"), ("c",))
    assert [(p.id_l, p.id_r) for p in result.review] == [("a", "c"), ("b", "c")]


def test_a_record_bridging_two_namesakes_does_not_merge_them() -> None:
    pairs = [sp("x", "a", 0.97), sp("x", "b", 0.96), sp("a", "b", 0.002)]
    merged = cluster(["a", "b", "x"], pairs, upper=0.9, lower=0.5)
    guarded = cluster(["a", "b", "x"], pairs, upper=0.9, lower=0.5, conflict=0.01)
    assert merged.persons == (("a", "b", "x"),)
    assert guarded.persons == (("a", "x"), ("b",))
    assert [(p.id_l, p.id_r) for p in guarded.review] == [("b", "x")]


def test_bad_thresholds_and_repeated_ids_are_refused() -> None:
    with pytest.raises(LinkageError):
        cluster(["a"], [], upper=0.4, lower=0.5)
    with pytest.raises(LinkageError):
        cluster(["a", "a"], [], upper=0.9, lower=0.5)


scored = st.lists(
    st.tuples(st.sampled_from(IDS), st.sampled_from(IDS), st.floats(0.0, 1.0)).filter(
        lambda t: t[0] != t[1]
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(scored, st.floats(0.01, 0.5), st.floats(0.5, 0.99), st.floats(0.0, 0.009))
def test_invariants(
    raw: list[tuple[str, str, float]], lower: float, upper: float, conflict: float
) -> None:
    pairs = [sp(a, b, p) for a, b, p in raw]
    result = cluster(IDS, pairs, upper=upper, lower=lower, conflict=conflict)
    # persons are a partition of the ids
    flat = [i for person in result.persons for i in person]
    assert sorted(flat) == IDS
    person_of = {i: k for k, person in enumerate(result.persons) for i in person}
    # pairs: ordered, unique, exactly the same-person pairs
    keys = [(p.id_l, p.id_r) for p in result.pairs]
    assert all(a < b for a, b in keys) and len(set(keys)) == len(keys)
    expected = {
        (a, b) for person in result.persons for a, b in itertools.combinations(sorted(person), 2)
    }
    assert set(keys) == expected
    # every accepted link is inside a person or was refused into review
    review = {(p.id_l, p.id_r) for p in result.review}
    for p in pairs:
        if p.probability >= upper and person_of[p.id_l] != person_of[p.id_r]:
            assert conflict > 0 and (p.id_l, p.id_r) in review
    # review pairs are between persons
    assert all(person_of[a] != person_of[b] for a, b in review)
    # a person of several records is connected by links at or above the upper threshold
    for q in result.pairs:
        assert 0.0 <= q.probability <= 1.0
