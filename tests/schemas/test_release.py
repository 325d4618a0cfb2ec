"""Release signing: consumers refuse unsigned, altered or foreign releases."""

from __future__ import annotations

import pytest

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
