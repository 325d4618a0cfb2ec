"""The companion aggregate and the utility report, on the same hand-made table."""

from __future__ import annotations

import pytest

from trust.synthesize import InvalidReportingLength, InvalidResolution, Table
from trust.synthesize.aggregate import companion_aggregate
from trust.synthesize.utility import UtilityReport, length_utility

SENSITIVE = Table.from_rows(
    ("sex", "age", "form"),
    [
        ("F", "18", "sexual"),
        ("F", "18", "sexual"),
        ("F", "30", "labour"),
        ("M", "30", "labour"),
        ("M", "30", "labour"),
        ("M", "", "labour"),
    ],
)


def test_counts_up_to_the_length_rounded_down_to_multiples_of_k() -> None:
    agg = [(a.combination, a.count) for a in companion_aggregate(SENSITIVE, 2, 2)]
    assert agg == [
        ("sex:F", 2),
        ("sex:M", 2),
        ("age:18", 2),
        ("age:30", 2),
        ("form:labour", 4),
        ("form:sexual", 2),
        ("sex:F;age:18", 2),
        ("sex:M;age:30", 2),
        ("sex:F;form:sexual", 2),
        ("sex:M;form:labour", 2),
        ("age:18;form:sexual", 2),
        ("age:30;form:labour", 2),
    ]
    assert all(a.combination.count(";") <= 2 for a in companion_aggregate(SENSITIVE, 2, 3))
    with pytest.raises(InvalidResolution):
        companion_aggregate(SENSITIVE, 0, 2)
    with pytest.raises(InvalidReportingLength):
        companion_aggregate(SENSITIVE, 2, 0)


def test_utility_of_a_perfect_copy_and_of_a_partial_one() -> None:
    same = length_utility(SENSITIVE, SENSITIVE, 2, 3)
    assert all(u.mae == 0 and u.mre == 0 and u.preserved == 1 for u in same.values())
    # keep only the labour rows: sexual (2) and its pairs vanish, labour pairs stay exact
    part = SENSITIVE.with_codes(SENSITIVE.codes[2:])
    u = length_utility(SENSITIVE, part, 2, 2)
    # singles with count >= 2: F 3→1, M 3, 18 2→0, 30 3, labour 4, sexual 2→0
    assert u[1].combinations == 6
    assert u[1].mae == pytest.approx((2 + 0 + 2 + 0 + 0 + 2) / 6)
    assert u[1].mre == pytest.approx((2 / 3 + 1 + 1) / 6)
    assert u[1].preserved == pytest.approx(4 / 6)
    report = UtilityReport(2, 2, "default", 0.5, 6, 4, 0, u)
    data = report.to_json()
    assert list(data) == [
        "k",
        "length",
        "mode",
        "seconds",
        "rows_in",
        "rows_out",
        "expansion",
        "leaks",
        "lengths",
    ]
    assert list(data["lengths"]) == ["1", "2"]
    assert set(data["lengths"]["1"]) == {"mae", "mre", "preserved"}
    assert data["expansion"] == pytest.approx(4 / 6 - 1, abs=1e-4)
