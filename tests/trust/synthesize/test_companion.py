"""The command line's companion aggregate (``tiptrust synthesize --aggregate-out``) against its
promise, on random small tables: every combination of up to the reporting length held by at
least k rows is listed, with its count rounded down to a multiple of k, and nothing else; the
aggregate's own checker (a separate counting path) agrees, and fails on leaky, wrong, incomplete
(when asked for a complete one) or too long aggregates. Then the differencing argument of
``METHOD.md`` ("The companion aggregate"), exhaustively for small counts."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.synthesize.examples import tables
from trust.synthesize import ColumnMismatch, Table
from trust.synthesize.aggregate import (
    AggregateCount,
    companion_aggregate,
    decode_aggregate,
    encode_aggregate,
)
from trust.synthesize.check import AggregateCheck, check_aggregate

Combination = tuple[tuple[str, str], ...]


def true_counts(table: Table, length: int) -> Counter[Combination]:
    """Every combination of up to ``length`` attributes, counted by brute force from the rows."""
    counts: Counter[Combination] = Counter()
    for row in table.rows():
        present = [(c, v) for c, v in zip(table.columns, row, strict=True) if v]
        for n in range(1, length + 1):
            counts.update(combinations(present, n))
    return counts


def as_combination(a: AggregateCount) -> Combination:
    return tuple(zip(a.columns, a.values, strict=True))


def listed(agg: list[AggregateCount]) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
    return [(a.columns, a.values, a.count) for a in agg]


@settings(max_examples=150, deadline=None)
@given(table=tables(max_columns=5), k=st.integers(1, 6), length=st.integers(1, 4))
def test_every_count_is_a_multiple_of_k_within_k_below_the_truth(
    table: Table, k: int, length: int
) -> None:
    agg = companion_aggregate(table, k, length)
    truth = true_counts(table, length)
    published = {as_combination(a): a.count for a in agg}
    assert len(published) == len(agg)  # no combination twice
    for combination, count in published.items():
        true = truth[combination]
        assert count % k == 0
        assert true - k < count <= true
        assert count >= k  # never a 0 for a present one
    # the leak test: no combination held by fewer than k rows appears; every other one does
    assert all(truth[c] >= k for c in published)
    assert {c for c, n in truth.items() if n >= k} == set(published)
    verdict = check_aggregate(
        table.columns, list(table.rows()), listed(agg), k, length, complete=True
    )
    assert verdict.ok and verdict.listed == len(agg) and verdict.unlisted == 0


SENSITIVE = Table.from_rows(
    ("sex", "age", "form"),
    [
        ("F", "18", "sexual"),
        ("F", "18", "sexual"),
        ("F", "18", "sexual"),
        ("F", "30", "labour"),
        ("M", "30", "labour"),
        ("M", "30", "labour"),
        ("M", "30", "labour"),
        ("M", "", "labour"),
    ],
)


def audit(
    rows: list[tuple[tuple[str, ...], tuple[str, ...], int]],
    length: int = 2,
    *,
    complete: bool = True,
) -> AggregateCheck:
    return check_aggregate(
        SENSITIVE.columns, list(SENSITIVE.rows()), rows, 3, length, complete=complete
    )


def test_the_checker_fails_a_leaky_wrong_incomplete_or_too_long_aggregate() -> None:
    good = listed(companion_aggregate(SENSITIVE, 3, 2))
    assert (("sex", "age"), ("F", "30"), 0) not in good and audit(good).ok
    # sex F x age 30 is one person: listing it, even at 0 or at k, reveals them
    for count in (0, 3):
        leaky = audit([*good, (("sex", "age"), ("F", "30"), count)])
        assert leaky.leaks_by_length == {2: 1} and not leaky.ok
    # a value no one has is a leak too (held by 0 < k)
    assert audit([*good, (("sex",), ("X",), 3)]).leaks_by_length == {1: 1}
    # labour is held by 5: 3 is right, 5 (exact), 6 (above) and 2 (not a multiple) are wrong
    at = good.index((("form",), ("labour",), 3))
    for count in (5, 6, 2, 0):
        wrong = [*good[:at], (("form",), ("labour",), count), *good[at + 1 :]]
        assert audit(wrong).wrong_counts == 1 and audit(wrong).leaks == 0
    assert audit([*good, good[0]]).wrong_counts == 1  # listed twice
    assert audit(good[1:]).unlisted == 1 and not audit(good[1:]).ok
    # the release's aggregate may leave out what secondary suppression hid: not complete
    assert audit(good[1:], complete=False).ok
    # a triple held by 3 is fine at length 3, too long at length 2
    triple = (("sex", "age", "form"), ("M", "30", "labour"), 3)
    assert audit([*good, triple]).too_long == 1
    assert audit(listed(companion_aggregate(SENSITIVE, 3, 3)), 3).ok
    with pytest.raises(ColumnMismatch):
        audit([(("form", "sex"), ("labour", "M"), 3)])  # not in the table's column order
    with pytest.raises(ColumnMismatch):
        audit([(("region",), ("north",), 3)])


def test_the_release_encoding_round_trips() -> None:
    agg = companion_aggregate(SENSITIVE, 3, 3)
    assert decode_aggregate(encode_aggregate(agg)) == agg
    assert [a.combination for a in agg][:2] == ["sex:F", "sex:M"]
    assert "sex:M;age:30;form:labour" in {a.combination for a in agg}


def changes(a: int, b: int, k: int) -> set[int]:
    """Every change of a true count that two published values a, b (rounded down to multiples
    of k) allow."""
    return {y - x for x in range(a, a + k) for y in range(b, b + k)}


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_two_rounded_counts_never_pin_a_change_below_k(k: int) -> None:
    """From two releases a consumer learns of a combination's change only an interval that holds
    0 or a change of k or more: never that 1 … k-1 persons joined or left it. Likewise between a
    rounded count and an exact value of the same combination published elsewhere."""
    small = set(range(1, k)) | set(range(-k + 1, 0))
    multiples = range(k, 8 * k, k)
    for a in multiples:
        for b in multiples:
            allowed = changes(a, b, k)
            assert not allowed <= small
            assert 0 in allowed or any(abs(d) >= k for d in allowed)
        for exact in range(k, 9 * k):
            after = {x - exact for x in range(a, a + k)}
            assert not after <= small
    # the argument needs a base of k at least: k - 1 values fit inside 1 … k-1 of an exact one
    base, exact = k - 1, 4 * k
    assert {x - exact for x in range(exact + 1, exact + 1 + base)} <= small
