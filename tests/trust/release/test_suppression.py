"""Primary suppression: nothing below k is published, zeros included; the rest is exact."""

from __future__ import annotations

import dataclasses
import itertools
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.release.aggregate import CountTable
from trust.release.disclosure import (
    PRIMARY_METHOD,
    DisclosurePolicy,
    SuppressedTable,
    primary_suppression,
)
from trust.release.errors import InvalidThreshold, UnprotectedTable
from trust.release.streams import StreamSpec


def make_table(categories: tuple[tuple[str, ...], ...], values: list[int]) -> CountTable:
    keys = list(itertools.product(*categories))
    counts = dict(zip(keys, values, strict=True))
    return CountTable(
        stream="s_test",
        dimensions=tuple(f"d{i}" for i in range(len(categories))),
        categories=categories,
        counts=MappingProxyType(counts),
        total=sum(counts.values()),
        period_start=None,
        period_end=None,
    )


@st.composite
def tables(draw: st.DrawFn) -> CountTable:
    dims = draw(st.integers(1, 3))
    categories = tuple(
        tuple(f"c{d}_{j}" for j in range(draw(st.integers(1, 4)))) for d in range(dims)
    )
    size = 1
    for c in categories:
        size *= len(c)
    # small counts and zeros are the interesting ones
    values = draw(st.lists(st.integers(0, 40) | st.just(0), min_size=size, max_size=size))
    return make_table(categories, values)


@settings(max_examples=200, deadline=None)
@given(tables(), st.integers(1, 20))
def test_primary_suppression_properties(table: CountTable, k: int) -> None:
    out = primary_suppression(table, k)
    assert [c.key for c in out.cells] == list(table.cell_keys())
    for cell in out.cells:
        true = table.counts[cell.key]
        assert cell.suppressed == (cell.count is None)
        if true < k:  # zeros included
            assert cell.suppressed and cell.count is None
        else:
            assert not cell.suppressed and cell.count == true
    assert all(c.count >= k for c in out.published() if c.count is not None)
    if table.total >= k:
        assert out.total == table.total and not out.total_suppressed
    else:
        assert out.total is None and out.total_suppressed
    assert out.k == k and out.method == PRIMARY_METHOD


def test_zeros_are_suppressed_even_with_k_1() -> None:
    out = primary_suppression(make_table((("a", "b"),), [0, 1]), 1)
    assert [(c.count, c.suppressed) for c in out.cells] == [(None, True), (1, False)]


@pytest.mark.parametrize("k", [0, -1, -10])
def test_k_below_1_raises(k: int) -> None:
    with pytest.raises(InvalidThreshold):
        primary_suppression(make_table((("a",),), [5]), k)
    with pytest.raises(InvalidThreshold):
        DisclosurePolicy(k)
    with pytest.raises(InvalidThreshold):
        StreamSpec("s_test", "t", "u", ("d0",), k=k)


def test_policy_applies_primary_then_steps_and_refuses_a_revealing_step() -> None:
    table = make_table((("a", "b", "c"),), [3, 12, 0])

    class Noop:
        method = "no further step"

        def apply(self, t: SuppressedTable) -> SuppressedTable:
            return t

    class Reveal:
        method = "reveals a suppressed cell"

        def apply(self, t: SuppressedTable) -> SuppressedTable:
            cells = tuple(dataclasses.replace(c, count=0, suppressed=False) for c in t.cells)
            return dataclasses.replace(t, cells=cells)

    out = DisclosurePolicy(10, (Noop(),)).apply(table)
    assert out.method == f"{PRIMARY_METHOD}; no further step"
    assert DisclosurePolicy(10, (Noop(),)).method == out.method
    assert out.steps == (PRIMARY_METHOD, "no further step")
    assert DisclosurePolicy.for_stream(StreamSpec("s_test", "t", "u", ("d0",), k=7)).k == 7
    assert [c.count for c in out.cells] == [None, 12, None]
    with pytest.raises(UnprotectedTable):
        DisclosurePolicy(10, (Reveal(),)).apply(table)
