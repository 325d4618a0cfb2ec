"""The hierarchical table: every cell, margin and total, and the constraints linking them."""

from __future__ import annotations

import itertools
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings

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
        ("M", "25-34"): 7,
        ("M", "Unknown"): 1,
    }
    t = build_table([SEX, AGE], counts)
    assert AGE.nodes == (*AGE_GROUPS, "0-17", "18+", TOTAL)
    assert t.values[t.index(("F", "0-17"))] == 5
    assert t.values[t.index((TOTAL, "0-17"))] == 5
    assert t.values[t.index(("M", "18+"))] == 7
    assert t.values[t.index((TOTAL, TOTAL))] == 13
    assert t.values[t.index(("M", TOTAL))] == 8
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
