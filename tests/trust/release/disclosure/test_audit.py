"""The LP audit: the fast audit equals the plain full LP, and under-protection is caught."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.release.disclosure.strategies import tables
from trust.release.disclosure.audit import (
    PINNED,
    UPPER,
    AuditFailed,
    ProtectionRule,
    assert_protected,
    audit,
    naive_audit,
    screen,
)
from trust.release.disclosure.table import Dimension, HierarchicalTable, build_table
from trust.release.errors import UnprotectedTable

K = 5


def _interval(lo: float, hi: float) -> tuple[float, float]:
    return round(lo, 6), (np.inf if np.isinf(hi) else round(hi, 6))


@settings(max_examples=150, deadline=None)
@given(tables(), st.randoms(use_true_random=False))
def test_fast_audit_equals_naive_full_lp(t: HierarchicalTable, rnd: object) -> None:
    rng = np.random.default_rng(rnd.randint(0, 2**32))  # type: ignore[attr-defined]
    suppressed = rng.random(t.size) < 0.5
    naive = naive_audit(t, suppressed, K)
    exact = audit(t, suppressed, K, exact=True)
    fast = audit(t, suppressed, K)
    want = {b.index: _interval(b.lower, b.upper) for b in naive.bounds}
    assert {b.index: _interval(b.lower, b.upper) for b in exact.bounds} == want
    assert all(b.exact for b in exact.bounds)
    failing = {f.bounds.index for f in naive.findings}
    assert {f.bounds.index for f in exact.findings} == failing
    assert {f.bounds.index for f in fast.findings} == failing
    # the fast audit's intervals lie inside the feasible ones, and are exact where it fails
    for b in fast.bounds:
        lo, hi = want[b.index]
        if b.index in failing:
            continue
        assert lo - 1e-6 <= b.lower <= b.upper <= hi + 1e-6
    # a clear screen is a passing audit
    if screen(t, suppressed, K).clear:
        assert naive.passed


ROW = Dimension("row", ("a", "b", "c"))
COL = Dimension("col", ("x", "y"))


def _row_table() -> HierarchicalTable:
    return build_table(
        [ROW, COL],
        {
            ("a", "x"): 3,
            ("a", "y"): 20,
            ("b", "x"): 30,
            ("b", "y"): 25,
            ("c", "x"): 12,
            ("c", "y"): 14,
        },
    )


def test_one_suppressed_cell_under_a_published_total_is_pinned() -> None:
    t = _row_table()
    suppressed = np.zeros(t.size, dtype=bool)
    suppressed[t.index(("a", "x"))] = True
    report = audit(t, suppressed, 10)
    assert [(f.bounds.key, f.reason) for f in report.findings] == [(("a", "x"), PINNED)]
    assert report.findings[0].bounds.lower == report.findings[0].bounds.upper == 3
    with pytest.raises(AuditFailed) as exc:
        assert_protected(t, suppressed, 10)
    assert isinstance(exc.value, UnprotectedTable)
    assert exc.value.code == "audit_failed"
    assert exc.value.reasons == (PINNED,)
    assert "3" not in str(exc.value).replace(t.stream, "")  # the message carries no count


def test_a_narrow_interval_is_caught() -> None:
    t = _row_table()
    suppressed = np.zeros(t.size, dtype=bool)
    for key in [("a", "x"), ("a", "y"), ("c", "x"), ("c", "y")]:
        suppressed[t.index(key)] = True
    # (a, x) + (c, x) = 45 - 30 published: (a, x) = 3 lies in [0, 15]
    report = audit(t, suppressed, 10, exact=True)
    by_key = {b.key: b for b in report.bounds}
    assert (by_key[("a", "x")].lower, by_key[("a", "x")].upper) == (0, 15)
    assert report.passed  # 15 >= 3 + 10, 0 <= 3 - 10 bounded at 0, width 15 >= 10
    failing = audit(t, suppressed, 10, ProtectionRule(upper=13, lower=10, width=10))
    assert [(f.bounds.key, f.reason) for f in failing.findings] == [(("a", "x"), UPPER)]
    assert audit(t, suppressed, 10, ProtectionRule(upper=12, lower=10, width=10)).passed
    wide = audit(t, suppressed, 10, ProtectionRule(upper=10, lower=10, width=16))
    assert {f.reason for f in wide.findings} == {"width"}


def test_lower_protection() -> None:
    t = build_table([ROW, COL], {("a", "x"): 8, ("a", "y"): 20, ("b", "x"): 30, ("b", "y"): 25})
    suppressed = np.zeros(t.size, dtype=bool)
    for key in [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]:
        suppressed[t.index(key)] = True
    # every margin published: (a, x) = 8 falls to 0 as (a, y) and (b, x) rise by 8 and (b, y)
    # falls to 17, and rises by 10 the other way round: lower and upper protection hold
    assert audit(t, suppressed, 10).passed
    # publish (b, y): its row and column totals then pin every other cell
    suppressed[t.index(("b", "y"))] = False
    report = audit(t, suppressed, 10)
    assert {f.reason for f in report.findings} == {PINNED}


def test_structural_zeros_are_known_not_audited() -> None:
    t = build_table([ROW, COL], {("a", "y"): 20, ("b", "x"): 30, ("b", "y"): 25}, [("a", "x")])
    suppressed = np.zeros(t.size, dtype=bool)
    suppressed[t.index(("a", "x"))] = True
    report = audit(t, suppressed, 10)
    assert report.bounds == () and report.passed
