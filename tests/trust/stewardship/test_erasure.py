"""Erasure for real: a disposal or a consent withdrawal shreds the person's key, and the KEK
rotation it triggers leaves no key the trust holds able to open an older copy of it."""

from __future__ import annotations

import os
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from schemas.keys import FileKeyProvider
from trust.follow import follow
from trust.stewardship.erasure import Erasure
from trust.store.backup import backup as backup_store
from trust.store.backup import restore as restore_store
from trust.store.db import make_engine
from trust.store.errors import KeyShredded, VaultKeyMismatch
from trust.store.events import PersonKeysShredded, RecordAccepted, SealedBlob
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import person_keys, proj_persons
from trust.store.vault import (
    Vault,
    _derive,
    kek_opens,
    open_vault,
    rotate_if_due,
    rotate_kek,
)

from ..store.builders import case_record, consent, disposal, eid

SOURCE, CASE = "police", "CR-2024-7"
NAMES = {"v1": "Ana Popescu", "v2": "Maria Ionescu", "v3": "Elena Dumitru"}


@pytest.fixture
def provider(tmp_path: Path) -> FileKeyProvider:
    path = tmp_path / "keys" / "kek.bin"
    path.parent.mkdir()
    path.write_bytes(os.urandom(32))
    return FileKeyProvider(path)


def _identifiers(victim_id: str) -> dict[str, Any]:
    given, surname = NAMES[victim_id].split()
    return {
        "given_names": given,
        "surnames": surname,
        "date_of_birth": date(1990, 5, 17),
        "documents": [{"number": f"RO-{victim_id}-88213", "issuing_country": "RO"}],
        "phone": None,
    }


def _accept(store: EventStore, vault: Vault, victims: tuple[str, ...] = ("v1", "v2", "v3")) -> None:
    record = case_record(SOURCE, CASE, [(v, "Feminine", 30) for v in victims])
    for victim in record["victims"]:
        victim["identifiers"] = _identifiers(victim["victim_id"])
    minimised, sealed = vault.seal_identifiers(SOURCE, CASE, record)
    event = RecordAccepted(eid(), SOURCE, CASE, minimised, sealed, 1, 2)
    store.append_batch([([event], Position(f"tip.inbound.{SOURCE}", 0, 0))], "ingest")


def _sealed(store: EventStore) -> dict[str, SealedBlob]:
    """The sealed identifiers of the last accepted record."""
    accepted = store.read_types({"RecordAccepted"}, 0, store.last_seq())
    if not accepted:
        raise AssertionError("no record")
    ev = accepted[-1][1]
    assert isinstance(ev, RecordAccepted)
    return ev.sealed_identifiers


def _wrapped(store: EventStore, vault: Vault, victim_id: str, case: str = CASE) -> bytes | None:
    kid = vault.person_key_id(SOURCE, case, victim_id)
    with store.engine.connect() as conn:
        row = conn.execute(
            select(person_keys.c.wrapped_key).where(person_keys.c.person_key_id == kid)
        ).first()
    assert row is not None
    return None if row[0] is None else bytes(row[0])


def _unwraps(kek: bytes, wrapped: bytes, person_key_id: str) -> bool:
    wrap = AESGCM(_derive(kek, b"tiptrust/vault/wrap/v1"))
    try:
        wrap.decrypt(wrapped[:12], wrapped[12:], person_key_id.encode())
    except InvalidTag:
        return False
    return True


