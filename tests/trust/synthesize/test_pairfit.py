"""The pair-fitting programme and the rows the default mode writes from it."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trust.synthesize.default as default
from tests.trust.synthesize.examples import tables, textbook
from trust.synthesize import check
from trust.synthesize.combinations import SubCombinations, sub_combinations
from trust.synthesize.data import Table
from trust.synthesize.errors import InvalidFitWeights
from trust.synthesize.pairfit import (
    BALANCED,
    CAP_LENGTH,
    PAIRS_ONLY,
    FitFailed,
    FittedKinds,
    FitWeights,
    fit_kinds,
)

NONE = np.zeros(0, dtype=np.int64)
# the two modes' weights and a heavier one (a cap of 1: at most the kind's own count)
WEIGHTS = st.sampled_from([PAIRS_ONLY, BALANCED, FitWeights(triple=0.5, long_cap=1.0)])


def kind_counts(table: Table, sub: SubCombinations, fit: FittedKinds) -> tuple[Counter, Counter]:
    """Single and pair counts of the fitted (fractional) table, recounted from the codes."""
    singles: Counter = Counter()
    pairs: Counter = Counter()
    for p, mask, x in zip(fit.origin.tolist(), fit.masks.tolist(), fit.x.tolist(), strict=True):
        cells = [(j, int(sub.patterns[p, j])) for j in range(table.n_columns) if mask >> j & 1]
        for a in cells:
            singles[a] += x
        for a, b in itertools.combinations(cells, 2):
            pairs[(a, b)] += x
    return singles, pairs


def sensitive_counts(table: Table) -> tuple[Counter, Counter]:
    singles: Counter = Counter()
    pairs: Counter = Counter()
    for row in table.codes.tolist():
        cells = [(j, c) for j, c in enumerate(row) if c]
        singles.update(cells)
        pairs.update(itertools.combinations(cells, 2))
    return singles, pairs


def triple_counts(table: Table, sub: SubCombinations, fit: FittedKinds) -> tuple[Counter, Counter]:
    """Triple counts of the fitted table and of the sensitive one."""
    syn: Counter = Counter()
    sens: Counter = Counter()
    for p, mask, x in zip(fit.origin.tolist(), fit.masks.tolist(), fit.x.tolist(), strict=True):
        cells = [(j, int(sub.patterns[p, j])) for j in range(table.n_columns) if mask >> j & 1]
        for q in itertools.combinations(cells, 3):
            syn[q] += x
    for row in table.codes.tolist():
        sens.update(itertools.combinations([(j, c) for j, c in enumerate(row) if c], 3))
    return syn, sens


def held_by(table: Table, sub: SubCombinations, p: int, mask: int) -> int:
    cols = [j for j in range(table.n_columns) if mask >> j & 1]
    return int(np.all(table.codes[:, cols] == sub.patterns[p, cols], axis=1).sum())


@settings(max_examples=60, deadline=None)
@given(table=tables(max_columns=5, max_rows=60), k=st.integers(1, 4), weights=WEIGHTS)
def test_the_fit_writes_held_kinds_with_the_rounded_down_single_counts(
    table: Table, k: int, weights: FitWeights
) -> None:
    sub = sub_combinations(table)
    fit = fit_kinds(sub, k, NONE, NONE, max_rounds=100, weights=weights)
    assert (fit.x >= -1e-9).all()
    for p, mask, x in zip(fit.origin.tolist(), fit.masks.tolist(), fit.x.tolist(), strict=True):
        held = held_by(table, sub, p, mask)
        assert mask and held >= k
        if mask.bit_count() >= CAP_LENGTH:  # a long kind is written at most the cap times its count
            assert x <= weights.long_cap * held + 1e-6
    syn, _ = kind_counts(table, sub, fit)
    sens, _ = sensitive_counts(table)
    for a, n in sens.items():
        assert syn[a] == pytest.approx(n - n % k, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(table=tables(max_columns=5, max_rows=60), k=st.integers(1, 4), weights=WEIGHTS)
def test_column_generation_reaches_the_optimum_of_the_whole_programme(
    table: Table, k: int, weights: FitWeights
) -> None:
    sub = sub_combinations(table)
    held = sub.support >= k
    held[:, 0] = False
    every_p, every_m = np.nonzero(held)
    whole = fit_kinds(
        sub, k, every_p.astype(np.int64), every_m.astype(np.int64), max_rounds=1, weights=weights
    )
    generated = fit_kinds(sub, k, NONE, NONE, max_rounds=100, weights=weights)
    assert generated.objective == pytest.approx(whole.objective, abs=1e-6)
    # the objective is the pair error (and the weighted triple error) of the fitted counts,
    # recounted by hand
    _, syn = kind_counts(table, sub, generated)
    _, sens = sensitive_counts(table)
    error = sum(abs(syn[q] - c) / c for q, c in sens.items() if c >= k)
    syn3, sens3 = triple_counts(table, sub, generated)
    error += weights.triple * sum(abs(syn3[q] - c) / c for q, c in sens3.items() if c >= k)
    assert generated.objective == pytest.approx(error, abs=1e-6)


def test_weights_that_make_no_sense_are_refused() -> None:
    for triple, cap in ((-0.1, 1.0), (0.0, 0.0), (0.1, -1.0), (float("nan"), 1.0)):
        with pytest.raises(InvalidFitWeights):
            FitWeights(triple=triple, long_cap=cap)


def test_the_textbook_optimum_keeps_both_held_records_whole() -> None:
    # k = 2: two (Male, 18-20, 1) and two (Female, 30-38) meet every rounded single count; the
    # pair (18-20, 1) is held 3 times but only 2 instances of each remain: error 1/3, the least
    table = textbook()
    sub = sub_combinations(table)
    fit = fit_kinds(sub, 2, NONE, NONE, max_rounds=100)
    assert fit.objective == pytest.approx(1 / 3)
    written = {
        tuple(table.value(j, int(sub.patterns[p, j])) for j in range(3) if mask >> j & 1): x
        for p, mask, x in zip(fit.origin.tolist(), fit.masks.tolist(), fit.x.tolist(), strict=True)
        if x > 1e-9
    }
    assert written == pytest.approx({("Male", "18-20", "1"): 2.0, ("Female", "30-38"): 2.0})


@settings(max_examples=60, deadline=None)
@given(table=tables(max_columns=5, max_rows=60), k=st.integers(1, 4), weights=WEIGHTS)
def test_fitted_rows_are_held_and_complete_the_single_counts(
    table: Table, k: int, weights: FitWeights
) -> None:
    sub = sub_combinations(table)
    m = table.n_columns
    pairs = default.PairCounts(table)
    origin, masks = default.partition_blocks(
        sub, default.best_partitions(default.pair_values(sub, k, m), m), k
    )
    origin, masks = default.fitted_rows(
        table, sub, k, origin, masks, pairs, np.random.default_rng(0), weights
    )
    for p, mask in zip(origin.tolist(), masks.tolist(), strict=True):
        assert held_by(table, sub, p, mask) >= k
    rows = default._codes_of(sub, origin, masks)
    sens, _ = sensitive_counts(table)
    syn = Counter((j, c) for row in rows.tolist() for j, c in enumerate(row) if c)
    assert syn == {a: n - n % k for a, n in sens.items() if n >= k}


def test_a_failed_fit_falls_back_to_the_rounded_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*_args: object, **_kwargs: object) -> FittedKinds:
        raise FitFailed("no optimum")

    monkeypatch.setattr(default, "fit_kinds", failing)
    rng = np.random.default_rng(3)
    rows = [tuple(f"v{x}" if x else "" for x in rng.integers(0, 3, size=4)) for _ in range(200)]
    table = Table.from_rows([f"c{j}" for j in range(4)], rows)
    out = default.synthesize_default(table, 4, seed=0)
    verdict = check(table.columns, list(table.rows()), out.columns, list(out.rows()), 4)
    assert verdict.ok and verdict.single_count_mismatches == 0
    assert out.n_rows > 0
