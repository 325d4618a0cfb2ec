"""The codec: shipped schemas, fingerprints, round trips, and errors that carry no values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import (
    KIND_SCHEMAS,
    SchemaRegistry,
    WireSchema,
    default_registry,
    load_current,
)
from schemas.errors import InvalidRecord, UnknownSchema

from .conftest import sample_record

REG = default_registry()
CASE = REG.current("case_record")


def test_every_kind_has_a_schema() -> None:
    for kind, name in KIND_SCHEMAS.items():
        assert REG.for_kind(kind).name == name


def test_fingerprint_is_sha256_of_canonical_form() -> None:
    assert CASE.fingerprint == hashlib.sha256(CASE.canonical.encode()).digest()
    assert REG.writer(CASE.fingerprint) is CASE


def test_unknown_fingerprint_is_unknown_schema() -> None:
    with pytest.raises(UnknownSchema):
        REG.decode_payload("RecordUpsert", b"\x00" * 32, b"")


def test_kind_must_match_schema() -> None:
    retraction = REG.current("record_retraction")
    payload = retraction.encode({"case_id": "x", "reason": "Other"})
    with pytest.raises(UnknownSchema):
        REG.decode_payload("RecordUpsert", retraction.fingerprint, payload)


def test_round_trip_keeps_every_value() -> None:
    rec = sample_record()
    back = CASE.decode(CASE.encode(rec))
    assert back["victims"][0]["identifiers"]["date_of_birth"] == dt.date(1999, 4, 2)
    assert back["event"]["forms_of_exploitation"] == ["SexualExploitation", "ForcedCriminality"]
    assert back["victims"][0]["age_first_trafficked"] is None  # default filled
    assert back["event"]["industry"] == "Unknown"


def test_unknown_code_is_rejected_without_echoing_it() -> None:
    rec = sample_record()
    rec["victims"][0]["sex"] = "Zorblax"
    with pytest.raises(InvalidRecord) as info:
        CASE.encode(rec)
    assert "Zorblax" not in str(info.value)


def test_trailing_bytes_are_invalid() -> None:
    with pytest.raises(InvalidRecord):
        CASE.decode(CASE.encode(sample_record()) + b"\x00")


def test_older_writer_schema_is_read_into_current() -> None:
    """A source still on a release without a new optional field is read with resolution."""
    current = json.loads(json.dumps(CASE.source))
    old = json.loads(json.dumps(CASE.source))
    old["fields"] = [f for f in old["fields"] if f["name"] != "perpetrators"]
    from schemas.codec import WireSchema, fingerprint_of

    parsed, canonical, fp = fingerprint_of(old)
    old_schema = WireSchema("case_record", old, parsed, canonical, fp)
    parsed2, canonical2, fp2 = fingerprint_of(current)
    reg = SchemaRegistry(
        [WireSchema("case_record", current, parsed2, canonical2, fp2)], [old_schema]
    )
    rec = sample_record()
    del rec["perpetrators"]
    datum = reg.decode_payload("RecordUpsert", fp, old_schema.encode(rec))
    assert datum["perpetrators"] == []


@given(st.text(max_size=40), st.integers(0, 120))
def test_round_trip_property(name: str, age: int) -> None:
    rec = sample_record(name=name)
    rec["victims"][0]["age_at_identification"] = age
    back = CASE.decode(CASE.encode(rec))
    assert back["victims"][0]["identifiers"]["given_names"] == name
    assert back["victims"][0]["age_at_identification"] == age


def test_shipped_released_snapshot_exists() -> None:
    names = {s.name for s in load_current()}
    assert {"case_record", "envelope", "receipt", "release"} <= names


def test_a_record_is_known_by_the_same_bytes_across_an_optional_field_added_later() -> None:
    reg = default_registry()
    released = released_schema("0.1.0")
    rec = sample_record()
    rec["victims"][0]["identifiers"]["shared_ids"] = []  # the field added since 0.1.0, empty
    payload = CASE.encode(rec)
    assert payload != released.encode(rec)  # the current encoding differs ...
    assert reg.content_bytes("case_record", payload) == released.encode(rec)  # ... not its id
    rec["victims"][0]["identifiers"]["shared_ids"] = [{"scheme": "nrm_referral", "value": "X"}]
    changed = CASE.encode(rec)
    # content the old schema cannot hold: known by the current encoding, so it is a new event
    assert reg.content_bytes("case_record", changed) == changed


def released_schema(version: str) -> WireSchema:
    from schemas.codec import RELEASED_DIR, load_schema_file

    return load_schema_file(RELEASED_DIR / version / "case_record.avsc")
