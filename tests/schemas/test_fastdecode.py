"""The generated Avro decoders (``schemas.fastdecode``) read fastavro's values exactly: on records
drawn from every shipped schema, on those bytes mutated at random (where the generated reader
either gives fastavro's value or leaves the bytes to fastavro, which reads or refuses them as
before), and on the encodings fastavro's writer never makes (negative block counts, non-minimal
varints)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import WireSchema, default_registry, fingerprint_of
from schemas.errors import InvalidRecord, UnknownSchema
from schemas.fastdecode import (
    PayloadDecoder,
    Unread,
    compile_decoder,
    for_schema,
    with_fallback,
)
from schemas.model import parse

from .conftest import sample_record
from .test_fastencode import SHIPPED, fastavro_bytes, values

REGISTRY = default_registry()
CASE = REGISTRY.current("case_record")


def _generated(schema: WireSchema) -> bool:
    try:
        compile_decoder(schema.model)
    except ValueError:  # a map: left to fastavro
        return False
    return True


GENERATED = [s for s in SHIPPED if _generated(s)]


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (``1 == True`` and ``date == datetime`` do
    not pass), with an aware datetime's zone the same."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dt.datetime):
        return bool(a == b and a.tzinfo == b.tzinfo and a.utcoffset() == b.utcoffset())
    equal: bool = a == b
    return equal


def fastavro_value(schema: WireSchema, data: bytes) -> Any:
    """What fastavro reads from ``data`` (as ``WireSchema.decode`` reads it, without its
    trailing-bytes check)."""
    return fastavro.schemaless_reader(io.BytesIO(data), schema.parsed, None)


def outcome(decode: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(data)
    except Exception as exc:
        return "error", (type(exc), str(exc))


def test_every_shipped_payload_schema_and_each_case_record_is_generated() -> None:
    names = {s.name for s in GENERATED}
    assert {
        "case_record",
        "record_retraction",
        "consent_withdrawal",
        "disposal_request",
        "envelope",
    } <= names
    assert sum(s.name == "case_record" for s in GENERATED) >= 2  # current and released


@pytest.mark.parametrize("schema", GENERATED, ids=lambda s: f"{s.name}-{s.fingerprint.hex()[:8]}")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_generated_decoder_reads_fastavros_values_for_every_shipped_schema(
    schema: WireSchema, data: st.DataObject
) -> None:
    datum = data.draw(values(schema.model.root))
    encoded = fastavro_bytes(schema, datum)
    decode = compile_decoder(schema.model)
    try:
        expected = schema.decode(encoded)
    except InvalidRecord:  # e.g. a timestamp beyond datetime's years: fastavro cannot read it
        with pytest.raises(Exception):  # noqa: B017 (any error: the fallback gives fastavro's)
            decode(encoded)
        assert outcome(for_schema(schema), encoded) == outcome(schema.decode, encoded)
        return
    assert same(decode(encoded), expected)
    assert same(for_schema(schema)(encoded), expected)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datum=values(CASE.model.root))
def test_a_case_record_is_read_back_as_fastavro_reads_it(datum: dict[str, Any]) -> None:
    encoded = CASE.encode(datum)
    assert same(compile_decoder(CASE.model)(encoded), CASE.decode(encoded))


@st.composite
def mutated(draw: st.DrawFn, schema: WireSchema) -> bytes:
    """A valid encoding of ``schema`` with a few bytes changed, inserted, removed or cut off."""
    data = bytearray(fastavro_bytes(schema, draw(values(schema.model.root))))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["set", "insert", "delete", "cut", "append"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        byte = draw(st.integers(0, 255))
        if how == "set" and data:
            data[at] = byte
        elif how == "insert":
            data.insert(at, byte)
        elif how == "delete" and data:
            del data[at]
        elif how == "cut":
            del data[at:]
        else:
            data.append(byte)
    return bytes(data)


@pytest.mark.parametrize("schema", GENERATED, ids=lambda s: f"{s.name}-{s.fingerprint.hex()[:8]}")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_malformed_bytes_are_read_or_refused_exactly_as_fastavro_does(
    schema: WireSchema, data: st.DataObject
) -> None:
    raw = data.draw(mutated(schema))
    generated = compile_decoder(schema.model)
    try:
        mine = generated(raw)
    except Exception:  # left to fastavro: the wrapper gives its value or its error
        pass
    else:  # the generated reader never gives a value fastavro would not give
        assert same(mine, fastavro_value(schema, raw))
        assert same(mine, schema.decode(raw))
    assert outcome(for_schema(schema), raw) == outcome(schema.decode, raw)


def wire(schema_json: Any) -> WireSchema:
    """A record of one field of the type ``schema_json``: its bytes are the field's."""
    source = {"type": "record", "name": "R", "fields": [{"name": "v", "type": schema_json}]}
    return WireSchema("t", source, *fingerprint_of(source))


