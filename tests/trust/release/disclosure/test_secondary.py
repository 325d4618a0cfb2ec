"""Secondary suppression: whatever the table, the independent audit finds nothing to recover."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from tests.trust.release.disclosure.strategies import tables
from trust.release.disclosure.audit import ProtectionRule, naive_audit
from trust.release.disclosure.secondary import (
    SuppressionFailed,
    primary_mask,
    protect,
    secondary_suppression,
)
from trust.release.disclosure.table import TOTAL, Dimension, HierarchicalTable, build_table

K = 5


@settings(max_examples=60, deadline=None)
@given(tables())
def test_after_secondary_suppression_the_naive_audit_finds_nothing(t: HierarchicalTable) -> None:
    pattern = protect(t, K)
    primary = primary_mask(t, K)
    assert np.all(pattern.suppressed[primary])  # primary suppression is kept
    assert not np.any(pattern.suppressed & t.structural)  # structural zeros stay published
    report = naive_audit(t, pattern.suppressed, K, sensitive=primary)
    assert report.passed, [(f.bounds.key, f.reason) for f in report.findings]
    loss = pattern.information_loss()
    assert loss.primary == int(primary.sum())
    assert loss.published + loss.primary + loss.secondary == t.size


SEX = Dimension("sex", ("F", "M", "X"))
FORM = Dimension("form", ("labour", "sexual", "organ"))


def _table() -> HierarchicalTable:
    counts: dict[tuple[str, ...], int] = {
        ("F", "labour"): 40, ("F", "sexual"): 120, ("F", "organ"): 0,
        ("M", "labour"): 95, ("M", "sexual"): 14, ("M", "organ"): 0,
        ("X", "labour"): 3, ("X", "sexual"): 12, ("X", "organ"): 0,
    }  # fmt: skip
    return build_table([SEX, FORM], counts, structural_zeros=[(TOTAL, "organ")])


def test_one_small_cell_gets_partners_and_structural_zeros_stay_published() -> None:
    t = _table()
    pattern = protect(t, 10)
    hidden = {t.key(int(i)) for i in np.flatnonzero(pattern.suppressed)}
    assert ("X", "labour") in hidden and len(hidden) >= 4
    for key in [("F", "organ"), ("M", "organ"), ("X", "organ"), (TOTAL, "organ")]:
        assert key not in hidden
    assert (TOTAL, TOTAL) not in hidden  # the cheapest partners are cells, not the total
    out = pattern.aggregates()
    total = out[t.grand_total]
    assert (total.dimensions, total.key, total.value) == ((), (), 284)
    organ = out[t.index((TOTAL, "organ"))]
    assert (organ.dimensions, organ.key, organ.value) == (("form",), ("organ",), 0)
    small = out[t.index(("X", "labour"))]
    assert small.value is None and small.suppressed and small.primary
    assert pattern.audit(exact=True).passed


def test_deterministic() -> None:
    t = _table()
    a = secondary_suppression(t, primary_mask(t, 10), 10)
    b = secondary_suppression(t, primary_mask(t, 10), 10)
    assert np.array_equal(a.suppressed, b.suppressed)


def test_count_cost_and_asymmetric_rule() -> None:
    t = _table()
    rule = ProtectionRule(upper=10, lower=2, width=5)
    pattern = secondary_suppression(t, primary_mask(t, 10), 10, rule, cost="count")
    assert naive_audit(t, pattern.suppressed, 10, rule, sensitive=pattern.primary).passed


def test_bad_arguments() -> None:
    t = _table()
    with pytest.raises(SuppressionFailed):
        primary_mask(t, 0)
    with pytest.raises(SuppressionFailed):
        secondary_suppression(t, primary_mask(t, 10), 10, cost="nothing")  # type: ignore[arg-type]
