"""The generated Avro encoders (``schemas.fastencode``) write fastavro's bytes exactly: on values
drawn from every shipped schema, and — through fastavro itself — on any value they do not write.
``WireSchema.encode`` (the producer's payload and outbox bytes, the trust's stored record) writes
through them."""

from __future__ import annotations

import datetime as dt
import io
from datetime import date
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import SchemaRegistry, WireSchema, default_registry, fingerprint_of
from schemas.errors import InvalidRecord
from schemas.fastencode import (
    Unfit,
    avro_long,
    compile_checked_encoder,
    compile_encoder,
    compile_split_encoder,
)
from schemas.model import Array, Enum, Fixed, Map, Node, Primitive, Record, Union, parse

from .conftest import sample_record, victims_rule

REGISTRY = default_registry()
CASE = REGISTRY.current("case_record")
encode_record = CASE.encode
SHIPPED = REGISTRY.shipped()
"""Every schema the trust ships: the current ones and every released snapshot."""


def values(node: Node) -> st.SearchStrategy[Any]:
    """Any value of ``node``'s type, with the edges of each (empty lists, long text, 64 bits)."""
    if isinstance(node, Primitive):
        if node.logical_type == "date":
            return st.dates()
        if node.logical_type == "timestamp-millis":  # as the producer writes it: milliseconds
            return st.integers(-(2**63), 2**63 - 1)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "bytes": st.binary(max_size=20),
            "string": st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
        }[node.kind]
    if isinstance(node, Enum):
        return st.sampled_from(node.symbols)
    if isinstance(node, Fixed):
        return st.binary(min_size=node.size, max_size=node.size)
    if isinstance(node, Union):
        return st.one_of(*(values(b) for b in node.branches))
    if isinstance(node, Record):
        return st.fixed_dictionaries({f.name: values(f.type) for f in node.fields})
    if isinstance(node, Array):
        return st.lists(values(node.items), max_size=3)
    assert isinstance(node, Map)
    return st.dictionaries(st.text(max_size=3), values(node.values), max_size=2)


def fastavro_bytes(schema: WireSchema, datum: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema.parsed, datum)
    return buf.getvalue()


def _generated(schema: WireSchema) -> bool:
    try:
        compile_encoder(schema.model)
    except ValueError:  # a timestamp, a map: left to fastavro
        return False
    return True


GENERATED = [s for s in SHIPPED if _generated(s)]


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
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_generated_encoder_writes_fastavros_bytes_for_every_shipped_schema(
    schema: WireSchema, data: st.DataObject
) -> None:
    encode = compile_encoder(schema.model)
    datum = data.draw(values(schema.model.root))
    assert encode(datum) == fastavro_bytes(schema, datum)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(datum=values(CASE.model.root))
def test_a_case_record_is_written_as_fastavro_writes_it(datum: dict[str, Any]) -> None:
    assert encode_record(datum) == fastavro_bytes(CASE, datum)


def full_record(case_id: str) -> dict[str, Any]:
    """A case record with every field present, as the Avro decoder gives one back."""
    return CASE.decode(CASE.encode(sample_record(case_id)))


class _Text(str):
    pass


@pytest.mark.parametrize(
    ("change", "raised"),
    [
        (lambda r: r["event"].pop("countries_of_transit"), KeyError),  # fastavro's default
        (lambda r: r["event"].update(forms_of_exploitation=("Other",)), Unfit),  # a tuple
        (lambda r: r.update(case_id=_Text("C-1")), Unfit),  # a str subclass
        (lambda r: r["event"].update(start_date=20_000), None),  # a date as its day number
    ],
)
def test_values_the_encoder_does_not_write_itself_are_left_to_fastavro(
    change: Any, raised: type[Exception] | None
) -> None:
    record = full_record("C-1")
    change(record)
    generated = compile_encoder(CASE.model)
    if raised is not None:
        with pytest.raises(raised):
            generated(record)
    assert encode_record(record) == fastavro_bytes(CASE, record)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r["event"].update(country_of_exploitation="Atlantis"),  # not a code
        lambda r: r["victims"][0].update(age_at_identification=2**64),  # beyond 64 bits
        lambda r: r["event"].update(year_of_exploitation=2**31),  # an int beyond 32 bits
        lambda r: r["victims"][0].update(age_range_lower=-(2**31) - 1),
        lambda r: r["victims"][0].update(age_at_identification=True),  # a bool for an int
        lambda r: r.update(case_id=None),  # a required text missing
        lambda r: r["reporting_entity"].update(date_recorded="not a date"),
    ],
)
def test_a_record_that_does_not_fit_is_refused_as_before_without_its_values(change: Any) -> None:
    record = full_record("C-1")
    change(record)
    with pytest.raises(InvalidRecord) as refused:
        encode_record(record)
    with pytest.raises(InvalidRecord) as before:  # fastavro alone, as before the generated one
        CASE._fastavro_encode(record)
    assert str(refused.value) == str(before.value)
    assert "Atlantis" not in str(refused.value)


