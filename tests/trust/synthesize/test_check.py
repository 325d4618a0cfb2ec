"""The independent checker on hand-made tables: what it counts as a leak, and what it refuses."""

from __future__ import annotations

import pytest

from trust.synthesize.check import check
from trust.synthesize.errors import ColumnMismatch, InvalidResolution

COLUMNS = ("sex", "age", "form")
SENSITIVE = [
    ("F", "18", "sexual"),
    ("F", "18", "sexual"),
    ("F", "30", "labour"),
    ("M", "30", "labour"),
    ("M", "30", "labour"),
    ("M", "", "labour"),
]


def test_rows_held_by_k_sensitive_rows_pass() -> None:
    synthetic = [("F", "18", "sexual"), ("M", "30", ""), ("", "", "labour"), ("F", "", "")]
    verdict = check(COLUMNS, SENSITIVE, COLUMNS, synthetic, 2)
    assert verdict.ok and verdict.leaks == 0
    assert verdict.rows_checked == 4 and verdict.distinct_rows == 4


def test_every_leaking_sub_combination_is_counted_by_length() -> None:
    # (F, 30, labour) is held once; of its parts, (F, 30) and (F, labour) are held once too,
    # while (30, labour), F, 30 and labour are each held at least 3 times: 3 leaks
    verdict = check(COLUMNS, SENSITIVE, COLUMNS, [("F", "30", "labour")], 2)
    assert verdict.leaks_by_length == {2: 2, 3: 1}
    assert not verdict.ok


def test_a_value_the_sensitive_data_never_holds_leaks() -> None:
    verdict = check(COLUMNS, SENSITIVE, COLUMNS, [("X", "", "")], 1)
    assert verdict.leaks_by_length == {1: 1}


def test_single_counts_are_compared_with_the_rounded_down_ones() -> None:
    # k = 2: F 3 → 2, M 3 → 2, 18 2, 30 3 → 2, sexual 2, labour 4
    good = [("F", "18", "sexual"), ("F", "18", "sexual"), ("M", "30", "labour")]
    good += [("M", "30", "labour"), ("", "", "labour"), ("", "", "labour")]
    assert check(COLUMNS, SENSITIVE, COLUMNS, good, 2).single_count_mismatches == 0
    assert check(COLUMNS, SENSITIVE, COLUMNS, good[:-1], 2).single_count_mismatches == 1


def test_whitespace_and_empty_cells_are_missing() -> None:
    verdict = check(COLUMNS, SENSITIVE, COLUMNS, [(" F ", "  ", "")], 3)
    assert verdict.ok


def test_it_refuses_tables_it_cannot_compare() -> None:
    with pytest.raises(ColumnMismatch):
        check(COLUMNS, SENSITIVE, ("sex", "form", "age"), [], 2)
    with pytest.raises(ColumnMismatch):
        check(COLUMNS, SENSITIVE, COLUMNS, [("F", "18")], 2)
    with pytest.raises(InvalidResolution):
        check(COLUMNS, SENSITIVE, COLUMNS, [], 0)
