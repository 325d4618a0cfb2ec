"""The hierarchical table: every cell, margin and total, and the constraints linking them."""

from __future__ import annotations

import itertools
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings

from schemas.rules import ADULT_BAND_UNKNOWN, MINOR_BAND_UNKNOWN
from tests.trust.release.disclosure.strategies import tables
from trust.release.aggregate import CountTable
from trust.release.disclosure.table import (
    AGE_GROUP_HIERARCHY,
    TOTAL,
    Dimension,
    HierarchicalTable,
    InvalidTable,
    build_table,
    from_count_table,
    incidence,
)
from trust.release.streams import AGE_GROUPS

AGE = Dimension("age_group", AGE_GROUPS, AGE_GROUP_HIERARCHY)
SEX = Dimension("sex", ("F", "M"))


def test_age_hierarchy_margins() -> None:
    counts: dict[tuple[str, ...], int] = {
        ("F", "0-11"): 2,
        ("F", "12-17"): 3,
        ("F", MINOR_BAND_UNKNOWN): 4,  # a minor of unknown band counts in children
        ("M", "25-34"): 7,
        ("M", ADULT_BAND_UNKNOWN): 6,
        ("M", "Unknown"): 1,
    }
    t = build_table([SEX, AGE], counts)
    assert AGE.nodes == (*AGE_GROUPS, "0-17", "18+", TOTAL)
    assert t.values[t.index(("F", "0-17"))] == 9
    assert t.values[t.index((TOTAL, "0-17"))] == 9
    assert t.values[t.index(("M", "18+"))] == 13
    assert t.values[t.index((TOTAL, TOTAL))] == 23
    assert t.values[t.index(("M", TOTAL))] == 14
    assert t.breakdown(t.index(("M", TOTAL))) == (("sex",), ("M",))
    assert t.breakdown(t.grand_total) == ((), ())
    # total = 0-17 + 18+ + Unknown: one constraint row links exactly those
    rows = t.constraints.toarray()
    top = [t.index(("F", n)) for n in ("0-17", "18+", "Unknown")]
    parent = t.index(("F", TOTAL))
    assert any(
        row[parent] == -1 and all(row[i] == 1 for i in top) and np.count_nonzero(row) == 4
        for row in rows
    )


@settings(max_examples=60, deadline=None)
@given(tables())
def test_constraints_and_incidence_hold(t: HierarchicalTable) -> None:
    assert np.allclose(t.constraints @ t.values, 0)
    cells = np.flatnonzero(t.is_cell)
    assert np.array_equal(incidence(t) @ t.values[cells], t.values)
    assert t.values[t.grand_total] == t.values[cells].sum()
    assert [t.key(i) for i in range(t.size)] == list(t.keys())
    # a structural aggregate has only structural zero cells below it
    assert np.all(t.values[t.structural] == 0)


def test_structural_zero_by_margin_key() -> None:
    t = build_table([SEX, AGE], {("F", "25-34"): 4}, [("M", "0-17")])
    assert t.structural[t.index(("M", "0-11"))]
    assert t.structural[t.index(("M", "0-17"))]
    assert not t.structural[t.index(("M", "18-24"))]
    assert not t.structural[t.index((TOTAL, "0-17"))]


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_table([SEX], {("X",): 1}),
        lambda: build_table([SEX], {("F",): -1}),
        lambda: build_table([SEX], {("F",): 2}, [("F",)]),
        lambda: Dimension("d", ("a", TOTAL)),
        lambda: Dimension("d", ("a", "b"), (("p", ("a", "b")), ("q", ("a",)))),
        lambda: Dimension("d", ("a",), (("p", ("q",)), ("q", ("p",)))),
        lambda: build_table([SEX, Dimension("sex", ("x",))], {}),
    ],
)
def test_invalid_tables_refused(build: object) -> None:
    with pytest.raises(InvalidTable) as exc:
        build()  # type: ignore[operator]
    assert exc.value.code == "invalid_table"


def test_from_count_table_uses_the_age_hierarchy() -> None:
    cats = (("2020", "2021"), ("F", "M"), AGE_GROUPS)
    keys = list(itertools.product(*cats))
    counts: dict[tuple[str, ...], int] = {k: i % 5 for i, k in enumerate(keys)}
    ct = CountTable(
        stream="victims_by_year_sex_age",
        dimensions=("year", "sex", "age_group"),
        categories=cats,
        counts=MappingProxyType(counts),
        total=sum(counts.values()),
        period_start=2020,
        period_end=2021,
    )
    t = from_count_table(ct)
    assert t.dimensions[2].hierarchy == AGE_GROUP_HIERARCHY
    assert t.values[t.grand_total] == ct.total
    assert t.shape == (3, 3, len(AGE_GROUPS) + 3)


def _count_table(structural: frozenset[tuple[str, ...]]) -> CountTable:
    cats = (("2021", "2022"), ("F", "M"), AGE_GROUPS)
    counts: dict[tuple[str, ...], int] = dict.fromkeys(itertools.product(*cats), 0)
    counts[("2021", "F", "25-34")] = 14
    counts[("2022", "M", "18-24")] = 3
    return CountTable(
        stream="victims_by_year_sex_age",
        dimensions=("year", "sex", "age_group"),
        categories=cats,
        counts=MappingProxyType(counts),
        total=17,
        period_start=2021,
        period_end=2022,
        structural_zeros=structural,
    )


def test_from_count_table_marks_the_streams_structural_zeros() -> None:
    # the stream declares every child of M impossible (both years): those cells, and every
    # margin made only of them, are structural; a margin with one open cell below is not
    children = ("0-11", "12-17", MINOR_BAND_UNKNOWN)
    impossible = frozenset((year, "M", age) for year in ("2021", "2022") for age in children)
    t = from_count_table(_count_table(impossible))
    structural = {t.key(int(i)) for i in np.flatnonzero(t.structural)}
    assert {("2021", "M", "0-11"), ("2022", "M", "12-17")} <= structural
    assert {("2021", "M", "0-17"), (TOTAL, "M", "0-17"), (TOTAL, "M", "0-11")} <= structural
    assert ("2021", "M", TOTAL) not in structural
    assert (TOTAL, TOTAL, "0-17") not in structural  # F's children are possible
    # 6 cells, 0-17 in each year, each child over the years, 0-17 over the years
    assert len(structural) == 6 + 2 + 3 + 1
    # without the declaration nothing is structural (every cell may hold persons)
    assert not from_count_table(_count_table(frozenset())).structural.any()


def test_a_declared_structural_zero_with_persons_is_refused() -> None:
    with pytest.raises(InvalidTable):
        from_count_table(_count_table(frozenset({("2022", "M", "18-24")})))
