"""The one rules module: age groups, text and list limits, as both ends apply them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import default_registry
from schemas.errors import ReasonCode
from schemas.rules import (
    ADULT_BAND_UNKNOWN,
    AGE_GROUPS,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    MINOR_BAND_UNKNOWN,
    age_bounds,
    age_conflict,
    age_group,
    age_group_of,
    max_chars,
    max_items,
)
from schemas.validate import validator_for
from tests.trust.store.builders import case_record


@pytest.mark.parametrize(
    ("age", "group"),
    [
        (None, "Unknown"),
        (-1, "Unknown"),
        (0, "0-11"),
        (11, "0-11"),
        (12, "12-17"),
        (17, "12-17"),
        (18, "18-24"),
        (24, "18-24"),
        (25, "25-34"),
        (34, "25-34"),
        (35, "35-44"),
        (44, "35-44"),
        (45, "45+"),
        (99, "45+"),
        (120, "45+"),
        (121, "Unknown"),
        (130, "Unknown"),
    ],
)
def test_age_groups(age: int | None, group: str) -> None:
    assert age_group(age) == group
    assert group in AGE_GROUPS


def test_the_release_and_the_store_use_the_same_age_groups() -> None:
    from trust.release import streams

    assert streams.age_group is age_group and streams.AGE_GROUPS is AGE_GROUPS


def test_id_and_text_limits() -> None:
    assert max_chars("$.case_id") == MAX_ID_CHARS
    assert max_chars("$.victims[].victim_id") == MAX_ID_CHARS
    assert max_chars("$.victims[].identifiers.given_names") == MAX_TEXT_CHARS
    assert max_items("$.victims") == 200 and max_items("$.event.forms_of_exploitation") == 64


CASE = default_registry().current("case_record")
RETRACTION = default_registry().current("record_retraction")


def _retraction(case_id: str) -> dict[str, object]:
    return {"case_id": case_id, "reason": "Other"}


@pytest.mark.parametrize("decoded", [False, True])
def test_a_long_or_nul_case_reference_is_refused_on_both_sides(decoded: bool) -> None:
    v = validator_for(RETRACTION, decoded=decoded)
    assert v.problems(_retraction("C" * MAX_ID_CHARS)) == []
    too_long = v.problems(_retraction("C" * (MAX_ID_CHARS + 1)))
    assert [(p.path, p.code) for p in too_long] == [("$.case_id", ReasonCode.TOO_LARGE)]
    nul = v.problems(_retraction("CR-2024\x00-7"))
    assert [(p.path, p.code) for p in nul] == [("$.case_id", ReasonCode.BAD_FORMAT)]


@given(st.text(min_size=1, max_size=300))
def test_problems_never_echo_the_value(value: str) -> None:
    for decoded in (False, True):
        for p in validator_for(RETRACTION, decoded=decoded).problems(_retraction(value)):
            if len(value) >= 3:
                assert value not in p.expected and value not in p.path


def test_source_ids_are_matched_in_full() -> None:
    from schemas.rules import is_source_id

    assert is_source_id("police") and is_source_id("ngo_haven-2") and is_source_id("a" * 63)
    for bad in ("police\n", "\npolice", "Police", "p", "a" * 64, "", None, b"police"):
        assert not is_source_id(bad), bad


def test_int_and_date_ranges() -> None:
    import datetime as dt

    from schemas.rules import EARLIEST_DATE, RANGES, date_in_range, int_range

    assert (
        int_range("$.victims[].age_at_identification")
        == RANGES["$.victims[].age_at_identification"]
    )
    assert int_range("$.partition", "int") == (-(2**31), 2**31 - 1)
    assert int_range("$.offset", "long") == (-(2**63), 2**63 - 1)
    today = dt.date(2026, 1, 1)
    assert date_in_range(EARLIEST_DATE, today) and date_in_range(today, today)
    assert not date_in_range(dt.date(1899, 12, 31), today)
    assert not date_in_range(dt.date(2026, 1, 2), today)


# -- ages: what an exact age, an age range and a majority status may say together ---------------


@pytest.mark.parametrize(
    ("age", "lower", "upper", "status", "path"),
    [
        (None, None, None, "Unknown", None),
        (16, 12, 17, "Minor", None),
        (None, 15, 20, "Minor", None),  # overlaps: the status narrows the band to 15-17
        (None, 15, 20, "Adult", None),
        (30, None, None, "Adult", None),
        (None, 20, 18, "Unknown", "$.victims[].age_range_upper"),
        (19, 12, 17, "Unknown", "$.victims[].age_at_identification"),
        (11, 12, None, "Unknown", "$.victims[].age_at_identification"),
        (18, None, None, "Minor", "$.victims[].majority_status"),
        (17, None, None, "Adult", "$.victims[].majority_status"),
        (None, 18, 20, "Minor", "$.victims[].majority_status"),
        (None, None, 17, "Adult", "$.victims[].majority_status"),
    ],
)
def test_age_conflicts(
    age: int | None, lower: int | None, upper: int | None, status: str, path: str | None
) -> None:
    found = age_conflict(age, lower, upper, status)
    assert (found[0] if found else None) == path


@pytest.mark.parametrize(
    ("age", "lower", "upper", "status", "group"),
    [
        (30, 9, 17, "Minor", "25-34"),  # the exact age first (validation refuses the mix)
        (None, 18, 20, "Unknown", "18-24"),  # CTDC 18--20: inside one band
        (None, 9, 17, "Unknown", MINOR_BAND_UNKNOWN),  # CTDC 9--17: both children's bands
        (None, 0, 8, "Unknown", "0-11"),
        (None, None, None, "Minor", MINOR_BAND_UNKNOWN),  # a minor alone counts in 0-17
        (None, None, None, "Adult", ADULT_BAND_UNKNOWN),  # an adult alone in 18+
        (None, 30, 38, "Unknown", ADULT_BAND_UNKNOWN),
        (None, 48, None, "Unknown", "45+"),
        (None, 15, 20, "Minor", "12-17"),  # the status narrows the band
        (None, 15, 20, "Adult", "18-24"),
        (None, 15, 20, "Unknown", "Unknown"),  # a minor or an adult
        (None, None, 17, "Unknown", MINOR_BAND_UNKNOWN),  # <18
        (None, 0, None, "Unknown", "Unknown"),
        (None, None, None, "Unknown", "Unknown"),
    ],
)
def test_the_age_group_decision_table(
    age: int | None, lower: int | None, upper: int | None, status: str, group: str
) -> None:
    assert age_group_of(age, lower, upper, status) == group
    assert group in AGE_GROUPS


def test_the_majority_status_narrows_the_range() -> None:
    assert age_bounds(None, None, "Minor") == (None, 17)
    assert age_bounds(None, None, "Adult") == (18, None)
    assert age_bounds(12, 30, "Minor") == (12, 17)
    assert age_bounds(12, 30, "Unknown") == (12, 30)


def test_the_validator_refuses_contradicting_age_facts_with_a_reason() -> None:
    check = validator_for(CASE)
    record = case_record("police", "c1", [("v1", "Feminine", 19)])
    victim = record["victims"][0]
    victim["majority_status"] = "Minor"
    found = check.problems(record)
    assert [(p.path, p.code) for p in found] == [
        ("$.victims[0].majority_status", ReasonCode.INVALID_RECORD)
    ]
    assert "19" not in str(found[0])
    victim["majority_status"] = "Adult"
    assert check.problems(record) == []
    # the trust's validator (after decoding) applies the same rule
    victim["age_range_lower"], victim["age_range_upper"] = 20, 18
    assert [p.path for p in validator_for(CASE, decoded=True).problems(record)] == [
        "$.victims[0].age_range_upper"
    ]
