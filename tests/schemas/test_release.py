"""Release signing: consumers refuse unsigned, altered or foreign releases."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.keys import SigningKey
from schemas.release import Cell, Release, ReleaseRejected, sign_release, verify_release


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
        cells=(Cell(("Feminine",), 12, False), Cell(("Masculine",), None, True)),
        k=10,
        method="primary suppression",
        source_count=3,
        sources=(),
        total_persons=None,
    )


def test_sign_and_verify() -> None:
    key = SigningKey.generate("trust")
    raw = sign_release(_release(), key)
    got = verify_release(raw, {key.key_id: key.public})
    assert got.cells[0].count == 12 and got.signing_key_id == key.key_id


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

    unsigned = RELEASE_SCHEMA.encode(_release().to_avro())
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


def test_epoch_millis_is_exact() -> None:
    import datetime as dt

    from schemas.codec import epoch_millis

    for ms in (0, 131_766_115, 1_760_000_000_123, 2**47):
        d = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
        assert epoch_millis(d) == ms
