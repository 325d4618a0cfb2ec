"""Agency exports → ICS-TIP case records: simulated agencies, bad rows, bad mapping files."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.mapping import SIBLING_WITHHELD, Mapping, MappingError
from producers.readers import Row, read_rows
from producers.simulate import SOURCES, simulate
from producers.simulate.faults import bad_rows
from producers.simulate.population import NAMES
from schemas.errors import ReasonCode

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = fastavro.parse_schema(
    json.loads((ROOT / "schemas" / "avro" / "case_record.avsc").read_text("utf-8"))
)
TODAY = date(2026, 1, 1)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(11, 1500, out)
    return out


def minimal(**fields: Any) -> dict[str, Any]:
    return {
        "source_id": "ngo_test",
        "organisation_type": "NGO",
        "case_column": "case",
        "victim_column": "who",
        "fields": fields,
    }


def rows(*dicts: dict[str, str | None]) -> list[Row]:
    return [Row(i, d) for i, d in enumerate(dicts, start=1)]


def unindexed(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


# --- simulated agencies ------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_every_simulated_export_maps_cleanly_and_validates(sim: Path, source: str) -> None:
    mapping = Mapping.load(sim / source / "mapping.yaml")
    assert mapping.source_id == source
    data = list(read_rows(sim / source / "records.csv"))
    batch = mapping.map_rows(data, today=TODAY)
    assert batch.problems == []
    assert mapping.case_column is not None
    case_ids = {r.values[mapping.case_column] for r in data}
    assert {r.case_id for r in batch.records} == case_ids
    assert sorted(n for r in batch.records for n in r.rows) == [r.number for r in data]
    for rec in batch.records:
        assert rec.record["reporting_entity"]["source_id"] == source
        assert rec.record["case_id"] == rec.case_id
        assert validate(rec.record, SCHEMA, raise_errors=True)


def test_simulated_records_carry_constants_codes_and_defaults(sim: Path) -> None:
    mapping = Mapping.load(sim / "ngo_haven" / "mapping.yaml")
    batch = mapping.map_rows(read_rows(sim / "ngo_haven" / "records.csv"), today=TODAY)
    rec = batch.records[0].record
    assert rec["reporting_entity"]["organisation_type"] == "NGO"
    assert rec["reporting_entity"]["legal_basis"] == "Consent"
    assert rec["reporting_entity"]["consent_scope"] == ["Assistance", "Statistics"]
    assert rec["event"]["countries_of_transit"] == []  # not mapped: schema default
    assert rec["event"]["cross_border"] == "Unknown"
    assert rec["perpetrators"] == []
    assert all(
        v["sex"] in {"Feminine", "Masculine", "NonConforming", "Unknown"} for v in rec["victims"]
    )
    # lists built from separate records never share a list object
    other = batch.records[1].record
    assert (
        rec["reporting_entity"]["consent_scope"] is not other["reporting_entity"]["consent_scope"]
    )


@pytest.mark.parametrize("source", SOURCES)
def test_faulty_rows_are_reported_by_row_path_and_code_and_their_cases_withheld(
    sim: Path, tmp_path: Path, source: str
) -> None:
    mapping = Mapping.load(sim / source / "mapping.yaml")
    out = tmp_path / "bad.csv"
    faults = bad_rows(sim / source / "records.csv", out, 8, seed=3, mapping=mapping)
    assert len({f.row for f in faults}) == 8
    assert len({f.kind for f in faults}) >= 3
    data = list(read_rows(out))
    batch = mapping.map_rows(data, today=TODAY)
    by_row: dict[int, list[tuple[str, ReasonCode]]] = {}
    for p in batch.problems:
        assert p.row is not None
        by_row.setdefault(p.row, []).append((unindexed(p.path), p.code))
    for f in faults:
        assert (f.path, f.code) in by_row[f.row], (f, by_row[f.row])
    case_column = mapping.case_column
    assert case_column is not None
    bad_cases = {data[f.row - 1].values[case_column] for f in faults}
    bad_cases.discard(None)
    assert not bad_cases & {r.case_id for r in batch.records}
    fault_rows = {f.row for f in faults}
    for r in data:
        if r.number not in fault_rows and r.values[case_column] in bad_cases:
            assert by_row[r.number] == [("$", ReasonCode.INVALID_RECORD)]
    emitted_rows = {n for rec in batch.records for n in rec.rows}
    assert emitted_rows | set(by_row) == {r.number for r in data}
    assert not emitted_rows & set(by_row)


# --- row problems --------------------------------------------------------------------------------

SEX = {"column": "gender", "codes": {"F": "Feminine", "M": "Masculine", "?": "Unknown"}}


def test_unknown_code_names_row_path_and_codes_but_not_the_value() -> None:
    m = Mapping.from_dict(minimal(**{"$.victims[].sex": SEX}))
    batch = m.map_rows(rows({"case": "c1", "who": "v1", "gender": "female-ish"}), today=TODAY)
    (p,) = batch.problems
    assert (p.row, p.path, p.code) == (1, "$.victims[0].sex", ReasonCode.UNKNOWN_CODE)
    assert p.expected == "column 'gender': one of ?, F, M"
    assert "female-ish" not in str(p)
    assert batch.records == []


def test_sibling_rows_of_a_bad_row_are_withheld_with_invalid_record() -> None:
    m = Mapping.from_dict(minimal(**{"$.victims[].sex": SEX}))
    batch = m.map_rows(
        rows(
            {"case": "c1", "who": "v1", "gender": "F"},
            {"case": "c2", "who": "v9", "gender": "M"},
            {"case": "c1", "who": "v2", "gender": "Q"},
        ),
        today=TODAY,
    )
    assert [r.case_id for r in batch.records] == ["c2"]
    assert [(p.row, p.path, p.code) for p in batch.problems] == [
        (1, "$", ReasonCode.INVALID_RECORD),
        (3, "$.victims[1].sex", ReasonCode.UNKNOWN_CODE),
    ]
    assert batch.problems[0].expected == SIBLING_WITHHELD


def test_missing_case_or_victim_id_is_missing_value() -> None:
    m = Mapping.from_dict(minimal())
    batch = m.map_rows(rows({"case": None, "who": "v1"}, {"case": "c", "who": "  "}), today=TODAY)
    assert [(p.row, p.path, p.code) for p in batch.problems] == [
        (1, "$.case_id", ReasonCode.MISSING_VALUE),
        (2, "$.victims[].victim_id", ReasonCode.MISSING_VALUE),
    ]


@pytest.mark.parametrize(
    ("field", "spec", "value", "code"),
    [
        (
            "$.victims[].age_at_identification",
            {"column": "x", "type": "int"},
            "121",
            "out_of_range",
        ),
        ("$.victims[].age_at_identification", {"column": "x"}, "-1", "out_of_range"),
        ("$.victims[].age_at_identification", {"column": "x"}, "thirty", "bad_format"),
        ("$.event.year_of_exploitation", {"column": "x"}, "1949", "out_of_range"),
        ("$.event.year_of_exploitation", {"column": "x"}, "2101", "out_of_range"),
        ("$.event.start_date", {"column": "x", "format": "%d/%m/%Y"}, "31/02/2020", "bad_format"),
        ("$.event.start_date", {"column": "x", "format": "%d/%m/%Y"}, "2020-01-01", "bad_format"),
        ("$.event.start_date", {"column": "x"}, "2026-01-02", "out_of_range"),  # after TODAY
        ("$.event.start_date", {"column": "x"}, "1899-12-31", "out_of_range"),
        ("$.event.start_date", {"column": "x", "format": "%d %b %Y"}, "01 Foo 2020", "bad_format"),
    ],
)
def test_bad_cells(field: str, spec: dict[str, str], value: str, code: str) -> None:
    m = Mapping.from_dict(minimal(**{field: spec}))
    (p,) = m.map_rows(rows({"case": "c", "who": "v", "x": value}), today=TODAY).problems
    assert p.code == ReasonCode(code)
    assert unindexed(p.path) == field
    assert value not in str(p)


def test_end_before_start_is_out_of_range_on_the_row_that_makes_it() -> None:
    m = Mapping.from_dict(minimal(**{"$.event.start_date": "s", "$.event.end_date": "e"}))
    batch = m.map_rows(
        rows(
            {"case": "c", "who": "v1", "s": "2021-05-01"},
            {"case": "c", "who": "v2", "e": "2021-04-30"},
        ),
        today=TODAY,
    )
    assert [(p.row, p.path, p.code) for p in batch.problems] == [
        (1, "$", ReasonCode.INVALID_RECORD),
        (2, "$.event.end_date", ReasonCode.OUT_OF_RANGE),
    ]


def test_good_cells_convert_and_rows_of_a_case_merge() -> None:
    m = Mapping.from_dict(
        minimal(
            **{
                "$.victims[].sex": SEX,
                "$.victims[].age_at_identification": {"column": "age", "missing": ["unknown"]},
                "$.victims[].identifiers.date_of_birth": {"column": "dob", "format": "%d %b %Y"},
                "$.victims[].identifiers.given_names": "name",
                "$.victims[].identifiers.documents[].number": "doc",
                "$.event.forms_of_exploitation": {
                    "column": "forms",
                    "split": ";",
                    "codes": {
                        "sex": "SexualExploitation",
                        "both": ["ForcedLabour", "ForcedCriminality"],
                    },
                },
                "$.event.year_of_exploitation": "year",
            }
        )
    )
    batch = m.map_rows(
        rows(
            {
                "case": "c",
                "who": "v1",
                "gender": "?",
                "age": "unknown",
                "forms": "sex; ;both",
                "dob": "05 mar 2001",
                "name": " Ana ",
                "doc": "X1",
            },
            {
                "case": "c",
                "who": "v1",
                "gender": "F",
                "age": "23",
                "forms": "sex",
                "year": "2022",
                "doc": "X2",
            },
            {"case": "c", "who": "v2", "gender": "M", "doc": None},
        ),
        today=TODAY,
    )
    assert batch.problems == []
    (rec,) = batch.records
    assert rec.rows == (1, 2, 3)
    r = rec.record
    assert r["event"]["forms_of_exploitation"] == [
        "SexualExploitation", "ForcedLabour", "ForcedCriminality",
    ]  # fmt: skip
    assert r["event"]["year_of_exploitation"] == 2022
    v1, v2 = r["victims"]
    assert (v1["victim_id"], v1["sex"], v1["age_at_identification"]) == ("v1", "Feminine", 23)
    assert v1["identifiers"]["date_of_birth"] == date(2001, 3, 5)
    assert v1["identifiers"]["given_names"] == "Ana"
    assert [d["number"] for d in v1["identifiers"]["documents"]] == ["X1", "X2"]
    assert v1["identifiers"]["documents"][0]["issuing_country"] == "Unknown"
    assert (v2["sex"], v2["identifiers"]) == ("Masculine", None)
    assert validate(r, SCHEMA, raise_errors=True)


def test_jsonl_export_maps_like_csv(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"case": "c", "who": 7, "gender": "F"}\n', encoding="utf-8")
    m = Mapping.from_dict(minimal(**{"$.victims[].sex": SEX}))
    (rec,) = m.map_rows(read_rows(path), today=TODAY).records
    assert rec.record["victims"][0]["victim_id"] == "7"


def test_perpetrator_fields_without_perpetrator_id_are_missing_value() -> None:
    data = minimal(**{"$.perpetrators[].sex": SEX})
    data["perpetrator_column"] = "pid"
    m = Mapping.from_dict(data)
    batch = m.map_rows(
        rows(
            {"case": "c", "who": "v", "pid": "p1", "gender": "M"},
            {"case": "d", "who": "v", "pid": None, "gender": "F"},
        ),
        today=TODAY,
    )
    assert [r.record["perpetrators"] for r in batch.records] == [
        [{"perpetrator_id": "p1", "sex": "Masculine", "age_group": "Unknown", "citizenships": [],
          "roles": [], "legal_status": "Unknown"}]
    ]  # fmt: skip
    assert [(p.row, p.code) for p in batch.problems] == [(2, ReasonCode.MISSING_VALUE)]


# --- a Problem never echoes the cell ---------------------------------------------------------

ALL_NAMES = sorted({n for group in NAMES.values() for names in group for n in names})
personal = st.builds(
    lambda a, b, tail: f"{a} {b}{tail}",
    st.sampled_from(ALL_NAMES),
    st.sampled_from(ALL_NAMES),
    st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=6),
)


@settings(max_examples=150, deadline=None)
@given(personal, personal)
def test_problems_never_contain_the_cell_value(name: str, code: str) -> None:
    m = Mapping.from_dict(
        minimal(
            **{
                "$.victims[].identifiers.date_of_birth": {"column": "dob", "format": "%d/%m/%Y"},
                "$.victims[].sex": SEX,
                "$.victims[].age_at_identification": "age",
            }
        )
    )
    batch = m.map_rows(
        rows(
            {"case": "c", "who": "v", "dob": name, "gender": code, "age": name},
            {"case": "c", "who": "w", "dob": "01/01/2000"},
        ),
        today=TODAY,
    )
    assert len(batch.problems) == 4  # dob, sex, age on row 1; the sibling on row 2
    for p in batch.problems:
        text = str(p)
        assert name.strip() not in text and code.strip() not in text


# --- bad mapping files ---------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


HEAD = "source_id: ngo_x\norganisation_type: NGO\ncase_column: c\nvictim_column: v\n"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("colour: red\n", "unknown key"),
        ("fields:\n  $.victims[].shoe_size: s\n", "not an ICS-TIP target path"),
        ("fields:\n  $.victims[].victim_id: s\n", "not an ICS-TIP target path"),
        ("fields:\n  $.victims[].sex: {column: g, codes: {F: Female}}\n", "not an ICS-TIP Gender"),
        ("fields:\n  $.victims[].sex: {column: g, colour: red}\n", "unknown key"),
        ("fields:\n  $.victims[].sex: {column: g, split: ';'}\n", "split is for list"),
        ("fields:\n  $.victims[].sex: {column: g, type: int}\n", "does not fit"),
        ("fields:\n  $.event.year_of_exploitation: {column: y, format: '%Y'}\n", "format is for"),
        ("fields:\n  $.event.year_of_exploitation: {column: y, codes: {a: '1'}}\n", "codes are"),
        ("fields:\n  $.victims[].sex: {codes: {F: Feminine}}\n", "column is required"),
        ("fields:\n  $.perpetrators[].sex: g\n", "perpetrator_column"),
        ("constants:\n  $.reporting_entity.legal_basis: Whim\n", "not an ICS-TIP LegalBasis"),
        ("constants:\n  $.event.year_of_exploitation: '1800'\n", "from 1950"),
        (
            "constants:\n  $.event.industry: Unknown\nfields:\n  $.event.industry: i\n",
            "also mapped",
        ),
        ("fields:\n  $.victims[].sex: g\n  $.victims[].sex: h\n", "repeated key"),
        ("fields: [a, b]\n", "expected a mapping"),
        ("fields: {a: [\n", "not valid YAML"),
    ],
)
def test_bad_mapping_files_are_rejected(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(MappingError) as e:
        Mapping.load(write(tmp_path, HEAD + body))
    assert e.value.code is ReasonCode.BAD_MAPPING
    assert needle in str(e.value)


@pytest.mark.parametrize(
    "head",
    [
        "source_id: NGO X\norganisation_type: NGO\ncase_column: c\nvictim_column: v\n",
        "source_id: ngo_x\norganisation_type: Charity\ncase_column: c\nvictim_column: v\n",
        "source_id: ngo_x\norganisation_type: NGO\nvictim_column: v\n",
    ],
)
def test_bad_top_level_is_rejected(tmp_path: Path, head: str) -> None:
    with pytest.raises(MappingError):
        Mapping.load(write(tmp_path, head))


def test_yaml_scalars_stay_text(tmp_path: Path) -> None:
    m = Mapping.load(
        write(
            tmp_path,
            HEAD
            + "fields:\n  $.event.cross_border:\n"
            + "    {column: x, codes: {Y: CrossBorder, N: Domestic, 01: Unknown}}\n",
        )
    )
    batch = m.map_rows(rows({"c": "1", "v": "a", "x": "N"}, {"c": "2", "v": "a", "x": "Y"}))
    assert [r.record["event"]["cross_border"] for r in batch.records] == ["Domestic", "CrossBorder"]


# --- one rules module, one schema model ----------------------------------------------------------


@pytest.mark.parametrize("source_id", ["ngo_x\n", "ngo_x\n\n", "Ngo_x", "n", "ngo x"])
def test_the_source_id_is_matched_in_full(source_id: str) -> None:
    data = minimal()
    data["source_id"] = source_id
    with pytest.raises(MappingError, match="source_id"):
        Mapping.from_dict(data)


def test_case_id_is_set_by_the_case_column() -> None:
    with pytest.raises(MappingError, match="set by case_column"):
        Mapping.from_dict(minimal(**{"$.case_id": "x"}))


def test_ranges_come_from_the_rules_module() -> None:
    from producers.mapping import TARGETS
    from schemas.rules import RANGES

    ints = {p: t.bounds for p, t in TARGETS.items() if t.kind == "int"}
    assert ints == dict(RANGES)
    m = Mapping.from_dict(minimal(**{"$.victims[].age_first_trafficked": "x"}))
    lo, hi = RANGES["$.victims[].age_first_trafficked"]
    for value, ok in ((lo, True), (hi, True), (lo - 1, False), (hi + 1, False)):
        batch = m.map_rows(rows({"case": "c", "who": "v", "x": str(value)}), today=TODAY)
        assert (batch.problems == []) is ok, value


def test_shared_identifiers_come_from_a_column_with_a_constant_or_column_scheme() -> None:
    value = "$.victims[].identifiers.shared_ids[].value"
    scheme = "$.victims[].identifiers.shared_ids[].scheme"
    doc = {**minimal(**{value: {"column": "referral"}}), "constants": {scheme: "nrm_referral"}}
    m = Mapping.from_dict(doc)
    batch = m.map_rows(
        rows(
            {"case": "c1", "who": "v1", "referral": "NRM-0042"},
            {"case": "c1", "who": "v1", "referral": "NRM-0042"},  # the same again: kept once
            {"case": "c2", "who": "v1", "referral": ""},  # none: no shared identifier
        ),
        today=TODAY,
    )
    assert batch.problems == []
    first, second = (r.record["victims"][0]["identifiers"] for r in batch.records)
    assert first["shared_ids"] == [{"scheme": "nrm_referral", "value": "NRM-0042"}]
    assert second is None or second["shared_ids"] == []
    for record in batch.records:
        validate(record.record, SCHEMA)


def test_a_shared_identifier_without_a_scheme_is_a_row_problem_without_the_value() -> None:
    value = "$.victims[].identifiers.shared_ids[].value"
    m = Mapping.from_dict(minimal(**{value: {"column": "referral"}}))
    batch = m.map_rows(rows({"case": "c1", "who": "v1", "referral": "NRM-0042"}), today=TODAY)
    (p,) = batch.problems
    assert (p.row, unindexed(p.path), p.code) == (
        1,
        "$.victims[].identifiers.shared_ids[].scheme",
        ReasonCode.MISSING_VALUE,
    )
    assert "NRM-0042" not in str(p)
    assert batch.records == []