def test_a_disposal_of_one_victim_erases_only_them(
    store: EventStore, provider: FileKeyProvider
) -> None:
    vault = open_vault(store.engine, provider)
    _accept(store, vault)
    old_kek = provider.key_encryption_key()
    copy_before = _wrapped(store, vault, "v1")  # what a backup or a dead row keeps
    assert copy_before is not None

    store.append([disposal(SOURCE, CASE, "v1")], None, "ingest")
    follow(store, Erasure(vault))
    assert vault.rotation_due()
    assert rotate_if_due(vault, provider) == 2  # the two live keys re-wrapped
    assert not vault.rotation_due()

    sealed = _sealed(store)
    with pytest.raises(KeyShredded):
        vault.open_identifiers(SOURCE, CASE, "v1", sealed["v1"])
    for other in ("v2", "v3"):
        opened = vault.open_identifiers(SOURCE, CASE, other, sealed[other])
        assert f"{opened['given_names']} {opened['surnames']}" == NAMES[other]
    # no key the trust still holds opens the copy of v1's key taken before the disposal
    kid = vault.person_key_id(SOURCE, CASE, "v1")
    new_kek = provider.key_encryption_key()
    assert new_kek != old_kek
    assert not provider.staged_path.exists()
    assert not _unwraps(new_kek, copy_before, kid)
    assert _unwraps(old_kek, copy_before, kid)  # the rotation is what made the copy useless

    # a fresh process: the same person key ids, the same keys
    again = open_vault(store.engine, provider)
    assert again.person_key_id(SOURCE, CASE, "v2") == vault.person_key_id(SOURCE, CASE, "v2")
    assert again.open_identifiers(SOURCE, CASE, "v3", sealed["v3"])["surnames"] == "Dumitru"
    with pytest.raises(KeyShredded):
        again.open_identifiers(SOURCE, CASE, "v1", sealed["v1"])


def test_a_whole_case_disposal_and_a_consent_withdrawal_shred(
    store: EventStore, provider: FileKeyProvider
) -> None:
    vault = open_vault(store.engine, provider)
    _accept(store, vault)
    store.append([consent(SOURCE, CASE, "v2")], None, "ingest")
    follow(store, Erasure(vault))
    assert _wrapped(store, vault, "v2") is None
    assert _wrapped(store, vault, "v1") is not None
    store.append([disposal(SOURCE, CASE, None)], None, "ingest")
    follow(store, Erasure(vault))
    assert all(_wrapped(store, vault, v) is None for v in NAMES)
    # nothing new is ever sealed for an erased person: a record that names them again is
    # accepted for its other facts, without their identifiers
    with pytest.raises(KeyShredded):
        vault.seal(vault.person_key_id(SOURCE, CASE, "v1"), b"x", b"")
    _accept(store, vault, ("v1",))
    assert _sealed(store) == {}


def test_a_withdrawal_or_disposal_before_its_case_applies_when_the_case_arrives(
    store: EventStore, provider: FileKeyProvider
) -> None:
    vault = open_vault(store.engine, provider)
    store.append([consent(SOURCE, CASE, "v2")], None, "ingest")
    store.append([disposal(SOURCE, "CR-LATER", None)], None, "ingest")
    follow(store, Erasure(vault))
    _accept(store, vault)  # v1, v2, v3 of CASE: v2 withdrew before the case came
    assert set(_sealed(store)) == {"v1", "v3"}
    persons = {r.victim_id: r.consent_withdrawn for r in counted_rows(store) if r.case_id == CASE}
    assert persons == {"v1": False, "v2": True, "v3": False}
    # a whole-case disposal that came first: every victim of the case, whenever it arrives
    record = case_record(SOURCE, "CR-LATER", [("v9", "Feminine", 30)])
    record["victims"][0]["identifiers"] = _identifiers("v1")
    minimised, sealed = vault.seal_identifiers(SOURCE, "CR-LATER", record)
    assert "v9" in sealed  # its key did not exist to be shredded in advance ...
    store.append(
        [RecordAccepted(eid(), SOURCE, "CR-LATER", minimised, sealed, 1, 2)],
        Position("t", 0, 99),
        "ingest",
    )
    follow(store, Erasure(vault))  # ... so it is shredded when the case arrives
    assert _wrapped(store, vault, "v9", case="CR-LATER") is None
    later = [r for r in counted_rows(store) if r.case_id == "CR-LATER"]
    assert [(r.victim_id, r.disposed) for r in later] == [("v9", True)]


def counted_rows(store: EventStore) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(proj_persons)))