@pytest.mark.parametrize("n", [0, 63, 64, 4095, 4096, 70_000])
def test_long_text_and_lists_have_their_lengths_written_as_fastavro_does(n: int) -> None:
    record = full_record("é" * n)
    record["event"]["regions_of_exploitation"] = ["x"] * min(n, 5000)
    assert encode_record(record) == fastavro_bytes(CASE, record)


def test_dates_are_days_since_1970_and_integers_zig_zag() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "n", "type": "long"},
        ],
    }
    encode = compile_encoder(parse(schema))
    assert encode({"d": date(1970, 1, 2), "n": -1}) == b"\x02\x01"
    assert encode({"d": date(1969, 12, 31), "n": 4096}) == b"\x01\x80\x40"
    parsed, _, _ = fingerprint_of(schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, {"d": date(1969, 12, 31), "n": 4096})
    assert buf.getvalue() == b"\x01\x80\x40"


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
        compile_encoder(parse(schema))


def test_a_timestamp_in_milliseconds_is_written_as_it_is_and_a_datetime_left_to_fastavro() -> None:
    schema = {"type": "long", "logicalType": "timestamp-millis"}
    encode = compile_encoder(parse(schema))
    assert encode(1_700_000_000_123) == fastavro_bytes(
        WireSchema("t", schema, *fingerprint_of(schema)), 1_700_000_000_123
    )
    with pytest.raises(Unfit):
        encode(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize("n", [0, 1, 63, 64, 4095, 4096, -1, -(2**63), 2**63 - 1])
def test_a_count_or_index_joined_by_hand_is_avros_long(n: int) -> None:
    schema = WireSchema("n", {"type": "long"}, *fingerprint_of({"type": "long"}))
    assert avro_long(n) == fastavro_bytes(schema, n)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(datum=values(CASE.model.root))
def test_the_written_datum_gives_the_content_bytes_its_decoded_record_gives(
    datum: dict[str, Any],
) -> None:
    payload, written = CASE.encode_written(datum)
    assert written  # every value drawn is one the generated encoder writes itself
    assert REGISTRY.content_bytes("case_record", payload, written=datum) == (
        REGISTRY.content_bytes("case_record", payload)
    )


def test_content_bytes_from_the_written_datum_is_the_released_schemas_encoding() -> None:
    record = full_record("C-1")
    payload, written = CASE.encode_written(record)
    assert written
    content = REGISTRY.content_bytes("case_record", payload, written=record)
    assert content != payload  # the released schema lacks fields: its bytes are shorter
    assert content == REGISTRY.content_bytes("case_record", payload)
    record["victims"][0]["majority_status"] = "Minor"  # an added field off its default
    payload, _ = CASE.encode_written(record)
    assert REGISTRY.content_bytes("case_record", payload, written=record) == payload


def test_a_value_of_a_subclass_is_not_taken_as_written() -> None:
    class Code(str):
        pass

    record = full_record("C-1")
    record["victims"][0]["majority_status"] = Code("Unknown")
    payload, written = CASE.encode_written(record)
    assert not written
    assert payload == fastavro_bytes(CASE, record)


def test_the_case_record_and_its_content_bytes_are_written_in_one_pass() -> None:
    assert REGISTRY._split("case_record") is not None  # the earliest release is current less fields


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(datum=values(CASE.model.root))
def test_one_pass_gives_the_payload_and_content_bytes_of_two(datum: dict[str, Any]) -> None:
    payload, content = REGISTRY.encode_with_content("case_record", datum)
    assert payload == fastavro_bytes(CASE, datum)
    assert content == REGISTRY.content_bytes("case_record", payload)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r["victims"][0].update(majority_status="Minor"),  # an added field set
        lambda r: r["victims"].clear(),  # no victim: no added field written at all
        lambda r: r.update(case_id=_Text("C-1")),  # not written by the generated pass
        lambda r: r["event"].pop("countries_of_transit"),  # fastavro's default fills it
    ],
)
def test_one_pass_and_its_fallbacks_give_what_two_gave(change: Any) -> None:
    record = full_record("C-1")
    change(record)
    payload, content = REGISTRY.encode_with_content("case_record", record)
    assert payload == fastavro_bytes(CASE, record)
    decoded = CASE.decode(payload)
    assert content == REGISTRY.content_bytes("case_record", payload, decoded)


