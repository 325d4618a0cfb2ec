"""The one rules module: age groups, text and list limits, as both ends apply them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import default_registry
from schemas.errors import ReasonCode
from schemas.rules import (
    AGE_GROUPS,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    age_group,
    max_chars,
    max_items,
)
from schemas.validate import validator_for


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
