"""Secondary suppression: whatever the table, the independent audit finds nothing to recover."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.release.disclosure.strategies import tables
from trust.release.disclosure import secondary as secondary_module
from trust.release.disclosure.audit import (
    AuditFailed,
    ProtectionRule,
    assert_protected,
    naive_audit,
)
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


@settings(max_examples=60, deadline=None)
@given(tables(), st.randoms(use_true_random=False), st.sampled_from(["classes", "cells"]))
def test_from_a_carried_start_and_by_either_method_the_naive_audit_finds_nothing(
    t: HierarchicalTable, rnd: object, method: str
) -> None:
    rng = np.random.default_rng(rnd.randint(0, 2**32))  # type: ignore[attr-defined]
    start = rng.random(t.size) < 0.3 if rnd.random() < 0.7 else None  # type: ignore[attr-defined]
    primary = primary_mask(t, K)
    pattern = secondary_suppression(t, primary, K, start=start, method=method)  # type: ignore[arg-type]
    assert np.all(pattern.suppressed[primary])
    assert not np.any(pattern.suppressed & t.structural)
    assert pattern.report is not None and pattern.report.passed
    report = naive_audit(t, pattern.suppressed, K, sensitive=primary)
    assert report.passed, [(f.bounds.key, f.reason) for f in report.findings]
    # the report kept is the audit of exactly the pattern returned
    assert sorted(b.index for b in pattern.report.bounds) == sorted(b.index for b in report.bounds)


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


def test_a_whole_earlier_pattern_carried_forward_is_kept_after_one_audit() -> None:
    t = _table()
    first = protect(t, 10)
    again = secondary_suppression(t, primary_mask(t, 10), 10, start=first.suppressed)
    assert np.array_equal(again.suppressed, first.suppressed)
    assert (again.rounds, again.widening_lps, again.proof_lps) == (0, 0, 0)
    assert again.report is not None and again.report.passed


def test_the_earlier_method_gives_a_protected_pattern_too() -> None:
    t = _table()
    cells = secondary_suppression(t, primary_mask(t, 10), 10, method="cells")
    assert cells.proof_lps == 0
    assert naive_audit(t, cells.suppressed, 10, sensitive=cells.primary).passed
    with pytest.raises(SuppressionFailed):
        secondary_suppression(t, primary_mask(t, 10), 10, method="other")  # type: ignore[arg-type]


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


def test_the_audit_that_ended_suppression_answers_only_its_own_pattern() -> None:
    t = _table()
    pattern = protect(t, 10)
    assert pattern.report is not None
    same = assert_protected(t, pattern.suppressed, 10, pattern.rule, sensitive=pattern.primary)
    assert same is pattern.report  # exactly this question, just audited: not audited again
    # the same values in another table object: audited anew
    twin = assert_protected(_table(), pattern.suppressed, 10, sensitive=pattern.primary)
    assert twin is not pattern.report and twin.passed
    # another pattern (one secondary published): a new audit runs and refuses it
    other = pattern.suppressed.copy()
    other[int(np.flatnonzero(pattern.secondary)[0])] = False
    with pytest.raises(AuditFailed):
        assert_protected(t, other, 10, pattern.rule, sensitive=pattern.primary)
    # another rule: audited anew
    laxer = ProtectionRule(upper=10, lower=10, width=5)
    again = secondary_suppression(t, primary_mask(t, 10), 10)
    fresh = assert_protected(t, again.suppressed, 10, laxer, sensitive=again.primary)
    assert fresh is not again.report and fresh.passed and fresh.rule == laxer


def test_sides_the_audit_fails_are_widened_whatever_the_witnesses_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audit, not the heuristic's own bookkeeping, decides: with witnesses that claim every
    side settled, the failing sides come from the audit and are widened until it passes."""
    dims = [Dimension(n, tuple(f"{n}{i}" for i in range(3))) for n in ("a", "b", "c")]
    values = [12, 12, 30, 45, 0, 1, 30, 45, 1, 3, 45, 3, 1, 30, 1, 3, 20, 12, 0, 0, 45, 30, 30, 12]
    values += [30, 3, 12]  # a 3 x 3 x 3 table the local pass alone does not protect
    keys = itertools.product(*(d.categories for d in dims))
    t = build_table(dims, dict(zip(keys, values, strict=True)))
    assert secondary_suppression(t, primary_mask(t, 10), 10).widening_lps > 0
    monkeypatch.setattr(secondary_module._ByClasses, "_open", lambda self: [])
    pattern = secondary_suppression(t, primary_mask(t, 10), 10)
    assert pattern.widening_lps > 0 and pattern.proof_lps == 0 and pattern.rounds > 1
    assert naive_audit(t, pattern.suppressed, 10, sensitive=pattern.primary).passed
