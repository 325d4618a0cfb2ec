"""protect_margins: the stream's structural zeros are published as known zeros, never hidden."""

from __future__ import annotations

import dataclasses
import itertools
from types import MappingProxyType

import numpy as np

from trust.release.aggregate import CountTable
from trust.release.disclosure.audit import naive_audit
from trust.release.disclosure.margins import ProtectedMargins, protect_margins
from trust.release.disclosure.secondary import primary_mask
from trust.release.disclosure.table import from_count_table

YEARS = ("2021", "2022")
SEXES = ("F", "M", "X")
FORMS = ("labour", "sexual", "organ")


def _counts(structural: frozenset[tuple[str, ...]]) -> CountTable:
    cats = (YEARS, SEXES, FORMS)
    counts: dict[tuple[str, ...], int] = dict.fromkeys(itertools.product(*cats), 0)
    counts.update({
        ("2021", "F", "labour"): 40, ("2021", "F", "sexual"): 120, ("2021", "M", "labour"): 95,
        ("2021", "M", "sexual"): 14, ("2021", "X", "sexual"): 3, ("2022", "F", "labour"): 35,
        ("2022", "F", "sexual"): 101, ("2022", "M", "labour"): 88, ("2022", "M", "sexual"): 19,
        ("2022", "X", "labour"): 2,
    })  # fmt: skip
    return CountTable(
        stream="victims_by_year_sex_form",
        dimensions=("year", "sex", "form"),
        categories=cats,
        counts=MappingProxyType(counts),
        total=sum(counts.values()),
        period_start=2021,
        period_end=2022,
        structural_zeros=structural,
    )


def test_structural_zeros_and_their_margins_are_published_as_zero() -> None:
    organ = frozenset((y, s, "organ") for y in YEARS for s in SEXES)
    out = protect_margins(_counts(organ), 10)
    by = {(a.dimensions, a.key): a.value for a in out.table.aggregates}
    for y, s in itertools.product(YEARS, SEXES):
        assert by[(("year", "sex", "form"), (y, s, "organ"))] == 0
    assert by[(("form",), ("organ",))] == 0
    assert by[(("year", "form"), ("2021", "organ"))] == 0
    assert by[(("sex", "form"), ("X", "organ"))] == 0
    assert by[((), ())] == out.table.total == 517
    # the small cells are hidden and the independent full LP finds every one protected
    assert by[(("year", "sex", "form"), ("2021", "X", "sexual"))] is None
    table = from_count_table(_counts(organ))
    hidden = [a.value is None for a in out.table.aggregates]
    assert not any(h and table.structural[i] for i, h in enumerate(hidden))
    assert naive_audit(table, np.array(hidden), 10).passed
    # without the declaration, the same zeros are sensitive (below k) and hidden
    plain = protect_margins(_counts(frozenset()), 10)
    by_plain = {(a.dimensions, a.key): a.value for a in plain.table.aggregates}
    assert by_plain[(("form",), ("organ",))] is None
    assert plain.primary > out.primary


def test_what_the_previous_release_hid_stays_hidden_while_small() -> None:
    before = _counts(frozenset())
    first = protect_margins(before, 10)
    hidden = {(a.dimensions, a.key) for a in first.table.aggregates if a.value is None}
    sex_x = (("sex",), ("X",))
    assert sex_x in hidden
    counts = dict(before.counts)
    counts[("2021", "X", "sexual")] = 12  # sex X: 5 -> 14, at least k and below 2k now
    after = dataclasses.replace(before, counts=MappingProxyType(counts), total=sum(counts.values()))

    def hid(out: ProtectedMargins) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
        return {(a.dimensions, a.key) for a in out.table.aggregates if a.value is None}

    fresh = protect_margins(after, 10)
    assert sex_x not in hid(fresh)  # from scratch, 14 would be published
    carried = protect_margins(after, 10, previous=hidden, carry_below=20)
    assert sex_x in hid(carried) and carried.carried >= 1 and carried.report.passed
    # only what is still below 2k is carried: a large margin hidden before may come back
    big = hidden - hid(carried)
    by = {(a.dimensions, a.key): a.value for a in carried.table.aggregates}
    assert all((v := by[key]) is not None and v >= 20 for key in big)
    # the whole earlier pattern, carried: nothing hidden before is published now
    whole = protect_margins(after, 10, previous=hidden)
    assert hidden <= hid(whole) and whole.report.passed
    table = from_count_table(after)
    mask = np.array([a.value is None for a in whole.table.aggregates])
    assert naive_audit(table, mask, 10, sensitive=primary_mask(table, 10)).passed
