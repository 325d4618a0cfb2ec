"""Hints to the LP audit: candidate tables it checks and uses as witnesses, never as verdicts.

Secondary suppression gives its final audit the tables its witnesses rest on; an audit of a
pattern seen before in the process tries the tables the last one rested on. Each candidate is
checked against the published values and non-negativity first, so a wrong hint is ignored and
no verdict changes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trust.release.disclosure.secondary as secondary
from tests.trust.release.disclosure.strategies import tables
from trust.release.disclosure.audit import (
    UPPER,
    ProtectionRule,
    audit,
    cell_values,
    feasible_tables,
    naive_audit,
)
from trust.release.disclosure.secondary import primary_mask, protect
from trust.release.disclosure.table import Dimension, HierarchicalTable, build_table

K = 5


def _verdicts(report: object) -> set[tuple[int, str]]:
    return {(f.bounds.index, f.reason) for f in report.findings}  # type: ignore[attr-defined]


@settings(max_examples=120, deadline=None)
@given(tables(), st.randoms(use_true_random=False))
def test_hints_never_change_a_verdict(t: HierarchicalTable, rnd: object) -> None:
    rng = np.random.default_rng(rnd.randint(0, 2**32))  # type: ignore[attr-defined]
    suppressed = rng.random(t.size) < 0.5
    naive = naive_audit(t, suppressed, K)
    exact = audit(t, suppressed, K, exact=True, hints=np.zeros((0, 0)))
    cells = cell_values(t)
    # feasible tables (the exact audit's), the same moved off a published value or below 0,
    # and random tables (almost never feasible)
    good = exact.tables if exact.tables.size else cells[:, None]
    bent = good.copy()
    bent[int(rng.integers(cells.size)), :] += 1.0
    negative = good - (good.max() + 1.0)
    noise = rng.integers(0, 50, size=(cells.size, 8)).astype(np.float64)
    hints = np.hstack([good, bent, negative, noise])
    fast = audit(t, suppressed, K, hints=hints)
    assert _verdicts(fast) == _verdicts(naive)
    want = {b.index: (b.lower, b.upper) for b in naive.bounds}
    failing = {i for i, _ in _verdicts(naive)}
    for b in fast.bounds:
        if b.index not in failing:
            lo, hi = want[b.index]
            assert lo - 1e-6 <= b.lower <= b.upper <= hi + 1e-6
    unknown = suppressed & ~t.structural
    # a table moved off the true cells where nothing is suppressed is never taken
    if (~unknown & t.is_cell).any():
        moved = cells.copy()
        moved[int(np.flatnonzero((~unknown)[t.is_cell])[0])] += 1.0
        assert feasible_tables(t, unknown, moved[:, None]).shape[1] == 0
    assert feasible_tables(t, unknown, negative).shape[1] == 0


ROW = Dimension("row", ("a", "b", "c"))
COL = Dimension("col", ("x", "y"))


def _row_table() -> HierarchicalTable:
    counts = {("a", "x"): 3, ("a", "y"): 20, ("b", "x"): 30, ("b", "y"): 25}
    counts |= {("c", "x"): 12, ("c", "y"): 14}
    return build_table([ROW, COL], counts)


def test_a_hint_off_the_published_values_cannot_pass_a_failing_table() -> None:
    t = _row_table()
    suppressed = np.zeros(t.size, dtype=bool)
    for key in [("a", "x"), ("a", "y"), ("c", "x"), ("c", "y")]:
        suppressed[t.index(key)] = True
    rule = ProtectionRule(upper=13, lower=10, width=10)  # (a, x) = 3 reaches 15 at most
    cells = cell_values(t)
    cell = {key: n for n, key in enumerate(itertools.product(ROW.categories, COL.categories))}
    lying = cells.copy()
    lying[cell[("a", "x")]] = 20.0  # (a, x) at 20, (a, y) down by 17: the row total holds ...
    lying[cell[("a", "y")]] = 3.0
    lying[cell[("c", "x")]] = 0.0  # ... but the column total x (45) does not: 20 + 30 + 0 = 50
    report = audit(t, suppressed, 10, rule, hints=lying[:, None])
    assert report.hints_used == 0
    assert _verdicts(report) == {(t.index(("a", "x")), UPPER)}
    # a feasible table at the maximum is taken, and the verdict is the same
    best = cells.copy()
    best[cell[("a", "x")]], best[cell[("a", "y")]] = 15.0, 8.0
    best[cell[("c", "x")]], best[cell[("c", "y")]] = 0.0, 26.0
    again = audit(t, suppressed, 10, rule, hints=best[:, None])
    assert again.hints_used == 1
    assert _verdicts(again) == _verdicts(report)


def _grid() -> HierarchicalTable:
    dims = [
        Dimension("year", ("2020", "2021", "2022")),
        Dimension("sex", ("f", "m", "u")),
        Dimension("age", ("0-11", "12-17", "18-24", "25+"), (("0-17", ("0-11", "12-17")),)),
    ]
    rng = np.random.default_rng(3)
    counts = {}
    for y in dims[0].categories:
        for s in dims[1].categories:
            for a in dims[2].categories:
                counts[(y, s, a)] = int(rng.choice([0, 1, 3, 6, 12, 25, 40]))
    return build_table(dims, counts, stream="grid")


def test_secondary_suppression_hands_its_witnesses_to_the_final_audit() -> None:
    t = _grid()
    pattern = protect(t, K)
    report = pattern.report
    assert report is not None and report.passed
    assert report.hints_used > 0
    cold = audit(t, pattern.suppressed, K, sensitive=pattern.primary, hints=np.zeros((0, 0)))
    assert report.lp_solves < cold.lp_solves
    assert _verdicts(cold) == _verdicts(report) == set()
    assert naive_audit(t, pattern.suppressed, K, sensitive=pattern.primary).passed


def test_an_audit_of_a_pattern_seen_before_reuses_its_tables() -> None:
    t = _grid()
    suppressed = protect(t, K).suppressed
    first = audit(t, suppressed, K, hints=np.zeros((0, 0)))
    assert first.lp_solves > 0
    again = audit(t, suppressed, K)  # no hints given: the last audit of this pattern's tables
    assert again.hints_used > 0 and again.lp_solves < first.lp_solves
    assert _verdicts(again) == _verdicts(first)


@settings(max_examples=60, deadline=None)
@given(tables(), st.randoms(use_true_random=False), st.sampled_from([(5, 5, 5), (4, 2, 6)]))
def test_the_local_pass_skips_only_constraints_it_would_leave_alone(
    t: HierarchicalTable, rnd: object, levels: tuple[int, int, int]
) -> None:
    rng = np.random.default_rng(rnd.randint(0, 2**32))  # type: ignore[attr-defined]
    rule = ProtectionRule(*levels)
    prim = primary_mask(t, K)
    start = (prim | (rng.random(t.size) < 0.2)) & ~t.structural
    weights = secondary._weights(t, "value")
    screened = start.copy()
    secondary._local_pass(t, screened, prim, rule, weights)
    every = start.copy()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(secondary, "_unsafe_rows", lambda a, *_: np.ones(a.shape[0], dtype=bool))
        secondary._local_pass(t, every, prim, rule, weights)
    assert np.array_equal(screened, every)


def test_the_same_question_again_gets_the_same_pattern_audited_anew() -> None:
    t = _grid()
    prim = primary_mask(t, K)
    secondary._patterns.clear()  # whatever ran before in this process
    fresh = secondary.secondary_suppression(t, prim, K, reuse=True)
    again = secondary.secondary_suppression(t, prim, K, reuse=True)
    assert not secondary.secondary_suppression(t, prim, K).reused  # not asked for
    assert again.reused and not fresh.reused
    assert np.array_equal(again.suppressed, fresh.suppressed)
    assert (again.rounds, again.widening_lps, again.proof_lps) == (0, 0, 0)
    assert again.report is not None and again.report.passed
    assert again.report.lp_solves == 0  # the tables of the last audit of this pattern settle it
    # another question (a carried start) runs the heuristic, deterministically
    start = fresh.suppressed & (t.values < 2 * K)
    one = secondary.secondary_suppression(t, prim, K, start=start)
    two = secondary.secondary_suppression(t, prim, K, start=start)
    assert not one.reused and not two.reused
    assert np.array_equal(one.suppressed, two.suppressed)
