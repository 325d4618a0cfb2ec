"""Schema evolution rules and `tiptrust schemas check`."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

from schemas.codec import AVRO_DIR
from schemas.compatibility import check_tree, compare, latest_release
from schemas.errors import ReasonCode

CASE = json.loads((AVRO_DIR / "case_record.avsc").read_text())


def test_identical_is_compatible() -> None:
    assert compare(CASE, copy.deepcopy(CASE)) == []


def test_adding_optional_field_with_default_is_compatible() -> None:
    new = copy.deepcopy(CASE)
    new["fields"].append({"name": "note_code", "type": ["null", "string"], "default": None})
    assert compare(CASE, new) == []


def test_adding_field_without_default_is_not() -> None:
    new = copy.deepcopy(CASE)
    new["fields"].append({"name": "note_code", "type": "string"})
    assert [p.path for p in compare(CASE, new)] == ["$.note_code"]


def test_removing_a_field_is_not() -> None:
    new = copy.deepcopy(CASE)
    new["fields"] = [f for f in new["fields"] if f["name"] != "perpetrators"]
    problems = compare(CASE, new)
    assert [p.path for p in problems] == ["$.perpetrators"]
    assert problems[0].code is ReasonCode.INCOMPATIBLE_SCHEMA


def test_retyping_a_field_is_not() -> None:
    new = copy.deepcopy(CASE)
    new["fields"][0]["type"] = "int"
    assert [p.path for p in compare(CASE, new)] == ["$.case_id"]


def test_removing_an_enum_symbol_is_not_and_adding_one_is() -> None:
    new = copy.deepcopy(CASE)
    org = new["fields"][1]["type"]["fields"][1]["type"]
    org["symbols"] = [s for s in org["symbols"] if s != "NGO"]
    # the named enum is checked wherever it is used
    assert [p.path for p in compare(CASE, new)] == [
        "$.reporting_entity.organisation_type",
        "$.reporting_entity.referred_from[]",
        "$.reporting_entity.referred_to[]",
    ]
    org["symbols"] = [*org["symbols"], "NGO", "Ombudsman"]
    assert compare(CASE, new) == []


def test_tree_is_compatible_with_latest_release() -> None:
    assert latest_release() is not None
    assert all(not problems for problems in check_tree().values())


def test_check_tree_finds_a_breaking_change(tmp_path: Path) -> None:
    tree = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, tree, ignore=shutil.ignore_patterns("released"))
    broken = json.loads((tree / "receipt.avsc").read_text())
    broken["fields"] = broken["fields"][1:]
    (tree / "receipt.avsc").write_text(json.dumps(broken))
    results = check_tree(tree)
    assert results["receipt"] and not results["case_record"]


def test_renaming_a_named_type_is_not() -> None:
    # Avro resolves records, enums and fixed by name: the old data could not be read at all
    new = copy.deepcopy(CASE)
    new["fields"][1]["type"]["fields"][1]["type"]["name"] = "OrgType"
    new_refs = json.loads(json.dumps(new).replace('"OrganisationType"', '"OrgType"'))
    assert [p.path for p in compare(CASE, new_refs)] == [
        "$.reporting_entity.organisation_type",
        "$.reporting_entity.referred_from[]",
        "$.reporting_entity.referred_to[]",
    ]
    new = copy.deepcopy(CASE)
    new["fields"][2]["type"]["name"] = "Event"
    assert [p.path for p in compare(CASE, new)] == ["$.event"]


def test_changing_a_logical_type_is_not() -> None:
    dated = {"type": "record", "name": "R", "fields": [
        {"name": "d", "type": {"type": "int", "logicalType": "date"}},
    ]}  # fmt: skip
    plain = copy.deepcopy(dated)
    plain["fields"][0]["type"] = "int"
    widened = copy.deepcopy(dated)
    widened["fields"][0]["type"] = "long"
    assert [p.path for p in compare(dated, plain)] == ["$.d"]
    assert [p.path for p in compare(plain, dated)] == ["$.d"]
    assert [p.path for p in compare(dated, widened)] == ["$.d"]
    assert compare(plain, widened) == []  # int -> long stays compatible


def test_references_by_full_name_are_resolved() -> None:
    new = json.loads(
        json.dumps(CASE).replace('"items": "Country"', '"items": "org.tiptrust.icstip.Country"')
    )
    assert new != CASE and compare(CASE, new) == []


def _victim(schema: Any) -> Any:
    victims = next(f for f in schema["fields"] if f["name"] == "victims")
    return victims["type"]["items"]


AGE_FIELDS = ("age_range_lower", "age_range_upper", "majority_status")


def test_the_age_range_and_majority_status_are_a_compatible_evolution() -> None:
    released = latest_release()
    assert released is not None
    old = json.loads((released / "case_record.avsc").read_text())
    old_names = {f["name"] for f in _victim(old)["fields"]}
    new_fields = {f["name"]: f for f in _victim(CASE)["fields"]}
    assert not old_names & set(AGE_FIELDS) and set(AGE_FIELDS) <= set(new_fields)
    assert compare(old, CASE) == []
    # each is optional with a default: without one, `tiptrust schemas check` refuses it
    for name in AGE_FIELDS:
        assert "default" in new_fields[name]
        broken = copy.deepcopy(CASE)
        for f in _victim(broken)["fields"]:
            if f["name"] == name:
                del f["default"]
        assert [p.path for p in compare(old, broken)] == [f"$.victims[].{name}"]


def test_a_record_of_the_released_schema_reads_with_the_age_defaults() -> None:
    import io

    import fastavro

    from tests.trust.store.builders import case_record

    released = latest_release()
    assert released is not None
    writer = fastavro.parse_schema(json.loads((released / "case_record.avsc").read_text()))
    reader = fastavro.parse_schema(copy.deepcopy(CASE))
    record = case_record("police", "c1", [("v1", "Feminine", 23)])
    for v in record["victims"]:
        for name in AGE_FIELDS:
            v.pop(name, None)
        if isinstance(v.get("identifiers"), dict):
            v["identifiers"].pop("shared_ids", None)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer, record)
    buf.seek(0)
    read = fastavro.schemaless_reader(buf, writer, reader)
    assert isinstance(read, dict)
    victim = read["victims"][0]
    assert (victim["age_range_lower"], victim["age_range_upper"]) == (None, None)
    assert victim["majority_status"] == "Unknown" and victim["age_at_identification"] == 23
