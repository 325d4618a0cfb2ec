"""The trust's one pass (``PayloadDecoder.decode_checked``): a payload is decoded and its value
rules checked as it is read, and for any bytes — a valid record, one breaking a rule, one of an
older schema, bytes mutated at random, a memoryview — it gives exactly what decoding and then
validating gives (``decode_payload``, then the trust's validator): the same datum of the same
types, or the same error with the same reason code, problems and text. Where the checked pass
itself returns a datum, the validator's walk (not only its fast path) finds no problem in it.

Its rule lines are the producer's (``schemas.codegen.value_rules``): a record the producer's one
pass writes is one the trust's one pass reads."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas.codec import KIND_SCHEMAS, WireSchema, default_registry
from schemas.errors import InvalidRecord, ReasonCode
from schemas.fastdecode import (
    PayloadDecoder,
    Refused,
    compile_checked_decoder,
    compile_decoder,
)
from schemas.validate import Validator, validator_for

from .conftest import sample_record, victims_rule
from .test_fastdecode import GENERATED, mutated, same
from .test_fastencode import fastavro_bytes, values
from .test_validate_fast import BASE, ENCODE_VALID, changed_records

REGISTRY = default_registry()
CASE = REGISTRY.current("case_record")
KIND_OF = {name: kind for kind, name in KIND_SCHEMAS.items()}
PAYLOADS = [REGISTRY.current(name) for name in sorted(KIND_OF)]
"""The current schema of every message kind."""
OLD_PAYLOADS = [s for s in GENERATED if s.name in KIND_OF and s is not REGISTRY.current(s.name)]
TRUSTS = {s.name: validator_for(s, decoded=True) for s in PAYLOADS}
DECODER = PayloadDecoder(REGISTRY)
TODAY = dt.date.today()


def _error(exc: Exception) -> tuple[Any, ...]:
    """What the pipeline makes of an error: its type, text, reason code, path and problems."""
    return (
        "error",
        type(exc),
        str(exc),
        getattr(exc, "code", None),
        getattr(exc, "field_path", None),
        getattr(exc, "problems", None),
    )


def two_passes(kind: str, fingerprint: bytes, payload: bytes, validator: Validator) -> Any:
    """Today's path: the registry's values (through the generated reader), then the validator."""
    try:
        datum = DECODER.decode_payload(kind, fingerprint, payload)
        validator.check(datum)
    except Exception as exc:
        return _error(exc)
    return ("value", datum)


def one_pass(kind: str, fingerprint: bytes, payload: bytes, validator: Validator) -> Any:
    try:
        return ("value", DECODER.decode_checked(kind, fingerprint, payload, validator))
    except Exception as exc:
        return _error(exc)


def agrees(schema: WireSchema, payload: bytes, writer: WireSchema | None = None) -> bool:
    """The one pass gives what two give; True if the checked pass itself read ``payload``."""
    kind, validator = KIND_OF[schema.name], TRUSTS[schema.name]
    fingerprint = (writer or schema).fingerprint
    mine = one_pass(kind, fingerprint, payload, validator)
    theirs = two_passes(kind, fingerprint, payload, validator)
    assert mine[0] == theirs[0]
    if mine[0] == "value":
        assert same(mine[1], theirs[1])
    else:
        assert mine == theirs
    found = DECODER._checked.get((kind, fingerprint))
    if found is None:
        return False
    datum = found[1](payload)
    if datum is None:
        return False
    # a datum only for a payload the general reader reads alike and the WALK finds no problem in
    assert theirs[0] == "value" and same(datum, theirs[1])
    assert validator._walk(datum) == []
    return True


def test_a_valid_record_is_read_and_checked_in_one_pass() -> None:
    payload = CASE.encode(sample_record("C-1"))
    assert agrees(CASE, payload)
    assert agrees(CASE, CASE.encode(BASE))  # two victims, dates in order, a shared id
    rec = copy.deepcopy(BASE)
    rec["case_id"] = "C\u00a0\u2028 1"  # not printable, yet no control character
    rec["victims"][0]["identifiers"]["given_names"] = "A\tB"  # a tab: allowed in free text
    assert agrees(CASE, CASE.encode(rec))


@pytest.mark.parametrize("schema", PAYLOADS, ids=lambda s: s.name)
def test_every_kinds_current_schema_has_a_one_pass(schema: WireSchema) -> None:
    one_pass(KIND_OF[schema.name], schema.fingerprint, b"", TRUSTS[schema.name])
    assert DECODER._checked[(KIND_OF[schema.name], schema.fingerprint)][0] is TRUSTS[schema.name]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changed_records(oddities=False))
def test_a_record_near_every_rule_is_read_as_two_passes_read_it(rec: dict[str, Any]) -> None:
    """Ages, years and dates about their bounds, text about its limits and with control
    characters, source ids, lists at and past their limits, repeated victim ids, unknown codes."""
    try:
        payload = CASE.encode(rec)
    except InvalidRecord:  # not a record Avro can hold (an unknown code): no payload to read
        assume(False)
    agrees(CASE, payload)


@pytest.mark.parametrize("schema", PAYLOADS, ids=lambda s: s.name)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_of_each_kind_is_read_as_two_passes_read_it(
    schema: WireSchema, data: st.DataObject
) -> None:
    agrees(schema, fastavro_bytes(schema, data.draw(values(schema.model.root))))


@pytest.mark.parametrize("schema", PAYLOADS, ids=lambda s: s.name)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_malformed_bytes_are_read_or_refused_as_two_passes_do(
    schema: WireSchema, data: st.DataObject
) -> None:
    agrees(schema, data.draw(mutated(schema)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rec=changed_records(oddities=False), data=st.data())
def test_a_mutated_record_near_the_rules_is_read_or_refused_as_two_passes_do(
    rec: dict[str, Any], data: st.DataObject
) -> None:
    try:
        payload = bytearray(CASE.encode(rec))
    except InvalidRecord:
        assume(False)
    at = data.draw(st.integers(0, len(payload) - 1))
    payload[at] = data.draw(st.integers(0, 255))
    agrees(CASE, bytes(payload))


@pytest.mark.parametrize("old", OLD_PAYLOADS, ids=lambda s: f"{s.name}-{s.fingerprint.hex()[:8]}")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_payload_of_an_older_schema_is_resolved_and_validated_as_before(
    old: WireSchema, data: st.DataObject
) -> None:
    payload = fastavro_bytes(old, data.draw(values(old.model.root)))
    assert not agrees(REGISTRY.current(old.name), payload, writer=old)  # the registry resolves it
    assert (KIND_OF[old.name], old.fingerprint) not in DECODER._checked  # none kept either


def test_an_older_case_record_is_among_them() -> None:
    assert any(s.name == "case_record" for s in OLD_PAYLOADS)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(case_id="C" * 129),
        lambda r: r.update(case_id="C\x001"),
        lambda r: r["reporting_entity"].update(source_id="police\n"),
        lambda r: r["reporting_entity"].update(date_recorded=dt.date(1899, 12, 31)),
        lambda r: r["event"].update(year_of_exploitation=1949),
        lambda r: r["event"].update(start_date=TODAY + dt.timedelta(days=3)),
        lambda r: r["event"].update(start_date=dt.date(2022, 7, 1)),  # after its end date
        lambda r: r["event"].update(forms_of_exploitation=["Other"] * 65),
        lambda r: r["victims"][0].update(age_at_identification=121),
        lambda r: r["victims"][0].update(majority_status="Minor", age_at_identification=30),
        lambda r: r["victims"][0].update(age_range_lower=30, age_range_upper=20),
        lambda r: r["victims"][1].update(victim_id=r["victims"][0]["victim_id"]),
        lambda r: r["victims"][0]["identifiers"].update(given_names="A\x07"),
        lambda r: r["victims"][0]["identifiers"].update(date_of_birth=dt.date(1800, 1, 1)),
        lambda r: r["victims"][0]["identifiers"]["documents"][0].update(number="n" * 1001),
        lambda r: r.update(victims=[{**r["victims"][0], "victim_id": f"V{i}"} for i in range(201)]),
    ],
)
def test_each_rule_refuses_the_one_pass_and_is_reported_as_before(change: Any) -> None:
    rec = copy.deepcopy(BASE)
    change(rec)
    payload = CASE.encode(rec)
    assert not agrees(CASE, payload)
    refused = one_pass("RecordUpsert", CASE.fingerprint, payload, TRUSTS["case_record"])
    assert refused[0] == "error" and refused[3] is ReasonCode.INVALID_RECORD and refused[5]


def test_a_memoryview_and_bytes_left_over_take_the_general_path() -> None:
    payload = CASE.encode(sample_record("C-1"))
    view: Any = memoryview(payload)  # what a transport could hand over
    assert not agrees(CASE, view)
    assert one_pass("RecordUpsert", CASE.fingerprint, view, TRUSTS["case_record"])[0] == "value"
    assert not agrees(CASE, payload + b"\x00")


def test_the_producers_validator_gets_no_one_pass_and_is_applied_as_before() -> None:
    producer = validator_for(CASE)
    decoder = PayloadDecoder(REGISTRY)
    payload = CASE.encode(sample_record("C-1"))
    got = decoder.decode_checked("RecordUpsert", CASE.fingerprint, payload, producer)
    assert same(got, CASE.decode(payload))
    assert not decoder._checked
    decoder.decode_checked("RecordUpsert", CASE.fingerprint, payload, TRUSTS["case_record"])
    assert decoder._checked[("RecordUpsert", CASE.fingerprint)][0] is TRUSTS["case_record"]
    # the producer's again: not the trust's pass
    got = decoder.decode_checked("RecordUpsert", CASE.fingerprint, payload, producer)
    assert same(got, CASE.decode(payload))
    assert decoder._checked[("RecordUpsert", CASE.fingerprint)][0] is TRUSTS["case_record"]


def test_no_pass_is_kept_for_a_fingerprint_other_than_the_current_schemas() -> None:
    payload = CASE.encode(sample_record("C-1"))
    for i in range(5):  # a sender naming made-up schemas: refused, and nothing kept for them
        made_up = bytes([i]) * 32
        assert agrees(CASE, payload, writer=_named(made_up)) is False
        assert ("RecordUpsert", made_up) not in DECODER._checked


def _named(fingerprint: bytes) -> WireSchema:
    return WireSchema("case_record", {}, None, "", fingerprint)


def test_a_rule_line_runs_once_the_part_is_read_and_refuses_the_datum() -> None:
    seen: list[str] = []
    decode = compile_checked_decoder(CASE.model, victims_rule("{v}", seen))
    record = sample_record("C-1")
    assert seen
    with pytest.raises(Refused):
        decode(CASE.encode(record))
    record["victims"] = []
    assert same(decode(CASE.encode(record)), compile_decoder(CASE.model)(CASE.encode(record)))


def test_a_rule_line_that_refuses_an_empty_list_runs_on_an_empty_list_too() -> None:
    """A list's lines run only where one is not empty if they pass an empty list (most lists
    are): one that refuses it (at least one victim) still runs on an empty list."""
    decode = compile_checked_decoder(CASE.model, victims_rule("not {v}"))
    record = sample_record("C-1")
    assert same(decode(CASE.encode(record)), CASE.decode(CASE.encode(record)))
    record["victims"] = []
    with pytest.raises(Refused):
        decode(CASE.encode(record))


@pytest.mark.parametrize("schema", GENERATED, ids=lambda s: f"{s.name}-{s.fingerprint.hex()[:8]}")
def test_without_rules_the_checked_decoder_is_the_decoder(schema: WireSchema) -> None:
    checked = compile_checked_decoder(schema.model, lambda src, node, v, depth: None)
    plain = compile_decoder(schema.model)

    @settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(datum=values(schema.model.root))
    def run(datum: Any) -> None:
        encoded = fastavro_bytes(schema, datum)
        try:
            expected = plain(encoded)
        except Exception as exc:
            with pytest.raises(type(exc)):
                checked(encoded)
        else:
            assert same(checked(encoded), expected)

    run()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changed_records(oddities=False))
def test_what_the_producers_one_pass_writes_the_trusts_one_pass_reads(rec: dict[str, Any]) -> None:
    """Both ends' passes run the same rule lines (``value_rules``): a record the producer sends
    without a second walk is read by the trust without one (the trust allows a day more of
    clock skew, and its decoder makes every whole number fit Avro's bounds)."""
    assert ENCODE_VALID is not None
    written = ENCODE_VALID(rec)
    if written is not None:
        assert agrees(CASE, written[0])
