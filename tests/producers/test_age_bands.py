"""Age bands in one column (``producers/age_bands.py``) and majority status, as a mapping reads
them into a victim's age range: the band grammar, a per-row error that never quotes the cell,
the mapping's checks and codes, and the validator's refusal of contradicting age facts."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.age_bands import AgeBand, AgeBandError, parse_age_band
from producers.mapping import AGE_RANGE, TARGETS, Mapping, MappingError
from producers.readers import Row
from schemas.codec import default_registry
from schemas.errors import ReasonCode
from schemas.validate import validator_for

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = fastavro.parse_schema(
    json.loads((ROOT / "schemas" / "avro" / "case_record.avsc").read_text("utf-8"))
)
TODAY = date(2026, 1, 1)
BAND = "$.victims[].age_range"
MESSAGES = {
    "an age band such as 18-20, 18--20, 18 to 20, 45+ or <18",
    "an age band within 0 to 120, lower bound first",
}
STATUS = "$.victims[].majority_status"


@pytest.mark.parametrize(
    ("cell", "band"),
    [
        ("18--20", AgeBand(18, 20)),
        ("9--17", AgeBand(9, 17)),
        ("30--38", AgeBand(30, 38)),
        ("18-20", AgeBand(18, 20)),
        (" 18 to 20 ", AgeBand(18, 20)),
        ("18 TO 20", AgeBand(18, 20)),
        ("18 \u2013 20", AgeBand(18, 20)),
        ("18.0-20.0", AgeBand(18, 20)),
        ("45+", AgeBand(45, None)),
        (">=45", AgeBand(45, None)),
        (">44", AgeBand(45, None)),
        ("45 and over", AgeBand(45, None)),
        ("<18", AgeBand(None, 17)),
        ("under 18", AgeBand(None, 17)),
        ("<=17", AgeBand(None, 17)),
        ("17", AgeBand(17, 17)),
        ("", None),
        ("  ", None),
        ("-99", None),
    ],
)
def test_band_grammar(cell: str, band: AgeBand | None) -> None:
    assert parse_age_band(cell) == band


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("adult", ReasonCode.BAD_FORMAT),
        ("18-", ReasonCode.BAD_FORMAT),
        ("1e3", ReasonCode.BAD_FORMAT),
        ("18-20-22", ReasonCode.BAD_FORMAT),
        ("20-18", ReasonCode.OUT_OF_RANGE),
        ("130+", ReasonCode.OUT_OF_RANGE),
        ("<0", ReasonCode.OUT_OF_RANGE),
    ],
)
def test_band_errors_name_what_was_expected_not_the_cell(cell: str, code: ReasonCode) -> None:
    with pytest.raises(AgeBandError) as raised:
        parse_age_band(cell)
    assert raised.value.code == code
    assert str(raised.value) in MESSAGES  # fixed texts: the cell is never quoted


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 120), st.integers(0, 120), st.sampled_from(["--", "-", " to ", "_"]))
def test_every_written_band_reads_back(a: int, b: int, sep: str) -> None:
    lo, hi = min(a, b), max(a, b)
    assert parse_age_band(f"{lo}{sep}{hi}") == AgeBand(lo, hi)
    assert parse_age_band(f"{lo}+") == AgeBand(lo, None)
    if hi >= 1:
        assert parse_age_band(f"<{hi}") == AgeBand(None, hi - 1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12))
def test_any_cell_is_a_band_missing_or_a_clean_error(cell: str) -> None:
    try:
        band = parse_age_band(cell)
    except AgeBandError as e:
        assert e.code in (ReasonCode.BAD_FORMAT, ReasonCode.OUT_OF_RANGE)
        assert str(e) in MESSAGES
        return
    if band is not None:
        assert band.lower is not None or band.upper is not None
        for bound in (band.lower, band.upper):
            assert bound is None or 0 <= bound <= 120
        if band.lower is not None and band.upper is not None:
            assert band.lower <= band.upper


def ctdc(fields: dict[str, Any]) -> Mapping:
    return Mapping.from_dict(
        {
            "source_id": "ngo-x",
            "organisation_type": "NGO",
            "case_column": "id",
            "fields": fields,
        }
    )


def rows(*cells: dict[str, str | None]) -> list[Row]:
    return [Row(i + 1, {"id": f"c{i}", **c}) for i, c in enumerate(cells)]


def test_the_targets_list_the_band_and_the_majority_status() -> None:
    assert TARGETS[BAND] is AGE_RANGE and AGE_RANGE.kind == "range"
    assert TARGETS[STATUS].kind == "code"
    assert TARGETS[STATUS].symbols == {"Adult", "Minor", "Unknown"}
    assert TARGETS["$.victims[].age_range_lower"].bounds == (0, 120)


def test_a_ctdc_band_and_status_become_the_victims_age_range() -> None:
    m = ctdc({BAND: {"column": "ageBroad"}, STATUS: {"column": "majorityStatus", "missing": "-99"}})
    batch = m.map_rows(
        rows(
            {"ageBroad": "9--17", "majorityStatus": "Minor"},
            {"ageBroad": "30--38", "majorityStatus": "adult"},
            {"ageBroad": "-99", "majorityStatus": "Minor"},
            {"ageBroad": "45+", "majorityStatus": "-99"},
            {"ageBroad": None, "majorityStatus": None},
        ),
        today=TODAY,
    )
    assert batch.problems == []
    got = [
        (v["age_range_lower"], v["age_range_upper"], v["majority_status"])
        for r in batch.records
        for v in r.record["victims"]
    ]
    assert got == [
        (9, 17, "Minor"),
        (30, 38, "Adult"),
        (None, None, "Minor"),
        (45, None, "Unknown"),
        (None, None, "Unknown"),
    ]
    for r in batch.records:
        validate(r.record, SCHEMA, raise_errors=True)


def test_a_bad_band_is_a_per_row_error_without_the_value() -> None:
    m = ctdc({BAND: "ageBroad"})
    batch = m.map_rows(rows({"ageBroad": "18--20"}, {"ageBroad": "about twenty"}), today=TODAY)
    assert len(batch.records) == 1
    (problem,) = batch.problems
    assert (problem.row, problem.path, problem.code) == (
        2,
        "$.victims[0].age_range",
        ReasonCode.BAD_FORMAT,
    )
    assert "ageBroad" in problem.expected and "twenty" not in str(problem)


def test_band_codes_and_missing_values_of_the_mapping() -> None:
    m = ctdc({BAND: {"column": "age", "codes": {"Child": "<18", "Adult": "18+"}, "missing": "n/k"}})
    batch = m.map_rows(
        rows({"age": "child"}, {"age": "ADULT"}, {"age": "N/K"}, {"age": "25-34"}), today=TODAY
    )
    assert batch.problems == []
    got = [
        (v["age_range_lower"], v["age_range_upper"])
        for r in batch.records
        for v in r.record["victims"]
    ]
    assert got == [(None, 17), (18, None), (None, None), (25, 34)]


def test_majority_status_from_yes_no_and_one_zero_codes() -> None:
    m = ctdc(
        {
            STATUS: {
                "column": "isMinor",
                "codes": {"1": "Minor", "0": "Adult", "yes": "Minor", "no": "Adult"},
            }
        }
    )
    batch = m.map_rows(rows({"isMinor": "1"}, {"isMinor": "0"}, {"isMinor": "Yes"}), today=TODAY)
    assert [v["majority_status"] for r in batch.records for v in r.record["victims"]] == [
        "Minor",
        "Adult",
        "Minor",
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {BAND: "a", "$.victims[].age_range_lower": "b"},
        {BAND: {"column": "a", "codes": {"Child": "young"}}},
        {BAND: {"column": "a", "codes": {"Child": "-99"}}},
    ],
)
def test_bad_band_mappings_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        ctdc(fields)


def test_a_band_target_is_not_a_constant() -> None:
    with pytest.raises(MappingError):
        Mapping.from_dict(
            {
                "source_id": "ngo-x",
                "organisation_type": "NGO",
                "case_column": "id",
                "constants": {BAND: "18-20"},
            }
        )


def test_contradicting_age_facts_are_refused_before_sending() -> None:
    m = ctdc(
        {
            "$.victims[].age_at_identification": {"column": "age", "type": "int"},
            BAND: "band",
            STATUS: "status",
        }
    )
    batch = m.map_rows(
        rows(
            {"age": "16", "band": "12-17", "status": "Minor"},
            {"age": "19", "band": "12-17", "status": None},
            {"age": "16", "band": None, "status": "Adult"},
            {"age": None, "band": "25-34", "status": "Minor"},
        ),
        today=TODAY,
    )
    check = validator_for(default_registry().current("case_record"))
    found = [check.problems(r.record) for r in batch.records]
    assert found[0] == []
    assert [(p.path, p.code) for p in found[1]] == [
        ("$.victims[0].age_at_identification", ReasonCode.INVALID_RECORD)
    ]
    assert [p.path for p in found[2]] == ["$.victims[0].majority_status"]
    assert [p.path for p in found[3]] == ["$.victims[0].majority_status"]
