"""The vault: per-person sealing, crypto-shredding, and no plaintext in the database files."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from trust.store.errors import KeyShredded
from trust.store.events import RecordAccepted
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import person_keys
from trust.store.vault import KeysTaken, Vault, identifiers_aad

from .builders import accepted, case_record, eid

KEK = bytes(range(32))
SECRET = b"Zyxwvutsrq-Distinctive-Plaintext-7741"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


@pytest.fixture
def vault(store: EventStore) -> Vault:
    return Vault(store.engine, KEK)


def raw_bytes(folder: Path) -> bytes:
    """Every byte of the SQLite database and its WAL/SHM files."""
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def test_seal_open_round_trip(vault: Vault) -> None:
    kid = vault.person_key_id("src-a", "case-1", "v1")
    blob = vault.seal(kid, SECRET, b"aad")
    assert blob.person_key_id == kid
    assert vault.open(blob, b"aad") == SECRET
    again = vault.seal(kid, SECRET, b"aad")
    assert again.nonce != blob.nonce and again.ciphertext != blob.ciphertext  # fresh nonces
    assert Vault(vault._engine, KEK).open(blob, b"aad") == SECRET  # a fresh cache, same key


def test_wrong_aad_or_tampering_fails(vault: Vault) -> None:
    blob = vault.seal(vault.person_key_id("s", "c", "v"), SECRET, b"right")
    with pytest.raises(InvalidTag):
        vault.open(blob, b"wrong")
    other = vault.seal(vault.person_key_id("s", "c", "w"), SECRET, b"right")
    moved = type(blob)(other.person_key_id, blob.nonce, blob.ciphertext)
    with pytest.raises(InvalidTag):
        vault.open(moved, b"right")  # another person's key


def test_a_different_kek_cannot_open(vault: Vault) -> None:
    blob = vault.seal(vault.person_key_id("s", "c", "v"), SECRET, b"")
    with pytest.raises(InvalidTag):
        Vault(vault._engine, os.urandom(32)).open(blob, b"")


def test_shred_then_open_raises_key_shredded(vault: Vault) -> None:
    kid = vault.person_key_id("s", "c", "v")
    blob = vault.seal(kid, SECRET, b"")
    vault.open(blob, b"")  # now cached
    assert vault.shred(kid) is True
    assert vault.shred(kid) is False
    assert vault.is_shredded(kid)
    with pytest.raises(KeyShredded) as info:
        vault.open(blob, b"")
    assert info.value.person_key_id == kid
    with pytest.raises(KeyShredded):
        Vault(vault._engine, KEK).open(blob, b"")
    with pytest.raises(KeyShredded):
        vault.seal(kid, b"new data", b"")  # never silently re-created


def test_shredding_a_person_never_sealed_leaves_a_tombstone(vault: Vault) -> None:
    kid = vault.person_key_id("s", "c", "never")
    assert vault.shred(kid) is False
    assert vault.is_shredded(kid)
    with pytest.raises(KeyShredded):
        vault.seal(kid, SECRET, b"")


def test_shredding_one_victim_keeps_the_others(vault: Vault) -> None:
    record = case_record("s", "c", [("v1", "Feminine", 20), ("v2", "Masculine", 30)])
    record["victims"][0]["identifiers"] = {"given_names": "Ann", "documents": []}
    record["victims"][1]["identifiers"] = {"given_names": "Bob", "documents": []}
    minimised, sealed = vault.seal_identifiers("s", "c", record)
    assert all(v["identifiers"] is None for v in minimised["victims"])
    assert record["victims"][0]["identifiers"] is not None  # the input is left alone
    vault.shred(sealed["v1"].person_key_id)
    with pytest.raises(KeyShredded):
        vault.open_identifiers("s", "c", "v1", sealed["v1"])
    assert vault.open_identifiers("s", "c", "v2", sealed["v2"])["given_names"] == "Bob"


def test_person_key_ids_are_deterministic_opaque_and_distinct(vault: Vault) -> None:
    a = vault.person_key_id("src-a", "case-1", "v1")
    assert a == Vault(vault._engine, KEK).person_key_id("src-a", "case-1", "v1")
    assert len(a) == 64 and int(a, 16) >= 0
    others = {
        vault.person_key_id("src-a", "case-1", "v2"),
        vault.person_key_id("src-a", "case-2", "v1"),
        vault.person_key_id("src-b", "case-1", "v1"),
        vault.person_key_id("src-a", "case-1v", "1"),  # no ambiguity from concatenation
        Vault(vault._engine, os.urandom(32)).person_key_id("src-a", "case-1", "v1"),
    }
    assert a not in others and len(others) == 5
    assert "src-a" not in a and "case" not in a


def test_database_files_never_hold_the_plaintext(
    tmp_path: Path, store: EventStore, vault: Vault
) -> None:
    record = case_record("src-a", "case-1", [("v1", "Feminine", 20)])
    record["victims"][0]["identifiers"] = {
        "given_names": SECRET.decode(),
        "surnames": None,
        "date_of_birth": None,
        "documents": [{"number": "DOC-" + SECRET.decode(), "issuing_country": "RO"}],
        "phone": None,
    }
    minimised, sealed = vault.seal_identifiers("src-a", "case-1", record)
    event = RecordAccepted(eid(), "src-a", "case-1", minimised, sealed, 1, 2)
    store.append([event], Position("t", 0, 0), "ingest")
    ((_, back),) = list(store.read())
    assert isinstance(back, RecordAccepted)
    opened = vault.open_identifiers("src-a", "case-1", "v1", back.sealed_identifiers["v1"])
    assert opened["given_names"] == SECRET.decode()
    store.close()  # checkpoint the WAL into the file too
    data = raw_bytes(tmp_path)
    assert len(data) > 0
    assert SECRET not in data
    assert SECRET.decode("ascii").encode("utf-16-le") not in data


def test_a_shredded_key_leaves_the_database_files(
    tmp_path: Path, store: EventStore, vault: Vault
) -> None:
    kid = vault.person_key_id("s", "c", "v")
    vault.seal(kid, SECRET, b"")
    with store.engine.connect() as conn:
        wrapped = conn.execute(
            select(person_keys.c.wrapped_key).where(person_keys.c.person_key_id == kid)
        ).scalar_one()
    assert wrapped is not None and len(wrapped) == 12 + 32 + 16
    assert bytes(wrapped) in raw_bytes(tmp_path)
    vault.shred(kid)
    assert bytes(wrapped) not in raw_bytes(tmp_path)  # secure_delete + WAL checkpoint


def test_the_kek_must_be_32_bytes(store: EventStore) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Vault(store.engine, b"short")
    assert "KEK" not in repr(Vault(store.engine, KEK)) and str(KEK) not in repr(
        Vault(store.engine, KEK)
    )


@pytest.mark.postgres
def test_seal_open_shred_on_postgres(postgres_schema_url: str) -> None:
    store = open_store(postgres_schema_url)
    try:
        vault = Vault(store.engine, KEK)
        kid = vault.person_key_id("s", "c", "v")
        blob = vault.seal(kid, SECRET, b"aad")
        assert Vault(store.engine, KEK).open(blob, b"aad") == SECRET
        assert vault.shred(kid) is True
        with pytest.raises(KeyShredded):
            Vault(store.engine, KEK).open(blob, b"aad")
    finally:
        store.close()


def _key_rows(store: EventStore) -> dict[str, bytes | None]:
    with store.engine.connect() as conn:
        return {
            k: w
            for k, w in conn.execute(select(person_keys.c.person_key_id, person_keys.c.wrapped_key))
        }


def test_deferred_keys_are_written_only_by_the_append_that_stores_their_seals(
    backend_store: EventStore,
) -> None:
    store, vault = backend_store, Vault(backend_store.engine, KEK)  # both databases
    old = vault.person_key_id("s", "c", "old")
    vault.prepare([old])  # an existing person: read, never made again
    vault.forget_cached_keys()
    new = vault.person_key_id("s", "c", "new")
    vault.prepare_deferred([old, new])
    blob = vault.seal(new, SECRET, b"aad")  # under the key made in memory
    assert set(_key_rows(store)) == {old}  # nothing written yet, no transaction of its own
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        vault.write_pending_in(conn)
        raise RuntimeError("the append failed")
    assert set(_key_rows(store)) == {old}  # rolled back with the append
    store.append_batch(
        [([accepted(sealed={"v1": blob})], Position("t", 0, 0))],
        "ingest",
        effect=vault.write_pending_in,
    )
    vault.keep_pending()
    assert set(_key_rows(store)) == {old, new}
    assert Vault(store.engine, KEK).open(blob, b"aad") == SECRET  # the key that was written


def test_a_deferred_key_taken_meanwhile_is_refused_and_its_seals_never_stored(
    backend_store: EventStore,
) -> None:
    store, vault = backend_store, Vault(backend_store.engine, KEK)  # both databases
    kid = vault.person_key_id("s", "c", "v")
    vault.prepare_deferred([kid])
    blob = vault.seal(kid, SECRET, b"aad")
    other = Vault(store.engine, KEK)
    theirs = other.seal(kid, b"another process's seal", b"aad")  # makes the key first
    with pytest.raises(KeysTaken):
        store.append_batch(
            [([accepted(sealed={"v1": blob})], Position("t", 0, 0))],
            "ingest",
            effect=vault.write_pending_in,
        )
    assert list(store.read()) == []
    vault.discard_pending()
    vault.prepare_deferred([kid])  # sealing again uses the key that exists
    again = vault.seal(kid, SECRET, b"aad")
    store.append_batch(
        [([accepted(sealed={"v1": again})], Position("t", 0, 0))],
        "ingest",
        effect=vault.write_pending_in,
    )
    assert other.open(again, b"aad") == SECRET and vault.open(theirs, b"aad").startswith(b"another")


def test_a_shred_tombstone_is_not_overwritten_by_a_deferred_key(
    backend_store: EventStore,
) -> None:
    store, vault = backend_store, Vault(backend_store.engine, KEK)  # both databases
    kid = vault.person_key_id("s", "c", "gone")
    Vault(store.engine, KEK).shred(kid)  # consent withdrawn before the record came
    vault.prepare_deferred([kid])
    with pytest.raises(KeyShredded):
        vault.seal(kid, SECRET, b"aad")
    store.append_batch([([], Position("t", 0, 0))], "ingest", effect=vault.write_pending_in)
    assert _key_rows(store) == {kid: None}


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_identifiers_aad_is_json_dumps_of_the_ids(source: str, case: str, victim: str) -> None:
    # every blob ever sealed was bound to exactly these bytes
    expected = b"tiptrust/identifiers/v1\x00" + json.dumps([source, case, victim]).encode()
    assert identifiers_aad(source, case, victim) == expected


def test_only_the_keys_another_writer_took_are_counted_as_taken(backend_store: EventStore) -> None:
    store, vault = backend_store, Vault(backend_store.engine, KEK)
    kids = [vault.person_key_id("s", "c", f"v{i}") for i in range(5)]
    vault.prepare_deferred(kids)
    other = Vault(store.engine, KEK)
    other.seal(kids[1], b"made first", b"aad")
    other.shred(kids[3])
    with pytest.raises(KeysTaken) as taken:
        store.append_batch([([], Position("t", 0, 0))], "ingest", effect=vault.write_pending_in)
    assert taken.value.count == 2
    assert set(_key_rows(store)) == {kids[1], kids[3]}  # the append rolled back whole


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_a_person_key_id_is_the_hmac_of_the_three_length_prefixed_ids(
    source: str, case: str, victim: str
) -> None:
    # every key id ever stored was made from exactly this encoding: it must never change
    vault = Vault.__new__(Vault)
    vault._id_key, vault._key_ids, vault._cache_size = bytes(range(32)), {}, 8
    ids = (x.encode() for x in (source, case, victim))
    message = b"".join(len(b).to_bytes(4, "big") + b for b in ids)
    expected = hmac.digest(bytes(range(32)), message, "sha256").hex()
    assert vault.person_key_id(source, case, victim) == expected
    assert vault.person_key_id(source, case, victim) == expected  # and from the cache


def test_sealing_in_place_clears_the_callers_record_and_seals_the_same(vault: Vault) -> None:
    record = case_record("s", "c1", [("v1", "Feminine", 20), ("v2", "Masculine", 30)])
    record["victims"][0]["identifiers"] = {"given_names": "Ann", "documents": []}
    record["victims"][1]["identifiers"] = {"given_names": "Bob", "documents": []}
    copied, sealed_copy = vault.seal_identifiers("s", "c1", record)
    assert record["victims"][0]["identifiers"] is not None  # the caller's record untouched
    same, sealed = vault.seal_identifiers("s", "c1", record, in_place=True)
    assert same is record and same == copied
    assert all(v["identifiers"] is None for v in record["victims"])
    assert set(sealed) == set(sealed_copy) == {"v1", "v2"}
    for victim_id, blob in sealed.items():
        assert blob.nonce != sealed_copy[victim_id].nonce  # a fresh nonce per seal
        assert vault.open_identifiers("s", "c1", victim_id, blob) == vault.open_identifiers(
            "s", "c1", victim_id, sealed_copy[victim_id]
        )
