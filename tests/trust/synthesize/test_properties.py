"""Every mode on random small tables: the independent checker passes on every output, single
counts are the sensitive ones rounded down, and the checker catches a leaky output."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.synthesize.examples import tables
from trust.synthesize import check, synthesize
from trust.synthesize.data import Table
from trust.synthesize.default import synthesize_default


@pytest.mark.parametrize("mode", ["default", "pairs", "classic"])
@settings(max_examples=150, deadline=None)
@given(table=tables(max_columns=5), k=st.integers(1, 5), seed=st.integers(0, 3))
def test_every_output_passes_the_checker(mode: str, table: Table, k: int, seed: int) -> None:
    out = synthesize(table, k, mode, seed)
    assert out.columns == table.columns
    verdict = check(table.columns, list(table.rows()), out.columns, list(out.rows()), k)
    assert verdict.ok, verdict.leaks_by_length
    assert verdict.single_count_mismatches == 0
    # single counts, recounted here by hand: the sensitive count rounded down to a multiple of k
    sens = Counter((j, v) for row in table.rows() for j, v in enumerate(row) if v)
    syn = Counter((j, v) for row in out.rows() for j, v in enumerate(row) if v)
    assert syn == {a: n - n % k for a, n in sens.items() if n >= k}


@settings(max_examples=60, deadline=None)
@given(table=tables(), k=st.integers(2, 5))
def test_the_checker_fails_an_output_with_a_rare_row(table: Table, k: int) -> None:
    rows = list(table.rows())
    counts = Counter(rows)
    rare = [r for r in rows if counts[r] < k and any(r)]
    # a combination held by fewer than k rows leaks only if no longer row holds it too
    rare = [
        r
        for r in rare
        if sum(all(c == "" or c == s for c, s in zip(r, o, strict=True)) for o in rows) < k
    ]
    if not rare:
        return
    out = synthesize(table, k, "default", 0)
    leaky = [*out.rows(), rare[0]]
    verdict = check(table.columns, rows, table.columns, leaky, k)
    assert not verdict.ok
    assert verdict.leaks_by_length.get(sum(1 for c in rare[0] if c), 0) >= 1


@settings(max_examples=100, deadline=None)
@given(table=tables(max_columns=5), k=st.integers(1, 5), seed=st.integers(0, 3))
def test_the_fallback_without_a_fit_passes_the_checker(table: Table, k: int, seed: int) -> None:
    # what the default mode writes when the solver ends without an optimum
    out = synthesize_default(table, k, seed, fit="rounding")
    verdict = check(table.columns, list(table.rows()), out.columns, list(out.rows()), k)
    assert verdict.ok, verdict.leaks_by_length
    assert verdict.single_count_mismatches == 0
