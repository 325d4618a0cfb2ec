"""The classic mode, step by step, on small hand-worked examples (k = 2)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tests.trust.synthesize.examples import textbook
from trust.synthesize.classic import (
    left_out,
    seeded_records,
    sort_by_length,
    suppress_to_multiples,
    synthesize_classic,
    unseeded_records,
)
from trust.synthesize.combinations import RowSets
from trust.synthesize.data import Table


class FirstColumnFirst(random.Random):
    """A stand-in for the sampler's random draw: always the candidate of the lowest column (then
    the lowest value), so a hand-worked example has one outcome."""

    def choices(self, population: Sequence[Any], weights: Any = None, **_: Any) -> list[Any]:
        return [min(population)]


def names(table: Table, rowsets: RowSets, records: Sequence[tuple[int, ...]]) -> Counter[str]:
    """Records as a multiset of ``col:value;…`` strings, for readable comparisons."""
    return Counter(
        ";".join(table.attribute(rowsets.column[a], rowsets.code_of(a)) for a in r) for r in records
    )


def test_step1_seeds_each_record_with_its_k_anonymous_core() -> None:
    table = textbook()
    rowsets = RowSets(table)
    seeded = seeded_records(table, 2, FirstColumnFirst(), rowsets)
    # Female,18-20,1: gender first (3 rows), then neither 18-20 nor 1 reaches 2 rows with Female
    assert names(table, rowsets, seeded) == Counter(
        {
            "gender:Female": 1,
            "gender:Male;age:18-20;forced_labour:1": 2,
            "gender:Female;age:30-38": 2,
        }
    )


def test_step1_another_draw_keeps_age_and_flag_and_drops_female() -> None:
    # 18-20 drawn first keeps (18-20, 1) and drops Female
    table = Table.from_rows(
        ("age", "forced_labour", "gender"),
        [(a, f, g) for g, a, f in (row for row in map(tuple, textbook().rows()))],
    )
    rowsets = RowSets(table)
    seeded = seeded_records(table, 2, FirstColumnFirst(), rowsets)
    assert names(table, rowsets, seeded) == Counter(
        {
            "age:18-20;forced_labour:1": 1,
            "age:18-20;forced_labour:1;gender:Male": 2,
            "age:30-38;gender:Female": 2,
        }
    )


def test_step1_samples_in_proportion_to_joint_counts() -> None:
    # record 1's three attributes each have count 3, so Female is drawn first a third of the time
    table = textbook()
    rowsets = RowSets(table)
    outcomes = Counter()
    for seed in range(600):
        first = seeded_records(table, 2, random.Random(seed), rowsets)[0]
        outcomes[len(first)] += 1
    assert set(outcomes) == {1, 2}
    assert 150 <= outcomes[1] <= 250  # expected 200 (a third); ±4 standard deviations


def test_step2_recombines_left_out_attributes_by_joint_frequency() -> None:
    # every pair with the first column is unique, (b, c) pairs are held twice
    table = Table.from_rows(
        ("a", "b", "c"),
        [("a1", "b1", "c1"), ("a2", "b1", "c1"), ("a1", "b2", "c2"), ("a2", "b2", "c2")],
    )
    rowsets = RowSets(table)
    seeded = seeded_records(table, 2, FirstColumnFirst(), rowsets)
    assert names(table, rowsets, seeded) == Counter({"a:a1": 2, "a:a2": 2})
    assert sum(left_out(table, 2, rowsets, seeded).values()) == 8
    unseeded = unseeded_records(table, 2, FirstColumnFirst(), rowsets, seeded)
    assert names(table, rowsets, unseeded) == Counter({"b:b1;c:c1": 2, "b:b2;c:c2": 2})


def test_step2_adds_nothing_that_rounding_would_remove() -> None:
    # Female: 3 rows, 2 after rounding to k = 2; seeded keeps 2 of them, so none is re-added
    table = textbook()
    rowsets = RowSets(table)
    seeded = seeded_records(table, 2, FirstColumnFirst(), rowsets)
    assert left_out(table, 2, rowsets, seeded) == {}
    assert unseeded_records(table, 2, FirstColumnFirst(), rowsets, seeded) == []


def test_step3_suppresses_down_to_multiples_of_k() -> None:
    # seeded + unseeded records without rounding: Female, 18-20 and 1 appear 3 times; k = 2 keeps 2 of each
    table = textbook()
    rowsets = RowSets(table)
    fem, male = rowsets.attribute_id(0, 1), rowsets.attribute_id(0, 2)
    young, older = rowsets.attribute_id(1, 1), rowsets.attribute_id(1, 2)
    flag = rowsets.attribute_id(2, 1)
    records = [(fem,), (young, flag), (male, young, flag), (male, young, flag)]
    records += [(fem, older), (fem, older)]
    out = suppress_to_multiples(table, 2, random.Random(3), rowsets, records)
    counts = Counter(a for r in out for a in r)
    assert counts == {fem: 2, male: 2, young: 2, older: 2, flag: 2}
    assert all(out) and sum(map(len, out)) == 10


def test_step4_sorts_by_decreasing_length_then_values() -> None:
    table = textbook()
    rowsets = RowSets(table)
    fem, male = rowsets.attribute_id(0, 1), rowsets.attribute_id(0, 2)
    young, flag = rowsets.attribute_id(1, 1), rowsets.attribute_id(2, 1)
    codes = sort_by_length(table, rowsets, [(fem,), (young, flag), (male, young, flag), (male,)])
    assert list(table.with_codes(codes).rows()) == [
        ("Male", "18-20", "1"),
        ("", "18-20", "1"),
        ("Female", "", ""),
        ("Male", "", ""),
    ]


def test_all_four_steps_on_the_textbook_example() -> None:
    out = synthesize_classic(textbook(), 2, seed=5)
    rows = list(out.rows())
    counts = Counter(cell for row in rows for cell in zip(out.columns, row, strict=True) if cell[1])
    assert counts == {
        ("gender", "Female"): 2,
        ("gender", "Male"): 2,
        ("age", "18-20"): 2,
        ("age", "30-38"): 2,
        ("forced_labour", "1"): 2,
    }
    lengths = [sum(1 for c in row if c) for row in rows]
    assert lengths == sorted(lengths, reverse=True)
    assert synthesize_classic(textbook(), 2, seed=5).codes.tolist() == out.codes.tolist()
