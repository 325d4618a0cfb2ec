"""Key files: PEM round trips, 0600 private files, ids, no secrets in reprs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from schemas.errors import UnknownSource, UnknownTrustKey
from schemas.keys import (
    KeyFileError,
    Keyring,
    SigningKey,
    TrustKeyPair,
    TrustKeyState,
    read_signing_key,
    read_trust_key,
    read_trust_public,
    read_verify_key,
    write_signing_key,
    write_trust_key,
)


def test_trust_key_round_trip_and_mode(tmp_path: Path) -> None:
    key = TrustKeyPair.generate()
    path = write_trust_key(tmp_path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_trust_key(path).key_id == key.key_id
    assert read_trust_public(tmp_path / f"{key.key_id}.x25519.pub.pem").key_id == key.key_id


def test_signing_key_round_trip(tmp_path: Path) -> None:
    key = SigningKey.generate("police")
    path = write_signing_key(tmp_path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = read_signing_key(path, "police")
    pub = read_verify_key(tmp_path / f"{key.key_id}.ed25519.pub.pem", "police")
    pub.public.verify(again.sign(b"x"), b"x")


def test_wrong_kind_of_key_file(tmp_path: Path) -> None:
    path = write_signing_key(tmp_path, SigningKey.generate("police"))
    with pytest.raises(KeyFileError):
        read_trust_key(path)
    with pytest.raises(KeyFileError):
        read_trust_key(tmp_path / "missing.pem")


def test_reprs_hold_no_private_material() -> None:
    key = SigningKey.generate("police")
    assert "private" not in repr(key)
    assert "private" not in repr(TrustKeyPair.generate())


def test_keyring_lookups() -> None:
    ring = Keyring()
    with pytest.raises(UnknownTrustKey):
        ring.trust_key("nope")
    with pytest.raises(UnknownSource):
        ring.source_key("police", "nope")


def test_rotation_state_round_trip(tmp_path: Path) -> None:
    s = TrustKeyState("b", ["a", "b"], ["z"])
    s.save(tmp_path / "state.json")
    assert TrustKeyState.load(tmp_path / "state.json") == s