def test_blocks_with_negative_counts_and_byte_sizes_are_read_as_fastavro_reads_them() -> None:
    one = wire({"type": "array", "items": "string"})
    # a block of -2 items (then its size, 6 bytes), a block of 1, the end
    data = b"\x03\x0c\x04ab\x04cd\x02\x04ef\x00"
    assert fastavro_value(one, data) == {"v": ["ab", "cd", "ef"]}
    assert compile_decoder(one.model)(data) == {"v": ["ab", "cd", "ef"]}


def test_a_varint_longer_than_it_needs_is_read_as_fastavro_reads_it() -> None:
    one = wire("long")
    data = b"\x82\x80\x00"  # 1, in three bytes
    assert compile_decoder(one.model)(data) == {"v": 1} == fastavro_value(one, data)


@pytest.mark.parametrize("schema", ["long", "int", "string", "bytes"])
def test_two_byte_varints_are_read_as_fastavro_reads_them(schema: str) -> None:
    # the generated code reads a varint of two bytes inline: every value it can hold, both signs,
    # as a number or as a length (a negative one left to fastavro), and one cut after its first
    # byte (refused)
    one = wire(schema)
    decode, general = compile_decoder(one.model), for_schema(one)
    for raw in range(0x80, 0x4000):
        head = bytes((raw & 0x7F | 0x80, raw >> 7))
        data = head + b"x" * (raw >> 1) if schema in ("string", "bytes") else head
        if schema in ("string", "bytes") and raw & 1:
            assert outcome(decode, data)[0] == "error"
        else:
            assert same(decode(data), fastavro_value(one, data))
        assert outcome(general, data) == outcome(one.decode, data)
    assert outcome(decode, b"\x80")[0] == "error"
    assert outcome(general, b"\x80") == outcome(one.decode, b"\x80")


@pytest.mark.parametrize(
    ("schema", "data"),
    [
        ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, b"\x04"),  # index 2 of 2
        ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, b"\x01"),  # index -1
        (["null", "int"], b"\x01"),  # branch -1: fastavro takes Python's last item
        (["null", "int"], b"\x04"),  # branch 2 of 2
        ("boolean", b"\x02"),
        ("int", b"\x80\x80\x80\x80\x10"),  # 2**31: beyond an int
        ("long", b"\xff" * 10 + b"\x01"),  # beyond 64 bits
        ("string", b"\x08ab"),  # longer than the bytes
        ("string", b"\x03ab"),  # a negative length
        ("string", b"\x04\xff\xfe"),  # not UTF-8
        ({"type": "fixed", "name": "F", "size": 4}, b"abc"),
        ("double", b"\x00\x00"),
        ({"type": "int", "logicalType": "date"}, b"\xfe\xff\xff\xff\x0f"),  # before year 1
        ("long", b""),
    ],
)
def test_bytes_the_generated_decoder_does_not_read_go_to_fastavro(schema: Any, data: bytes) -> None:
    one = wire(schema)
    assert outcome(compile_decoder(one.model), data)[0] == "error"
    assert outcome(for_schema(one), data) == outcome(one.decode, data)


def test_trailing_bytes_are_refused_with_fastavros_error() -> None:
    encoded = CASE.encode(sample_record("C-1")) + b"\x00"
    with pytest.raises(Unread):
        compile_decoder(CASE.model)(encoded)
    with pytest.raises(InvalidRecord) as refused:
        for_schema(CASE)(encoded)
    assert "trailing bytes" in str(refused.value)


