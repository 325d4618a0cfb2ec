"""The existence and identifiability checks, before any fit."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.estimate.errors import ReasonCode
from trust.estimate.existence import Existence, ExistenceCache, check, disjoint
from trust.estimate.histories import CaptureHistories, from_rows
from trust.estimate.models import Model, Table

Published = Callable[[str], CaptureHistories]


def _check(h: CaptureHistories, terms: list[str]) -> Existence:
    return check(Table(len(h.lists)), np.asarray(h.counts, float), Model.of(terms, h.lists))


def test_the_artificial_table_shows_each_failure(published: Published) -> None:
    # Chan, Silverman & Vincent (2021), Tables 2 and 3
    h = published("artificial_3")
    all_three = _check(h, ["A:B", "A:C", "B:C"])
    assert all_three.exists and not all_three.identifiable
    assert all_three.code is ReasonCode.NOT_IDENTIFIABLE
    for terms in (["A:B"], ["A:B", "A:C"], ["A:B", "B:C"]):
        got = _check(h, terms)
        assert not got.exists and got.code is ReasonCode.MLE_DOES_NOT_EXIST
        assert got.reason and "does not exist" in got.reason
    for terms in ([], ["A:C"], ["B:C"], ["A:C", "B:C"]):
        assert _check(h, terms).ok


def test_mutually_disjoint_lists_have_no_model_with_an_estimate() -> None:
    h = from_rows("ABC", [((1, 0, 0), 10), ((0, 1, 0), 5), ((0, 0, 1), 7)])
    assert disjoint(Table(3), np.asarray(h.counts, float))
    pairs = ["A:B", "A:C", "B:C"]
    for r in range(4):
        for terms in itertools.combinations(pairs, r):
            got = _check(h, list(terms))
            assert not got.ok
            assert got.reason is not None


def test_korea_has_six_admissible_two_list_models(published: Published) -> None:
    # Silverman, Chan & Vincent (2024), table 3: "six admissible models"
    h = published("korea")
    pairs = ["b:c", "b:d", "c:d"]
    ok = [t for r in range(4) for t in itertools.combinations(pairs, r) if _check(h, list(t)).ok]
    assert len(ok) == 6
    assert ("b:c", "b:d") not in ok and ("b:c", "b:d", "c:d") not in ok


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=7, max_size=7), st.sets(st.integers(0, 2)))
def test_the_cache_gives_the_checks_answer_and_positive_tables_always_exist(
    cells: list[int], chosen: set[int]
) -> None:
    table = Table(3)
    pairs = [frozenset(p) for p in itertools.combinations(range(3), 2)]
    model = Model(frozenset(pairs[i] for i in chosen))
    counts = np.asarray(cells, float)
    cache = ExistenceCache(table)
    assert cache.check(counts, model) == check(table, counts, model)
    assert cache.check(counts, model) == check(table, counts, model)
    assert cache.lp_runs == 1
    if all(c > 0 for c in cells):
        assert check(table, counts, model).exists
