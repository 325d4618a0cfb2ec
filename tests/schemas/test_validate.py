"""Validation reports every problem by path and reason, never the value."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import default_registry
from schemas.errors import InvalidRecord, ReasonCode
from schemas.validate import validator_for

from .conftest import sample_record

V = validator_for(default_registry().current("case_record"))


def test_valid_record_has_no_problems() -> None:
    assert V.problems(sample_record()) == []


def test_every_problem_is_reported_with_its_path() -> None:
    rec = sample_record()
    rec["victims"][0]["sex"] = "F"
    rec["victims"][0]["age_at_identification"] = 999
    rec["event"]["country_of_exploitation"] = "Narnia"
    del rec["case_id"]
    found = {(p.path, p.code) for p in V.problems(rec)}
    assert found == {
        ("$.victims[0].sex", ReasonCode.UNKNOWN_CODE),
        ("$.victims[0].age_at_identification", ReasonCode.OUT_OF_RANGE),
        ("$.event.country_of_exploitation", ReasonCode.UNKNOWN_CODE),
        ("$.case_id", ReasonCode.MISSING_VALUE),
    }


def test_unknown_is_a_value_not_a_null() -> None:
    rec = sample_record()
    rec["victims"][0]["sex"] = "Unknown"
    assert V.problems(rec) == []
    rec["victims"][0]["sex"] = None
    assert [p.code for p in V.problems(rec)] == [ReasonCode.UNKNOWN_CODE]


def test_end_before_start_is_out_of_range() -> None:
    rec = sample_record()
    rec["event"]["end_date"] = dt.date(2021, 1, 1)
    assert [(p.path, p.code) for p in V.problems(rec)] == [
        ("$.event.end_date", ReasonCode.OUT_OF_RANGE)
    ]


def test_duplicate_victim_ids_in_a_case() -> None:
    rec = sample_record()
    rec["victims"].append(dict(rec["victims"][0]))
    assert [p.path for p in V.problems(rec)] == ["$.victims[1].victim_id"]


@given(st.text(min_size=3, max_size=30).filter(lambda s: s.strip() and s not in {"Unknown"}))
def test_problems_never_contain_the_value(value: str) -> None:
    rec = sample_record()
    rec["victims"][0]["sex"] = value
    rec["victims"][0]["identifiers"]["date_of_birth"] = value
    with pytest.raises(InvalidRecord) as info:
        V.check(rec)
    text = str(info.value) + " ".join(str(p) for p in info.value.problems)
    assert value not in text.replace("Gender", "").replace("one of", "") or value in {
        "Feminine",
        "Masculine",
        "NonConforming",
        "TransgenderFeminine",
        "TransgenderMasculine",
        "NonSpecifiedUnknown",
    }


def test_decoded_mode_checks_only_value_rules_and_agrees_on_them() -> None:
    decoded = validator_for(default_registry().current("case_record"), decoded=True)
    rec = sample_record()
    rec["victims"][0]["age_at_identification"] = 150
    rec["event"]["end_date"] = dt.date(2000, 1, 1)
    assert {p.path for p in decoded.problems(rec)} == {"$.victims[0].age_at_identification"}
    rec["victims"][0]["age_at_identification"] = 15
    assert [p.path for p in decoded.problems(rec)] == ["$.event.end_date"]
    assert [p.path for p in V.problems(rec)] == ["$.event.end_date"]
