"""Key files: PEM round trips, 0600 private files, ids, no secrets in reprs."""

from __future__ import annotations

import json
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


def test_key_store_records_the_active_key_not_a_file_order(tmp_path: Path) -> None:
    from schemas.keys import KeyStore

    store = KeyStore(tmp_path / "keys", "police")
    assert store.active() is None
    first = store.create()
    second = store.create()
    # whatever the file names sort as, the record says which key is active
    assert store.active() is not None and store.active().key_id == second.key_id  # type: ignore[union-attr]
    assert {k.key_id for k in store.verify_keys()} == {first.key_id, second.key_id}
    state = json.loads((tmp_path / "keys" / "state.json").read_text())
    assert state["held"] == [first.key_id, second.key_id]


def test_key_store_adopts_one_unrecorded_key_and_refuses_to_guess_among_several(
    tmp_path: Path,
) -> None:
    from schemas.keys import KeyFileError, KeyStore, SigningKey, write_signing_key

    one = tmp_path / "one"
    one.mkdir()
    key = SigningKey.generate("police")
    write_signing_key(one, key)
    assert KeyStore(one, "police").active().key_id == key.key_id  # type: ignore[union-attr]
    assert (one / "state.json").exists()

    several = tmp_path / "several"
    several.mkdir()
    write_signing_key(several, SigningKey.generate("police"))
    write_signing_key(several, SigningKey.generate("police"))
    with pytest.raises(KeyFileError, match="no record of which is active"):
        KeyStore(several, "police").active()


def test_an_unreadable_key_file_is_an_error_not_skipped(tmp_path: Path) -> None:
    from schemas.keys import FileKeyProvider, KeyFileError, KeyStore

    store = KeyStore(tmp_path / "keys", "police")
    key = store.create()
    (tmp_path / "keys" / f"{key.key_id}.ed25519.pem").write_bytes(b"garbage")
    with pytest.raises(KeyFileError):
        store.active()
    (tmp_path / "kek.bin").write_bytes(b"short")
    with pytest.raises(KeyFileError, match="32-byte"):
        FileKeyProvider(tmp_path / "kek.bin").key_encryption_key()
    with pytest.raises(KeyFileError):
        FileKeyProvider(tmp_path / "missing.bin").key_encryption_key()