def test_an_interrupted_rotation_is_finished_or_abandoned(
    store: EventStore, provider: FileKeyProvider
) -> None:
    vault = open_vault(store.engine, provider)
    _accept(store, vault)
    sealed = _sealed(store)
    old = provider.key_encryption_key()

    # crash after staging, before the re-wrap committed: the staged key is abandoned
    provider.stage_key_encryption_key(os.urandom(32))
    reopened = open_vault(store.engine, provider)
    assert provider.key_encryption_key() == old and not provider.staged_path.exists()
    assert reopened.open_identifiers(SOURCE, CASE, "v1", sealed["v1"])["given_names"] == "Ana"

    # crash after the re-wrap committed, before the promotion: the staged key is promoted
    new = os.urandom(32)
    provider.stage_key_encryption_key(new)
    reopened.rewrap(new)
    assert kek_opens(store.engine, new) and not kek_opens(store.engine, old)
    finished = open_vault(store.engine, provider)
    assert provider.key_encryption_key() == new and not provider.staged_path.exists()
    assert finished.open_identifiers(SOURCE, CASE, "v2", sealed["v2"])["surnames"] == "Ionescu"


def test_a_wrong_kek_is_refused_once_the_vault_has_rotated(
    store: EventStore, provider: FileKeyProvider
) -> None:
    vault = open_vault(store.engine, provider)
    _accept(store, vault)
    rotate_kek(vault, provider)
    with pytest.raises(VaultKeyMismatch):
        Vault(store.engine, os.urandom(32))


def test_no_byte_of_the_erased_key_survives_in_the_sqlite_files(
    tmp_path: Path, provider: FileKeyProvider
) -> None:
    # SQLite: after the shred the wrapped key is gone from the database and its WAL, and the
    # only other copy (a backup taken before) opens under no key the trust holds
    db = tmp_path / "erase.db"
    store = open_store(f"sqlite:///{db}")
    try:
        vault = open_vault(store.engine, provider)
        _accept(store, vault)
        kid = vault.person_key_id(SOURCE, CASE, "v1")
        wrapped = _wrapped(store, vault, "v1")
        assert wrapped is not None
        backup = tmp_path / "backup.db"
        with sqlite3.connect(db) as a, sqlite3.connect(backup) as b:
            a.backup(b)
        made = tmp_path / "trust.backup"  # and one `tiptrust trust backup` made
        backup_store(store.engine, made)
        store.append([disposal(SOURCE, CASE, "v1")], None, "ingest")
        follow(store, Erasure(vault))
        rotate_if_due(vault, provider)
        for path in tmp_path.glob("erase.db*"):
            assert wrapped not in path.read_bytes(), path.name
        assert wrapped in backup.read_bytes() and wrapped in made.read_bytes()
        assert not _unwraps(provider.key_encryption_key(), wrapped, kid)
        # and the trust's backup no longer restores under the keys the trust holds
        restored = f"sqlite:///{tmp_path / 'restored.db'}"
        restore_store(made, restored)
        engine = make_engine(restored)
        try:
            assert not kek_opens(engine, provider.key_encryption_key())
        finally:
            engine.dispose()
    finally:
        store.close()


def test_each_key_destruction_is_recorded_with_key_ids_and_causes_only(
    store: EventStore, provider: FileKeyProvider
) -> None:
    vault = open_vault(store.engine, provider)
    _accept(store, vault)
    withdrawal = disposal(SOURCE, CASE, "v2")
    store.append([withdrawal], None, "ingest")
    follow(store, Erasure(vault))
    follow(store, Erasure(vault))  # followed again: nothing is shredded or recorded twice
    shreds = [ev for _, ev in store.read() if isinstance(ev, PersonKeysShredded)]
    assert len(shreds) == 1
    (shred,) = shreds
    assert shred.key_ids == [vault.person_key_id(SOURCE, CASE, "v2")]
    assert shred.causes == [withdrawal.event_id]
    text = repr(shred) + str(shred.key_ids)
    assert not any(part in text for name in NAMES.values() for part in name.split())
