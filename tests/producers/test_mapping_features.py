"""Mapping features for real exports: the header check, loose codes, defaults, several columns
into one list, multi-valued cells, per-row organisation types, exports without ids, optional
source ids, named code lists, and input options in the mapping."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.mapping import (
    TARGETS,
    Mapping,
    MappingError,
    MissingColumnError,
    SourceMismatchError,
)
from producers.readers import CellDate, InputOptions, Row
from producers.workflow import read_export
from schemas.errors import ReasonCode

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = fastavro.parse_schema(
    json.loads((ROOT / "schemas" / "avro" / "case_record.avsc").read_text("utf-8"))
)
TODAY = date(2026, 1, 1)
SEX = "$.victims[].sex"
FORMS = "$.event.forms_of_exploitation"
CONTROL = "$.event.methods_of_control"


def mapping(fields: dict[str, Any] | None = None, **top: Any) -> Mapping:
    data: dict[str, Any] = {
        "source_id": "ngo_test",
        "organisation_type": "NGO",
        "case_column": "case",
        "victim_column": "who",
        "fields": fields or {},
    }
    data.update(top)
    return Mapping.from_dict({k: v for k, v in data.items() if v is not None})


def rows(*dicts: dict[str, str | None]) -> list[Row]:
    return [Row(i, d) for i, d in enumerate(dicts, start=1)]


def one(m: Mapping, **cells: str | None) -> Any:
    batch = m.map_rows(rows({"case": "c", "who": "v", **cells}), today=TODAY)
    assert batch.problems == [], batch.problems
    (rec,) = batch.records
    assert validate(rec.record, SCHEMA, raise_errors=True)
    return rec.record


def problems(m: Mapping, *dicts: dict[str, str | None]) -> list[tuple[int | None, str, str]]:
    batch = m.map_rows(rows(*dicts), today=TODAY)
    return [(p.row, p.path, p.code.value) for p in batch.problems]


# --- fail loudly: the header check ------------------------------------------------------------


def test_a_misspelled_column_is_named_with_the_closest_header_names() -> None:
    m = mapping({SEX: {"column": "Gender", "codes": {"F": "Feminine"}}})
    with pytest.raises(MissingColumnError) as e:
        m.bind(["case", "who", "gender", "age"])
    assert e.value.code is ReasonCode.BAD_MAPPING
    assert e.value.missing == {"Gender": ("gender",)}
    assert "fields.$.victims[].sex: column 'Gender' is not in the export's header" in str(e.value)
    assert "closest: 'gender'" in str(e.value)


def test_every_missing_column_is_named_at_once() -> None:
    m = mapping({SEX: "sexe", FORMS: {"columns": ["form_1", "form_2"]}}, case_column="Case_ID")
    with pytest.raises(MissingColumnError) as e:
        m.bind(["case_id", "who", "sex", "form_1", "zzz"])
    assert set(e.value.missing) == {"Case_ID", "sexe", "form_2"}
    assert e.value.missing["Case_ID"][0] == "case_id"
    assert e.value.where["Case_ID"] == "case_column"
    assert "sex" in e.value.missing["sexe"]


def test_a_present_header_binds_unchanged() -> None:
    m = mapping({SEX: "gender"})
    assert m.bind(["case", "who", "gender"]) is m


def test_an_unknown_target_names_the_closest_targets() -> None:
    with pytest.raises(MappingError, match=r"closest: \$\.victims\[\]\.sex"):
        mapping({"$.victims[].sexe": "gender"})


def test_odk_short_names_find_their_group_and_lists_split_on_spaces() -> None:
    m = mapping({SEX: "sex", FORMS: "forms"}).bind(
        ["case", "who", "victim/sex", "event/forms"], list_separator=" ", short_names=True
    )
    rec = one(m, **{"victim/sex": "Feminine", "event/forms": "forced_labour sexualexploitation"})
    assert rec["victims"][0]["sex"] == "Feminine"
    assert rec["event"]["forms_of_exploitation"] == ["ForcedLabour", "SexualExploitation"]


def test_an_odk_short_name_in_two_groups_is_missing_not_guessed() -> None:
    m = mapping({SEX: "sex"})
    with pytest.raises(MissingColumnError):
        m.bind(["case", "who", "victim/sex", "perp/sex"], short_names=True)


# --- loose code matching ---------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(TARGETS[CONTROL].symbols)), st.data())
def test_codes_match_whatever_their_case_and_spacing(code: str, data: st.DataObject) -> None:
    cell = "".join(
        (ch.upper() if data.draw(st.booleans()) else ch.lower())
        + data.draw(st.sampled_from(["", "", " ", "_"]))
        for ch in code
    )
    m = MAPPINGS["loose"]
    assert one(m, ctl=f" {cell} ")["event"]["methods_of_control"] == [code]


MAPPINGS = {
    "loose": mapping({CONTROL: "ctl"}),
    "exact": mapping({CONTROL: "ctl"}, match="exact"),
}


def test_exact_matching_is_still_available() -> None:
    assert problems(MAPPINGS["exact"], {"case": "c", "who": "v", "ctl": "debtbondage"}) == [
        (1, CONTROL, "unknown_code")
    ]
    field_exact = mapping({CONTROL: {"column": "ctl", "match": "exact"}})
    assert problems(field_exact, {"case": "c", "who": "v", "ctl": "DEBT BONDAGE"}) == [
        (1, CONTROL, "unknown_code")
    ]


def test_agency_values_that_differ_only_in_case_must_agree() -> None:
    with pytest.raises(MappingError, match="differ only in case"):
        mapping({SEX: {"column": "g", "codes": {"f": "Feminine", "F ": "Masculine"}}})
    exact = mapping(
        {SEX: {"column": "g", "codes": {"f": "Feminine", "F": "Masculine"}}}, match="exact"
    )
    assert one(exact, g="F")["victims"][0]["sex"] == "Masculine"


def test_missing_values_match_loosely_too() -> None:
    m = mapping({"$.victims[].age_at_identification": {"column": "age", "missing": ["Not known"]}})
    assert one(m, age="NOT KNOWN")["victims"][0]["age_at_identification"] is None


# --- default: codes ----------------------------------------------------------------------------


def test_a_stray_label_takes_the_default_and_is_counted_not_withheld() -> None:
    m = mapping(
        {
            FORMS: {
                "column": "f",
                "split": ";",
                "codes": {"sex": "SexualExploitation"},
                "default": "Other",
            }
        }
    )
    batch = m.map_rows(
        rows(
            {"case": "c1", "who": "v", "f": "sex;something new"},
            {"case": "c2", "who": "v", "f": "begging"},
            {"case": "c3", "who": "v", "f": "sex"},
        ),
        today=TODAY,
    )
    assert batch.problems == []
    assert [r.record["event"]["forms_of_exploitation"] for r in batch.records] == [
        ["SexualExploitation", "Other"], ["Other"], ["SexualExploitation"],
    ]  # fmt: skip
    assert batch.defaulted == {FORMS: 2}


def test_a_default_must_be_a_code_of_the_target() -> None:
    with pytest.raises(MappingError, match="not an ICS-TIP Gender code"):
        mapping({SEX: {"column": "g", "default": "Other"}})
    with pytest.raises(MappingError, match="default is for code targets"):
        mapping({"$.victims[].age_at_identification": {"column": "a", "default": "0"}})


# --- several columns into one list --------------------------------------------------------------


def test_several_columns_feed_one_list() -> None:
    m = mapping(
        {
            FORMS: {
                "columns": ["f1", "f2"],
                "split": ";",
                "codes": {"sex": "SexualExploitation", "lab": "ForcedLabour"},
            }
        }
    )
    rec = one(m, f1="sex", f2="lab;sex")
    assert rec["event"]["forms_of_exploitation"] == ["SexualExploitation", "ForcedLabour"]


WIDE = {
    CONTROL: {
        "columns": {
            "meansOfControlDebtBondage": "DebtBondage",
            "meansOfControlTakesEarnings": "TakesEarnings",
            "meansOfControlThreats": ["PhysicalThreats", "ThreatensChildrenFamily"],
        },
        "missing": ["-99"],
    }
}


@pytest.mark.parametrize(
    ("cells", "codes"),
    [
        (("1", "0", "0"), ["DebtBondage"]),
        (
            ("YES", "true", " x "),
            ["DebtBondage", "TakesEarnings", "PhysicalThreats", "ThreatensChildrenFamily"],
        ),
        (("0", "no", "-99"), []),
        (("-99", None, "1.0"), ["PhysicalThreats", "ThreatensChildrenFamily"]),
    ],
)
def test_wide_yes_no_columns_each_add_their_codes(
    cells: tuple[str | None, ...], codes: list[str]
) -> None:
    names = list(WIDE[CONTROL]["columns"])
    rec = one(mapping(WIDE), **dict(zip(names, cells, strict=True)))
    assert rec["event"]["methods_of_control"] == codes


def test_a_wide_column_neither_yes_nor_no_is_bad_format_naming_the_column_only() -> None:
    (p,) = (
        mapping(WIDE)
        .map_rows(
            rows({"case": "c", "who": "v", "meansOfControlDebtBondage": "perhaps"}), today=TODAY
        )
        .problems
    )
    assert (p.code, p.path) == (ReasonCode.BAD_FORMAT, CONTROL)
    assert "meansOfControlDebtBondage" in p.expected and "perhaps" not in str(p)


def test_a_configured_truthy_set_replaces_the_default() -> None:
    m = mapping({CONTROL: {"columns": {"a": "DebtBondage"}, "truthy": ["checked"], "falsy": [""]}})
    assert one(m, a="Checked")["event"]["methods_of_control"] == ["DebtBondage"]
    assert problems(m, {"case": "c", "who": "v", "a": "1"}) == [(1, CONTROL, "bad_format")]


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"columns": ["a"], "column": "b"}, "exclude each other"),
        ({"columns": {"a": "Debt"}}, "not an ICS-TIP MethodOfControl code"),
        ({"columns": {"a": "DebtBondage"}, "codes": {"x": "DebtBondage"}}, "yes/no columns name"),
        ({"columns": ["a", "a"]}, "twice"),
        (
            {"columns": {"a": "DebtBondage"}, "truthy": ["1"], "falsy": ["1"]},
            "both truthy and falsy",
        ),
        ({"column": "a", "truthy": ["y"]}, "truthy and falsy are for yes/no"),
    ],
)
def test_bad_column_entries(entry: dict[str, Any], needle: str) -> None:
    with pytest.raises(MappingError, match=needle):
        mapping({CONTROL: entry})


def test_columns_are_for_list_targets() -> None:
    with pytest.raises(MappingError, match="columns is for list targets"):
        mapping({SEX: {"columns": ["a", "b"]}})


# --- multi-valued cells into single-valued fields -------------------------------------------------

SEVERAL = {
    "column": "g",
    "split": ";",
    "codes": {"f": "Feminine", "m": "Masculine", "?": "Unknown"},
}


@pytest.mark.parametrize(
    ("rule", "cell", "expected"),
    [
        ("first", "f;m", "Feminine"),
        ("first", "m; f", "Masculine"),
        ("NonConforming", "f;m", "NonConforming"),
        ("NonConforming", "f;f", "Feminine"),  # the same code twice is one value
        ("reject", "f;?", "Feminine"),  # Unknown beside a known value adds nothing
        ("reject", "f", "Feminine"),
    ],
)
def test_the_multiple_rule(rule: str, cell: str, expected: str) -> None:
    m = mapping({SEX: {**SEVERAL, "multiple": rule}})
    assert one(m, g=cell)["victims"][0]["sex"] == expected


def test_multiple_reject_withholds_the_case() -> None:
    m = mapping({SEX: {**SEVERAL, "multiple": "reject"}})
    assert problems(m, {"case": "c", "who": "v", "g": "f;m"}) == [
        (1, "$.victims[0].sex", "bad_format")
    ]


def test_without_a_rule_a_split_single_valued_field_is_refused() -> None:
    with pytest.raises(MappingError, match="split is for list targets"):
        mapping({SEX: SEVERAL})
    with pytest.raises(MappingError, match="list targets keep them all"):
        mapping({FORMS: {"column": "f", "multiple": "first"}})


# --- per-row organisation type --------------------------------------------------------------------


def test_the_organisation_type_comes_from_a_column() -> None:
    m = mapping(
        organisation_type={
            "column": "org",
            "codes": {"police": "Police", "ngo": "NGO"},
            "default": "Other",
        }
    )
    batch = m.map_rows(
        rows(
            {"case": "c1", "who": "v", "org": "Police"},
            {"case": "c2", "who": "v", "org": "shelter"},
            {"case": "c3", "who": "v", "org": None},
        ),
        today=TODAY,
    )
    assert batch.problems == []
    orgs = [r.record["reporting_entity"]["organisation_type"] for r in batch.records]
    assert orgs == ["Police", "Other", "Other"]
    assert batch.defaulted == {"$.reporting_entity.organisation_type": 1}


def test_a_row_without_organisation_type_and_no_default_is_missing_value() -> None:
    m = mapping(organisation_type={"column": "org"})
    assert problems(m, {"case": "c", "who": "v", "org": None}) == [
        (1, "$.reporting_entity.organisation_type", "missing_value")
    ]
    with pytest.raises(MissingColumnError, match="organisation_type: column 'org'"):
        m.bind(["case", "who"])


# --- exports without ids ------------------------------------------------------------------------


def test_one_id_column_serves_as_case_and_victim_id() -> None:
    m = mapping({SEX: "g"}, victim_column=None)
    rec = one(m, g="Feminine")
    assert rec["case_id"] == "c" and rec["victims"][0]["victim_id"] == "c"


def test_without_an_id_column_ids_hash_the_mapped_cells() -> None:
    m = mapping({SEX: "g", FORMS: "f"}, case_column=None, victim_column=None, ids="row_hash")
    assert m.ids_from_content
    batch = m.map_rows(
        [
            Row(1, {"g": "Feminine", "f": "ForcedLabour", "exported": "monday"}),
            Row(2, {"g": "Masculine", "f": "ForcedLabour", "exported": "monday"}),
            Row(3, {"f": "ForcedLabour", "g": "Feminine", "exported": "tuesday"}),  # = row 1
        ],
        today=TODAY,
    )
    assert batch.problems == []
    first, second = batch.records
    assert first.rows == (1, 3)  # same mapped cells: one case, whatever the unmapped columns
    assert first.case_id.startswith("row-") and first.case_id != second.case_id
    assert first.record["victims"][0]["victim_id"] == first.case_id
    again = m.map_rows([Row(9, {"g": " Feminine", "f": "ForcedLabour"})], today=TODAY)
    assert again.records[0].case_id == first.case_id  # stable across exports and row numbers


def test_ids_row_hash_replaces_the_id_columns() -> None:
    with pytest.raises(MappingError, match="replaces case_column"):
        mapping(ids="row_hash")
    with pytest.raises(MappingError, match="or ids: row_hash"):
        mapping(case_column=None)


# --- source ids -------------------------------------------------------------------------------


def test_the_source_id_is_optional_and_the_publishing_source_decides() -> None:
    m = mapping({SEX: "g"}, source_id=None)
    with pytest.raises(MappingError, match="no source_id"):
        m.map_rows(rows({"case": "c", "who": "v"}))
    bound = m.for_source("police")
    assert one(bound, g="Feminine")["reporting_entity"]["source_id"] == "police"
    named = mapping({SEX: "g"})
    assert named.for_source("ngo_test") is named
    with pytest.raises(SourceMismatchError, match="for source ngo_test, not police"):
        named.for_source("police")


# --- named code lists -----------------------------------------------------------------------------


def test_htcds_labels_need_no_listing_and_a_mapping_adds_what_differs() -> None:
    m = mapping(
        {SEX: {"column": "g", "codes": ["htcds:Gender", {"F": "Feminine", "?": "Unknown"}]}}
    )
    assert one(m, g="Not specified / unknown")["victims"][0]["sex"] == "NonSpecifiedUnknown"
    assert one(m, g="transgender feminine")["victims"][0]["sex"] == "TransgenderFeminine"
    assert one(m, g="F")["victims"][0]["sex"] == "Feminine"
    only = mapping({SEX: {"column": "g", "codes": "htcds:Gender"}})
    assert problems(only, {"case": "c", "who": "v", "g": "F"}) == [
        (1, "$.victims[0].sex", "unknown_code")
    ]


def test_a_bad_list_name_is_a_bad_mapping() -> None:
    with pytest.raises(MappingError, match=r"codes: htcds:Gendre is not an HTCDS"):
        mapping({SEX: {"column": "g", "codes": "htcds:Gendre"}})


# --- dates from spreadsheets --------------------------------------------------------------------


def test_a_spreadsheet_date_needs_no_format() -> None:
    m = mapping({"$.victims[].identifiers.date_of_birth": {"column": "dob", "format": "%d/%m/%Y"}})
    rec = one(m, dob=CellDate(date(2001, 3, 5)))
    assert rec["victims"][0]["identifiers"]["date_of_birth"] == date(2001, 3, 5)
    assert one(m, dob="05/03/2001")["victims"][0]["identifiers"]["date_of_birth"] == date(
        2001, 3, 5
    )


# --- dry runs ---------------------------------------------------------------------------------


def test_a_dry_run_counts_filled_fields_and_unmatched_coded_values_only() -> None:
    m = mapping(
        {
            SEX: {"column": "g", "codes": {"F": "Feminine"}},
            "$.victims[].identifiers.given_names": {"column": "name", "codes": {"x": "y"}},
        }
    )
    batch = m.map_rows(
        rows(
            {"case": "c1", "who": "v", "g": "F", "name": "x"},
            {"case": "c2", "who": "v", "g": "female", "name": "Ana Maria"},
            {"case": "c3", "who": "v", "g": "female", "name": None},
        ),
        today=TODAY,
        dry_run=True,
    )
    assert batch.dry_run is not None
    assert batch.dry_run.filled == {SEX: 1, "$.victims[].identifiers.given_names": 1}
    assert batch.dry_run.unmapped == {SEX: {"female": 2}}  # never the identifier's value
    assert m.map_rows(rows({"case": "c", "who": "v"}), today=TODAY).dry_run is None


# --- input options and read_export --------------------------------------------------------------


def test_input_options_in_the_mapping_and_flags_over_them(tmp_path: Path) -> None:
    m = mapping(encoding="cp1252", delimiter=";", sheet="Cases")
    assert m.input_options == InputOptions("cp1252", ";", "Cases")
    assert InputOptions(delimiter="|").over(m.input_options) == InputOptions("cp1252", "|", "Cases")
    with pytest.raises(MappingError, match="delimiter: expected one character"):
        mapping(delimiter=";;")
    with pytest.raises(MappingError, match="encoding: 'klingon' is not a known"):
        mapping(encoding="klingon")


def write_mapping(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_semicolon_latin1_export_publishes_with_its_encoding_named(tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    export.write_bytes(
        "case;who;sexe;nom\nc1;v1;Féminin;José\nc2;v1;masculin;Zoë\n".encode("latin-1")
    )
    spec = {
        "organisation_type": "NGO",
        "case_column": "case",
        "victim_column": "who",
        "encoding": "latin-1",
        "fields": {
            SEX: {"column": "sexe", "codes": {"Féminin": "Feminine", "Masculin": "Masculine"}},
            "$.victims[].identifiers.given_names": "nom",
        },
    }
    result = read_export("ngo_test", export, write_mapping(tmp_path / "m.yaml", spec))
    assert (result.rows_read, result.problems) == (2, [])
    sexes = [m.datum["victims"][0]["sex"] for m in result.messages]
    assert sexes == ["Feminine", "Masculine"]
    assert result.messages[1].datum["victims"][0]["identifiers"]["given_names"] == "Zoë"


def test_read_export_checks_the_header_before_mapping_any_row(tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    export.write_text("case,who,gender\nc1,v1,F\n", encoding="utf-8")
    spec = {"organisation_type": "NGO", "case_column": "case", "fields": {SEX: "Gender"}}
    with pytest.raises(MissingColumnError, match="closest: 'gender'"):
        read_export("ngo_test", export, write_mapping(tmp_path / "m.yaml", spec))
    spec["source_id"] = "police"
    with pytest.raises(SourceMismatchError):
        read_export("ngo_test", export, write_mapping(tmp_path / "m.yaml", spec))


# --- the documentation's examples ------------------------------------------------------------


def doc_examples() -> list[str]:
    text = (ROOT / "producers" / "mapping.md").read_text("utf-8")
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


@pytest.mark.parametrize("block", doc_examples())
def test_every_yaml_example_in_mapping_md_is_a_valid_mapping(block: str) -> None:
    from producers.mapping import _TextLoader

    data = yaml.load(block, Loader=_TextLoader)
    base: dict[str, Any] = {"organisation_type": "NGO", "case_column": "case"}
    if "ids" in data:
        base.pop("case_column")
    Mapping.from_dict({**base, **data})


def test_mapping_md_has_an_example_for_every_feature() -> None:
    text = "\n".join(doc_examples())
    for key in ("columns:", "truthy:", "default:", "multiple:", "ids: row_hash", "htcds:",
                "encoding:", "delimiter:", "sheet:", "match:", "organisation_type: {column"):  # fmt: skip
        assert key in text, key
