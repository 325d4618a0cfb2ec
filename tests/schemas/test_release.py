"""Release signing: consumers refuse unsigned, altered or foreign releases."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import WireSchema, fingerprint_of
from schemas.keys import SigningKey
from schemas.release import (
    LEGACY_RELEASE_SCHEMA,
    Aggregate,
    Release,
    ReleaseRejected,
    sign_release,
    verify_release,
)


def _release() -> Release:
    return Release(
        stream="victims_by_sex_age_form",
        release_id="r1",
        sequence=1,
        issued_at_ms=1_700_000_000_000,
        title="t",
        unit="persons",
        period_start=2020,
        period_end=2024,
        dimensions=("sex",),
        aggregates=(
            Aggregate(("sex",), ("Feminine",), 12, True),
            Aggregate(("sex",), ("Masculine",), None, False),
            Aggregate((), (), None, False),
        ),
        k=10,
        method="primary suppression",
        source_count=3,
        sources=(),
        hierarchies={"sex": {"Any": ("Feminine", "Masculine")}},
        labels={"sex": {"Feminine": "Feminine", "Masculine": "Masculine"}},
    )


def test_sign_and_verify() -> None:
    key = SigningKey.generate("trust")
    raw = sign_release(_release(), key)
    assert raw[:2] == b"\x00\x02"  # release format 2
    got = verify_release(raw, {key.key_id: key.public})
    assert got.cells()[0].value == 12 and got.signing_key_id == key.key_id
    assert got == dataclasses.replace(
        _release(), signing_key_id=key.key_id, signature=got.signature
    )
    assert got.encoded() == raw


def _legacy_signed(key: SigningKey) -> bytes:
    # how tiptrust 0.1 published a release: release.avsc, no prefix, the v1 context
    datum = {
        "stream": "victims_by_sex_age_form",
        "release_id": "r0",
        "sequence": 3,
        "issued_at": 1_700_000_000_000,
        "title": "t",
        "unit": "persons",
        "period_start": 2020,
        "period_end": 2021,
        "dimensions": ["sex"],
        "cells": [
            {"key": ["Feminine"], "count": 14, "suppressed": False},
            {"key": ["Masculine"], "count": None, "suppressed": True},
        ],
        "k": 10,
        "method": "primary suppression",
        "source_count": 1,
        "sources": [],
        "total_persons": 17,
        "caveat": "c",
        "metadata": {},
        "signing_key_id": key.key_id,
        "signature": b"",
    }
    datum["signature"] = key.sign(b"tiptrust/release/v1\x00" + LEGACY_RELEASE_SCHEMA.encode(datum))
    return LEGACY_RELEASE_SCHEMA.encode(datum)


def test_a_format_1_release_is_read_as_aggregates() -> None:
    key = SigningKey.generate("trust")
    raw = _legacy_signed(key)
    got = verify_release(raw, {key.key_id: key.public})
    assert got.format == 1 and got.total == 17
    assert [(a.key, a.value, a.exact) for a in got.cells()] == [
        (("Feminine",), 14, True),
        (("Masculine",), None, False),
    ]
    assert got.encoded() == raw  # what a consumer holds re-encodes to the published bytes
    altered = bytearray(raw)
    altered[altered.find(b"Feminine")] ^= 0x20
    with pytest.raises(ReleaseRejected, match="altered"):
        verify_release(bytes(altered), {key.key_id: key.public})


def test_an_unknown_release_format_is_refused_with_its_reason() -> None:
    key = SigningKey.generate("trust")
    raw = b"\x00\x09" + sign_release(_release(), key)[2:]
    with pytest.raises(ReleaseRejected, match="format"):
        verify_release(raw, {key.key_id: key.public})


def test_a_format_1_signature_cannot_pass_for_format_2() -> None:
    # the same fields signed under the old context do not verify as a current release
    key = SigningKey.generate("trust")
    body = sign_release(_release(), key)[2:]
    from schemas.release import RELEASE_SCHEMA

    datum = RELEASE_SCHEMA.decode(body)
    datum["signature"] = b""
    datum["signature"] = key.sign(b"tiptrust/release/v1\x00" + RELEASE_SCHEMA.encode(datum))
    with pytest.raises(ReleaseRejected, match="altered"):
        verify_release(b"\x00\x02" + RELEASE_SCHEMA.encode(datum), {key.key_id: key.public})


def test_altered_release_is_refused() -> None:
    key = SigningKey.generate("trust")
    raw = bytearray(sign_release(_release(), key))
    i = raw.find(b"Feminine")
    raw[i] ^= 0x20
    with pytest.raises(ReleaseRejected, match="altered"):
        verify_release(bytes(raw), {key.key_id: key.public})


def test_unsigned_and_foreign_releases_are_refused() -> None:
    key = SigningKey.generate("trust")
    from schemas.release import RELEASE_SCHEMA

    unsigned = b"\x00\x02" + RELEASE_SCHEMA.encode(_release().to_avro())
    with pytest.raises(ReleaseRejected, match="unsigned"):
        verify_release(unsigned, {key.key_id: key.public})
    other = SigningKey.generate("trust")
    with pytest.raises(ReleaseRejected, match="does not trust"):
        verify_release(sign_release(_release(), other), {key.key_id: key.public})
    with pytest.raises(ReleaseRejected):
        verify_release(b"junk", {key.key_id: key.public})


@given(st.integers(min_value=0, max_value=2**47))
def test_any_issue_time_survives_the_signature(issued_at_ms: int) -> None:
    # a decoded timestamp-millis is a datetime; going back to milliseconds through a float lost
    # one now and then, and the re-encoded bytes no longer matched the signature
    key = SigningKey.generate("trust")
    release = dataclasses.replace(_release(), issued_at_ms=issued_at_ms)
    got = verify_release(sign_release(release, key), {key.key_id: key.public})
    assert got.issued_at_ms == issued_at_ms


values = st.one_of(st.none(), st.integers(min_value=0, max_value=2**40))


@given(st.lists(st.tuples(st.sampled_from(["F", "M", "U"]), values), max_size=6), values)
def test_any_aggregates_round_trip_through_the_signature(
    cells: list[tuple[str, int | None]], total: int | None
) -> None:
    key = SigningKey.generate("trust")
    aggregates = (
        *(Aggregate(("sex",), (k,), v, v is not None) for k, v in cells),
        Aggregate((), (), total, total is not None),
    )
    release = dataclasses.replace(_release(), aggregates=aggregates)
    got = verify_release(sign_release(release, key), {key.key_id: key.public})
    assert got.aggregates == aggregates and got.total == total


def test_epoch_millis_is_exact() -> None:
    import datetime as dt

    from schemas.codec import epoch_millis

    for ms in (0, 131_766_115, 1_760_000_000_123, 2**47):
        d = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
        assert epoch_millis(d) == ms


# -- rates: the value union's double branch --------------------------------------------------


def _schema_before_rates() -> WireSchema:
    # aggregate_release.avsc as it was before rates: value ["null", "long"]
    from schemas.codec import AVRO_DIR

    source = json.loads((AVRO_DIR / "aggregate_release.avsc").read_text(encoding="utf-8"))
    [aggregates] = [f for f in source["fields"] if f["name"] == "aggregates"]
    [value] = [f for f in aggregates["type"]["items"]["fields"] if f["name"] == "value"]
    assert value["type"] == ["null", "long", "double"]  # the double branch is last
    value["type"] = ["null", "long"]
    parsed, canonical, fingerprint = fingerprint_of(source)
    return WireSchema("aggregate_release", source, parsed, canonical, fingerprint)


def test_a_release_of_counts_is_the_same_bytes_under_the_schema_before_rates() -> None:
    from schemas.release import RELEASE_SCHEMA

    old = _schema_before_rates()
    key = SigningKey.generate("trust")
    raw = sign_release(_release(), key)
    datum = _release().to_avro() | {"signing_key_id": key.key_id, "signature": raw[-64:]}
    assert old.encode(datum) == RELEASE_SCHEMA.encode(datum) == raw[2:]
    # what a consumer with the earlier schema signed/verified is what this one verifies
    signature = key.sign(b"tiptrust/release/v2\x00" + old.encode(datum | {"signature": b""}))
    earlier = b"\x00\x02" + old.encode(datum | {"signature": signature})
    assert verify_release(earlier, {key.key_id: key.public}).aggregates == _release().aggregates


rates = st.one_of(
    st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
)


@settings(max_examples=50)
@given(st.lists(rates, min_size=1, max_size=5))
def test_rates_round_trip_through_the_signature_as_doubles(values: list[float | None]) -> None:
    key = SigningKey.generate("trust")
    aggregates = tuple(
        Aggregate(("sex",), (f"S{i}",), v, v is not None) for i, v in enumerate(values)
    )
    release = dataclasses.replace(_release(), aggregates=aggregates)
    got = verify_release(sign_release(release, key), {key.key_id: key.public})
    assert got.aggregates == aggregates
    # a whole-number rate stays a rate (a double), never turns into a count
    assert all(
        type(a.value) is type(b.value) for a, b in zip(got.aggregates, aggregates, strict=True)
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "12"])
def test_a_value_is_a_count_a_finite_rate_or_null(value: object) -> None:
    with pytest.raises(ValueError):
        Aggregate(("sex",), ("F",), value, False)  # type: ignore[arg-type]


def test_the_schema_tree_stays_compatible_with_the_last_release() -> None:
    from schemas.compatibility import check_tree

    assert all(not problems for problems in check_tree().values())
