"""Rounding: always a multiple of the base, never below k once published, unbiased when random."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from trust.release.aggregate import CountTable
from trust.release.disclosure.rounding import (
    RandomRoundingStep,
    RoundDownStep,
    random_round,
    round_down,
)
from trust.release.disclosure.suppression import DisclosurePolicy, SuppressedTable, apply_step

values = st.integers(min_value=0, max_value=10_000)
bases = st.integers(min_value=1, max_value=50)


@given(values, bases)
def test_rounding_down_is_the_largest_multiple_not_above(value: int, base: int) -> None:
    out = round_down(value, base)
    assert out % base == 0 and out <= value < out + base


@given(values, bases, st.data())
def test_random_rounding_is_a_neighbouring_multiple(
    value: int, base: int, data: st.DataObject
) -> None:
    draw = data.draw(st.integers(min_value=0, max_value=base - 1))
    out = random_round(value, base, draw)
    assert out % base == 0 and abs(out - value) < base


@given(values, bases)
def test_random_rounding_is_unbiased_over_its_draws(value: int, base: int) -> None:
    mean = Fraction(sum(random_round(value, base, d) for d in range(base)), base)
    assert mean == value


def table(counts: dict[tuple[str, ...], int], k: int = 10) -> SuppressedTable:
    cats = (tuple(sorted({c[0] for c in counts})),)
    return DisclosurePolicy(k).apply(
        CountTable("s", ("year",), cats, counts, sum(counts.values()), None, None)
    )


@given(st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=8), bases)
def test_a_rounded_table_publishes_multiples_at_least_k_and_nothing_exact(
    ns: list[int], base: int
) -> None:
    before = table({(str(2000 + i),): n for i, n in enumerate(ns)})
    for step in (
        RoundDownStep(base),
        RandomRoundingStep(base, {(("year",), (str(2000 + i),)): i * 7919 for i in range(len(ns))}),
    ):
        out = apply_step(before, step)
        assert out.exact is False and out.steps[-1] == step.method
        for b, a in zip(before.cells, out.cells, strict=True):
            if b.count is None:
                assert a.count is None  # rounding never reveals
            elif a.count is not None:
                assert a.count % base == 0 and a.count >= out.k and abs(a.count - b.count) < base
        assert out.parameters["rounding_base"] == str(base)
