"""The default mode's steps: the exact best partition, the fit, rounding down, merging."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.synthesize.examples import tables, textbook
from trust.synthesize import UtilityReport, length_utility
from trust.synthesize.combinations import sub_combinations
from trust.synthesize.data import Table
from trust.synthesize.default import (
    PairCounts,
    _codes_of,
    best_partitions,
    merge_blocks,
    pair_values,
    partition_blocks,
    round_down_singles,
    synthesize_default,
)
from trust.synthesize.errors import UnknownMode


def partitions(items: list[int]) -> Iterator[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for p in partitions(rest):
        yield [[first], *p]
        for i in range(len(p)):
            yield [*p[:i], [first, *p[i]], *p[i + 1 :]]


def brute_best(value: np.ndarray, p: int, m: int) -> float:
    best = -np.inf
    for part in partitions(list(range(m))):
        total = sum(value[p, sum(1 << j for j in block)] for block in part)
        best = max(best, total)
    return float(best)


@settings(max_examples=40, deadline=None)
@given(tables(max_columns=4, max_rows=30))
def test_the_partition_is_the_best_of_all_partitions(table: Table) -> None:
    k = 2
    sub = sub_combinations(table)
    m = table.n_columns
    value = pair_values(sub, k, m)
    choice = best_partitions(value, m)
    full = (1 << m) - 1
    for p in range(sub.patterns.shape[0]):
        u, total = full, 0.0
        while u:
            block = int(choice[p, u])
            assert block & u == block and block & (u & -u)
            total += value[p, block]
            u ^= block
        assert np.isclose(total, brute_best(value, p, m))


def test_the_textbook_example_keeps_whole_records_that_k_rows_hold() -> None:
    # k = 2: (Male, 18-20, 1) and (Female, 30-38) are held twice; (Female, 18-20, 1) once, so it
    # is split: (18-20, 1) weighs 1/3, more than Female with either (also 1 row: not allowed)
    table = textbook()
    sub = sub_combinations(table)
    choice = best_partitions(pair_values(sub, 2, 3), 3)
    origin, masks = partition_blocks(sub, choice, 2)
    blocks = Counter(
        tuple(table.value(j, int(sub.patterns[p, j])) for j in range(3) if m >> j & 1)
        for p, m in zip(origin.tolist(), masks.tolist(), strict=True)
    )
    assert blocks == {
        ("Female",): 1,
        ("18-20", "1"): 1,
        ("Male", "18-20", "1"): 2,
        ("Female", "30-38"): 2,
    }


def test_rounding_down_takes_lone_attributes_first() -> None:
    table = textbook()
    rows = np.array([[1, 0, 0], [0, 1, 1], [2, 1, 1], [2, 1, 1], [1, 2, 0], [1, 2, 0]], np.int32)
    out = round_down_singles(table, 2, rows.copy(), PairCounts(table), np.random.default_rng(0))
    # one Female, one 18-20 and one 1 go; the lone Female row goes whole
    assert out[0].tolist() == [0, 0, 0]
    counts = [Counter(out[:, j].tolist()) for j in range(3)]
    assert counts[0][1] == 2 and counts[1][1] == 2 and counts[2][1] == 2


def test_default_on_the_textbook_example() -> None:
    out = synthesize_default(textbook(), 2, seed=1)
    counts = Counter(c for row in out.rows() for c in zip(out.columns, row, strict=True) if c[1])
    assert counts == {
        ("gender", "Female"): 2,
        ("gender", "Male"): 2,
        ("age", "18-20"): 2,
        ("age", "30-38"): 2,
        ("forced_labour", "1"): 2,
    }
    assert synthesize_default(textbook(), 2, seed=1).codes.tolist() == out.codes.tolist()


def test_a_wide_table_takes_the_greedy_path_and_still_never_leaks() -> None:
    rng = np.random.default_rng(4)
    rows = [tuple(f"v{x}" if x else "" for x in rng.integers(0, 3, size=10)) for _ in range(300)]
    table = Table.from_rows([f"c{j}" for j in range(10)], rows)
    out = synthesize_default(table, 5, seed=2)
    for row in out.codes:
        cols = [j for j in range(10) if row[j]]
        held = np.all(table.codes[:, cols] == row[cols], axis=1).sum()
        assert held >= 5
    for j, c in itertools.product(range(10), range(1, 3)):
        n = int((table.codes[:, j] == c).sum())
        assert int((out.codes[:, j] == c).sum()) == n - n % 5


def pair_error(table: Table, rows: np.ndarray, k: int) -> float:
    """Σ |synthetic - sensitive| / sensitive over the sensitive pairs held by ≥ k rows."""
    total = 0.0
    m = table.n_columns
    for i, j in itertools.combinations(range(m), 2):
        sens = Counter(zip(table.codes[:, i].tolist(), table.codes[:, j].tolist(), strict=True))
        syn = Counter(zip(rows[:, i].tolist(), rows[:, j].tolist(), strict=True))
        for (a, b), c in sens.items():
            if a and b and c >= k:
                total += abs(syn[(a, b)] - c) / c
    return total


@settings(max_examples=40, deadline=None)
@given(tables(max_columns=4, max_rows=50), st.sampled_from([None, 1, 2]))
def test_merging_keeps_rows_held_and_singles_and_never_adds_pair_error(
    table: Table, seekers: int | None
) -> None:
    k = 2
    m = table.n_columns
    sub = sub_combinations(table)
    origin, masks = partition_blocks(sub, best_partitions(pair_values(sub, k, m), m), k)
    before = _codes_of(sub, origin, masks)
    origin2, masks2 = merge_blocks(sub, k, origin, masks, random.Random(0), seekers=seekers)
    after = _codes_of(sub, origin2, masks2)
    assert all(sub.support[p, mask] >= k for p, mask in zip(origin2, masks2, strict=True))
    for j in range(m):
        held_before = Counter(c for c in before[:, j].tolist() if c)
        assert held_before == Counter(c for c in after[:, j].tolist() if c)
    assert after.shape[0] <= before.shape[0]
    assert pair_error(table, after, k) <= pair_error(table, before, k) + 1e-9


def dependent_table(rows: int, seed: int) -> Table:
    """Five dependent columns, one with a long tail: most records are rare, as in real data."""
    rng = np.random.default_rng(seed)
    a = rng.choice(3, rows, p=[0.6, 0.35, 0.05])
    b = (a + rng.choice(4, rows, p=[0.6, 0.2, 0.1, 0.1])) % 4
    c = np.minimum(rng.zipf(1.6, rows), 30)
    d = (b * 2 + rng.choice(3, rows)) % 7
    e = rng.choice(8, rows)
    return Table.from_rows(
        list("abcde"), [tuple(f"v{x}" for x in r) for r in zip(a, b, c, d, e, strict=True)]
    )


def test_the_default_fit_trades_a_little_at_lengths_up_to_two_for_much_at_three_and_four() -> None:
    # the pairs-only fit is the best at lengths <= 2 and the worst at 3 and 4; the default fit
    # stays within 0.01 of it at lengths <= 2, well below the rounding, and far below it at 3, 4
    table = dependent_table(3000, 0)
    for k in (5, 10):
        error: dict[str, tuple[float, float, float]] = {}
        for fit in ("balanced", "pairs", "rounding"):
            out = synthesize_default(table, k, seed=1, fit=fit)
            lengths = length_utility(table, out, k, 4)
            report = UtilityReport(k, 4, fit, 0.0, table.n_rows, out.n_rows, 0, lengths)
            error[fit] = (report.mre_up_to(2), lengths[3].mre, lengths[4].mre)
        assert error["balanced"][0] <= error["pairs"][0] + 0.01
        assert error["balanced"][0] < error["rounding"][0] - 0.02
        assert error["balanced"][1] < error["pairs"][1] - 0.1
        assert error["balanced"][2] < error["pairs"][2] - 0.15


def test_rows_longer_than_the_seekers_do_not_look_for_partners() -> None:
    # two rows that merge; with seekers = 0 no row looks for a partner, so none merges
    table = textbook()
    sub = sub_combinations(table)
    p = int(np.flatnonzero((sub.patterns == [2, 1, 1]).all(axis=1))[0])  # (Male, 18-20, 1)
    origin = np.array([p, p], dtype=np.int64)
    masks = np.array([0b011, 0b100], dtype=np.int64)  # (Male, 18-20) and (1)
    merged = merge_blocks(sub, 2, origin, masks, random.Random(0))
    assert sorted(merged[1].tolist()) == [0b111]
    kept = merge_blocks(sub, 2, origin, masks, random.Random(0), seekers=0)
    assert sorted(kept[1].tolist()) == [0b011, 0b100]
    # the one-attribute row looks, and finds the other
    looked = merge_blocks(sub, 2, origin, masks, random.Random(0), seekers=1)
    assert sorted(looked[1].tolist()) == [0b111]


def test_an_unknown_fit_is_refused() -> None:
    with pytest.raises(UnknownMode):
        synthesize_default(textbook(), 2, seed=1, fit="exact")  # type: ignore[arg-type]
