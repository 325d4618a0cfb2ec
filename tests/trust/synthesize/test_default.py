"""The default mode's steps: the exact best partition, rounding down, merging."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator

import numpy as np
from hypothesis import given, settings

from tests.trust.synthesize.examples import tables, textbook
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
@given(tables(max_columns=4, max_rows=50))
def test_merging_keeps_rows_held_and_singles_and_never_adds_pair_error(table: Table) -> None:
    k = 2
    m = table.n_columns
    sub = sub_combinations(table)
    origin, masks = partition_blocks(sub, best_partitions(pair_values(sub, k, m), m), k)
    before = _codes_of(sub, origin, masks)
    origin2, masks2 = merge_blocks(sub, k, origin, masks, random.Random(0))
    after = _codes_of(sub, origin2, masks2)
    assert all(sub.support[p, mask] >= k for p, mask in zip(origin2, masks2, strict=True))
    for j in range(m):
        held_before = Counter(c for c in before[:, j].tolist() if c)
        assert held_before == Counter(c for c in after[:, j].tolist() if c)
    assert after.shape[0] <= before.shape[0]
    assert pair_error(table, after, k) <= pair_error(table, before, k) + 1e-9