def _enum_record(symbols: list[str], extra: bool) -> Any:
    fields: list[dict[str, Any]] = [
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": symbols}}
    ]
    if extra:
        fields.append({"name": "n", "type": ["null", "int"], "default": None})
    return parse({"type": "record", "name": "R", "fields": fields})


def test_a_split_is_refused_where_the_old_schema_differs_by_more_than_fields() -> None:
    compile_split_encoder(_enum_record(["A", "B"], True), _enum_record(["A", "B"], False))
    with pytest.raises(ValueError):
        compile_split_encoder(_enum_record(["A", "B", "C"], True), _enum_record(["A", "B"], False))
    with pytest.raises(ValueError):  # the old one has a field the current lacks
        compile_split_encoder(_enum_record(["A"], False), _enum_record(["A"], True))


# --- the checked pass: rules run as the record is written (the producer's validate + encode) ---

OLDEST = REGISTRY._released["case_record"][0]
PLAN = REGISTRY._split_plan("case_record")


def _no_rules(src: Any, node: Node, v: str, depth: int) -> None:
    return None


CHECKED = compile_checked_encoder(CASE.model, OLDEST.model, _no_rules)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(datum=values(CASE.model.root))
def test_the_checked_pass_writes_the_split_and_says_what_the_plan_says(
    datum: dict[str, Any],
) -> None:
    """Without rules it writes the payload fastavro writes, the earliest release's bytes where
    the lossless plan holds, and says whether it holds as the plan does."""
    assert PLAN is not None
    payload, cut, at_defaults = CHECKED(datum)
    assert payload == fastavro_bytes(CASE, datum)
    assert at_defaults == PLAN.holds(datum)
    if at_defaults:
        assert cut == REGISTRY.content_bytes("case_record", payload)


@pytest.mark.parametrize("schema", GENERATED, ids=lambda s: f"{s.name}-{s.fingerprint.hex()[:8]}")
def test_the_checked_pass_without_an_old_schema_gives_the_payload_twice(
    schema: WireSchema,
) -> None:
    encode = compile_checked_encoder(schema.model, None, _no_rules)

    @settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(datum=values(schema.model.root))
    def run(datum: Any) -> None:
        assert encode(datum) == (fastavro_bytes(schema, datum),) * 2 + (True,)

    run()


def test_a_rule_line_refuses_the_datum_and_runs_before_the_part_is_written() -> None:
    seen: list[str] = []
    encode = compile_checked_encoder(CASE.model, OLDEST.model, victims_rule("{v}", seen))
    record = full_record("C-1")
    assert seen and record["victims"]
    with pytest.raises(Unfit):
        encode(record)
    record["victims"] = []
    assert encode(record)[0] == fastavro_bytes(CASE, record)


def _without(node: Any, name: str) -> Any:
    """A copy of a schema's JSON without the record fields called ``name``."""
    if isinstance(node, dict):
        out = {k: _without(v, name) for k, v in node.items()}
        if out.get("type") == "record":
            out["fields"] = [f for f in out["fields"] if f["name"] != name]
        return out
    if isinstance(node, list):
        return [_without(v, name) for v in node]
    return node


def test_a_record_the_earliest_release_does_not_hold_is_known_by_the_next_that_does() -> None:
    """With a release between the earliest and the current schema, the one pass's content bytes
    are still :meth:`SchemaRegistry.content_bytes`'s: the later release's where it holds."""
    source = _without(CASE.source, "shared_ids")
    parsed, canonical, fp = fingerprint_of(source)
    middle = WireSchema("case_record", source, parsed, canonical, fp)
    registry = SchemaRegistry([CASE], [OLDEST, middle])
    encode = registry.checked_encoder("case_record", _no_rules)
    assert encode is not None
    for change, expected in (
        (lambda r: None, "oldest"),
        (lambda r: r["victims"][0].update(majority_status="Minor"), "middle"),
        (
            lambda r: r["victims"][0]["identifiers"].update(
                shared_ids=[{"scheme": "x", "value": "1"}]
            ),
            "current",
        ),
    ):
        record = full_record("C-1")
        change(record)
        payload, content = encode(record)
        assert (payload, content) == registry.encode_with_content("case_record", record)
        assert content == {"oldest": OLDEST, "middle": middle, "current": CASE}[expected].encode(
            record
        )