def test_a_memoryview_is_read_by_the_general_reader() -> None:
    encoded = CASE.encode(sample_record("C-1"))
    decode = with_fallback(CASE.model, CASE.decode)
    assert same(decode(memoryview(encoded)), CASE.decode(encoded))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "map", "values": "int"},
        ["null", "int", "string"],
        {"type": "long", "logicalType": "timestamp-micros"},
    ],
)
def test_a_schema_it_cannot_generate_is_refused_when_compiled(schema: Any) -> None:
    with pytest.raises(ValueError):
        compile_decoder(parse(schema))
    one = wire(schema)
    assert for_schema(one) == one.decode  # fastavro alone


def test_timestamps_in_milliseconds_come_back_as_fastavros_aware_datetimes() -> None:
    one = wire({"type": "long", "logicalType": "timestamp-millis"})
    for ms in (0, 1_700_000_000_123, -1, -62_135_596_800_000):
        data = fastavro_bytes(one, {"v": ms})
        assert same(compile_decoder(one.model)(data), one.decode(data))


class TestPayloadDecoder:
    """``PayloadDecoder.decode_payload`` gives what ``SchemaRegistry.decode_payload`` gives."""

    decoder = PayloadDecoder(REGISTRY)

    def test_a_payload_of_the_current_schema_is_read_by_the_generated_reader(self) -> None:
        payload = CASE.encode(sample_record("C-1"))
        got = self.decoder.decode_payload("RecordUpsert", CASE.fingerprint, payload)
        assert same(got, REGISTRY.decode_payload("RecordUpsert", CASE.fingerprint, payload))
        assert ("RecordUpsert", CASE.fingerprint) in self.decoder._current

    def test_a_payload_of_an_older_schema_is_resolved_by_the_registry(self) -> None:
        old = next(s for s in SHIPPED if s.name == "case_record" and s is not CASE)
        record = CASE.decode(CASE.encode(sample_record("C-1")))
        payload = fastavro_bytes(old, record)
        got = self.decoder.decode_payload("RecordUpsert", old.fingerprint, payload)
        assert same(got, REGISTRY.decode_payload("RecordUpsert", old.fingerprint, payload))
        assert "majority_status" in got["victims"][0]  # resolved into the current schema

    @pytest.mark.parametrize(
        ("kind", "fingerprint"),
        [
            ("RecordUpsert", b"\x00" * 32),  # no such schema
            ("RecordRetraction", CASE.fingerprint),  # a case record for a retraction
        ],
    )
    def test_a_wrong_schema_is_refused_as_the_registry_refuses_it(
        self, kind: str, fingerprint: bytes
    ) -> None:
        payload = CASE.encode(sample_record("C-1"))
        with pytest.raises(UnknownSchema) as mine:
            self.decoder.decode_payload(kind, fingerprint, payload)
        with pytest.raises(UnknownSchema) as theirs:
            REGISTRY.decode_payload(kind, fingerprint, payload)
        assert str(mine.value) == str(theirs.value)

    def test_an_unknown_kind_is_refused_as_the_registry_refuses_it(self) -> None:
        payload = CASE.encode(sample_record("C-1"))
        mine = outcome(
            lambda p: self.decoder.decode_payload("Nonsense", CASE.fingerprint, p), payload
        )
        theirs = outcome(
            lambda p: REGISTRY.decode_payload("Nonsense", CASE.fingerprint, p), payload
        )
        assert mine == theirs and mine[0] == "error"

    def test_malformed_bytes_of_the_current_schema_raise_the_registrys_error(self) -> None:
        payload = CASE.encode(sample_record("C-1"))[:-3]
        with pytest.raises(InvalidRecord) as mine:
            self.decoder.decode_payload("RecordUpsert", CASE.fingerprint, payload)
        with pytest.raises(InvalidRecord) as theirs:
            REGISTRY.decode_payload("RecordUpsert", CASE.fingerprint, payload)
        assert str(mine.value) == str(theirs.value)
