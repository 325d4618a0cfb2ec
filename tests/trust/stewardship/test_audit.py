"""The audit log: one entry per stored event, exactly once and in order, without personal data;
`verify` catches an edited, a removed and a reordered entry and a forged checkpoint; proofs
verify against the signed checkpoints."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from schemas.envelope import merkle_root_from_proof
from schemas.keys import FileKeyProvider, SigningKey
from trust.follow import follow
from trust.stewardship import audit
from trust.stewardship.audit_entry import chain_next
from trust.stewardship.audit_proofs import leaf_hash, verify_consistency
from trust.stewardship.erasure import Erasure
from trust.store.db import checkpoint
from trust.store.events import (
    IdentifiersViewed,
    LinkDecision,
    RecordAccepted,
    RecordLinked,
    SubscriptionAdded,
    VictimRef,
)
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.vault import Vault, open_vault

from ..store.builders import case_record, consent, disposal, eid, rejected, release

SOURCE, CASE = "police", "CASE-7f3a9"
VICTIMS = {"VICTIM-a1": ("Ana", "Popescu", "RO-55120917"), "VICTIM-b2": ("Ion", "Vlad", "RO-88213")}
INBOUND = f"tip.inbound.{SOURCE}"


def _vault(store: EventStore, tmp_path: Path) -> Vault:
    path = tmp_path / "keys" / "kek.bin"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        path.write_bytes(os.urandom(32))
    return open_vault(store.engine, FileKeyProvider(path))


def _accept(store: EventStore, vault: Vault) -> None:
    record = case_record(SOURCE, CASE, [(v, "Feminine", 30) for v in VICTIMS])
    for victim in record["victims"]:
        given, surname, document = VICTIMS[victim["victim_id"]]
        victim["identifiers"] = {
            "given_names": given,
            "surnames": surname,
            "date_of_birth": date(1990, 5, 17),
            "documents": [{"number": document, "issuing_country": "RO"}],
            "phone": None,
        }
    minimised, sealed = vault.seal_identifiers(SOURCE, CASE, record)
    event = RecordAccepted(eid(), SOURCE, CASE, minimised, sealed, 1, 2)
    store.append_batch([([event], Position(INBOUND, 0, 0))], "ingest")


def _history(store: EventStore, vault: Vault, log: audit.AuditLog) -> None:
    """Ingest, rejection, linkage, an operator's view, a subscription and a release, consent
    withdrawal and disposal — followed in two rounds (two checkpoints)."""
    victim = VictimRef(SOURCE, CASE, "VICTIM-a1")
    _accept(store, vault)
    store.append([rejected(SOURCE, offset=1)], Position(INBOUND, 0, 1), "ingest")
    store.append(
        [RecordLinked(eid(), victim, "person-1", LinkDecision.NEW_PERSON, "m1", [], 3)],
        None,
        "linkage",
    )
    follow(store, log)
    store.append([IdentifiersViewed(eid(), "custodian", [victim], "review r1", 4)], None, "op")
    store.append([SubscriptionAdded(eid(), "unodc", "sdg-16-2-2", "statistics", 5)], None, "op")
    store.append([release()], None, "op")
    store.append([consent(SOURCE, CASE, "VICTIM-a1")], Position(INBOUND, 0, 2), "ingest")
    store.append([disposal(SOURCE, CASE, None)], Position(INBOUND, 0, 3), "ingest")
    follow(store, log)


def _entries(store: EventStore) -> list[dict[str, Any]]:
    lines = list(audit.export_lines(store.engine))
    return [orjson.loads(line) for line in lines[:-1]]


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("trust")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, key: SigningKey) -> Path:
    """An audited store built once per module; each test gets a copy of it."""
    folder = tmp_path_factory.mktemp("audited")
    store = open_store(f"sqlite:///{folder / 'store.db'}")
    vault = _vault(store, folder)
    _history(store, vault, audit.AuditLog(vault.person_key_id, key))
    checkpoint(store.engine)
    store.close()
    return folder


@pytest.fixture
def audited(template: Path, tmp_path: Path) -> Iterator[EventStore]:
    shutil.copytree(template / "keys", tmp_path / "keys")
    shutil.copyfile(template / "store.db", tmp_path / "store.db")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


def test_every_stored_event_has_one_entry_in_store_order(
    audited: EventStore, tmp_path: Path, key: SigningKey
) -> None:
    entries = _entries(audited)
    stored = list(audited.read())
    assert [e["event_seq"] for e in entries] == [seq for seq, _ in stored]
    assert [e["kind"] for e in entries] == [ev.event_type for _, ev in stored]
    assert [e["leaf_index"] for e in entries] == list(range(len(stored)))
    categories = {e["kind"]: e["category"] for e in entries}
    assert categories["RecordAccepted"] == categories["MessageRejected"] == "ingest"
    assert categories["RecordLinked"] == "linkage"
    assert categories["IdentifiersViewed"] == "access"
    assert categories["ReleaseIssued"] == categories["SubscriptionAdded"] == "release"
    # following again audits nothing twice
    vault = _vault(audited, tmp_path)
    assert follow(audited, audit.AuditLog(vault.person_key_id, key)) == 0
    assert len(_entries(audited)) == len(stored)
    assert [c.tree_size for c in audit.checkpoints(audited.engine)] == [3, 8]


def test_entries_hold_no_personal_data_and_name_records_by_their_key_ids(
    audited: EventStore, tmp_path: Path
) -> None:
    raw = "\n".join(audit.export_lines(audited.engine))
    for victim_id, (given, surname, document) in VICTIMS.items():
        for value in (victim_id, given, surname, document, "1990-05-17"):
            assert value not in raw
    assert CASE not in raw
    assert "unknown code" not in raw  # a rejection's free-text detail is left out
    entries = {e["kind"]: e for e in _entries(audited)}
    vault = _vault(audited, tmp_path)
    a1 = vault.person_key_id(SOURCE, CASE, "VICTIM-a1")
    # the record's key id ties its acceptance, linkage, view and consent withdrawal together
    assert a1 in entries["RecordAccepted"]["facts"]["refs"]
    assert entries["RecordLinked"]["facts"]["refs"] == [a1]
    assert entries["IdentifiersViewed"]["facts"] == {
        "operator": "custodian",
        "refs": [a1],
        "sources": [SOURCE],
        "purpose": "review r1",
    }
    assert entries["ConsentWithdrawn"]["facts"]["refs"] == [a1]
    assert entries["DisposalRequested"]["facts"]["whole_case"] is True
    assert (
        entries["DisposalRequested"]["facts"]["case_ref"]
        == entries["RecordAccepted"]["facts"]["case_ref"]
    )


def test_a_clean_log_verifies_with_signed_checkpoints(audited: EventStore, key: SigningKey) -> None:
    result = audit.verify(audited.engine, {key.key_id: key.public})
    assert result.ok, result.problems
    assert (result.entries, result.checkpoints, result.signed) == (8, 2, 2)
    head = audit.latest_checkpoint(audited.engine)
    assert head is not None and result.root == head.root and result.chain == head.chain


def test_erasure_never_breaks_the_chain(audited: EventStore, tmp_path: Path) -> None:
    vault = _vault(audited, tmp_path)
    before = list(audit.export_lines(audited.engine))
    follow(audited, Erasure(vault))  # shreds the disposed persons' keys
    assert vault.is_shredded(vault.person_key_id(SOURCE, CASE, "VICTIM-a1"))
    assert list(audit.export_lines(audited.engine)) == before
    assert audit.verify(audited.engine).ok


def _sql(store: EventStore, *statements: str) -> None:
    path = store.engine.url.database
    assert path is not None
    with sqlite3.connect(path) as db:
        for s in statements:
            db.execute(s)


def _problems(store: EventStore, key: SigningKey) -> set[tuple[str, int]]:
    return {(p.code, p.at) for p in audit.verify(store.engine, {key.key_id: key.public}).problems}


def test_verify_catches_an_edited_entry(audited: EventStore, key: SigningKey) -> None:
    _sql(
        audited,
        "UPDATE audit_entries SET entry = replace(entry, '\"custodian\"', '\"someone\"') "
        "WHERE leaf_index = 3",
    )
    found = _problems(audited, key)
    assert ("broken_chain", 3) in found
    assert ("checkpoint_mismatch", 8) in found
    assert ("checkpoint_mismatch", 3) not in found  # the earlier checkpoint still holds
    assert ("broken_chain", 4) not in found  # reported once, where it happened


def test_verify_catches_an_edited_entry_with_its_chain_link_recomputed(
    audited: EventStore, key: SigningKey
) -> None:
    with audited.engine.connect() as conn:
        prev, entry = conn.execute(
            text(
                "SELECT a.chain, b.entry FROM audit_entries a JOIN audit_entries b "
                "ON b.leaf_index = a.leaf_index + 1 WHERE a.leaf_index = 3"
            )
        ).one()
    edited = entry.replace('"unodc"', '"anyone"')
    link = chain_next(bytes.fromhex(prev), edited.encode()).hex()
    _sql(
        audited,
        f"UPDATE audit_entries SET entry = '{edited}', chain = '{link}' WHERE leaf_index = 4",
    )
    found = _problems(audited, key)
    assert ("broken_chain", 5) in found  # the next link no longer follows
    assert ("checkpoint_mismatch", 8) in found


def test_verify_catches_a_removed_entry(audited: EventStore, key: SigningKey) -> None:
    _sql(audited, "DELETE FROM audit_entries WHERE leaf_index = 4")
    found = _problems(audited, key)
    assert ("missing_entry", 4) in found
    assert ("broken_chain", 5) in found


def test_verify_catches_a_removed_last_entry(audited: EventStore, key: SigningKey) -> None:
    _sql(audited, "DELETE FROM audit_entries WHERE leaf_index = 7")
    assert ("checkpoint_beyond_log", 8) in _problems(audited, key)


def test_verify_catches_reordered_entries(audited: EventStore, key: SigningKey) -> None:
    _sql(
        audited,
        "UPDATE audit_entries SET leaf_index = -1 WHERE leaf_index = 4",
        "UPDATE audit_entries SET leaf_index = 4 WHERE leaf_index = 5",
        "UPDATE audit_entries SET leaf_index = 5 WHERE leaf_index = -1",
    )
    found = _problems(audited, key)
    assert {("misplaced_entry", 4), ("misplaced_entry", 5), ("out_of_order", 5)} <= found
    assert ("broken_chain", 4) in found


def test_verify_catches_a_forged_checkpoint(audited: EventStore, key: SigningKey) -> None:
    _sql(
        audited, "UPDATE audit_checkpoints SET issued_at_ms = issued_at_ms + 1 WHERE tree_size = 3"
    )
    assert _problems(audited, key) == {("bad_signature", 3)}
    other = SigningKey.generate("trust")
    assert ("unknown_key", 8) in {
        (p.code, p.at) for p in audit.verify(audited.engine, {other.key_id: other.public}).problems
    }


def test_the_log_is_never_emptied(audited: EventStore, tmp_path: Path) -> None:
    vault = _vault(audited, tmp_path)
    with pytest.raises(audit.AppendOnly), audited.engine.begin() as conn:
        audit.AuditLog(vault.person_key_id).clear(conn)


def test_inclusion_proofs_lead_to_the_signed_root(audited: EventStore) -> None:
    for index in range(8):
        proof = audit.inclusion_proof(audited.engine, index)
        leaf = leaf_hash(proof["entry"].encode())
        path = [bytes.fromhex(h) for h in proof["path"]]
        # the envelope's own RFC 6962 verifier agrees
        assert merkle_root_from_proof(leaf, index, 8, path) == bytes.fromhex(proof["root"])
        assert proof["checkpoint"]["root"] == proof["root"]
    early = audit.inclusion_proof(audited.engine, 2, 3)
    assert early["tree_size"] == 3 and len(early["path"]) == 1
    with pytest.raises(audit.NoSuchEntry):
        audit.inclusion_proof(audited.engine, 3, 3)
    with pytest.raises(audit.NoSuchCheckpoint):
        audit.inclusion_proof(audited.engine, 0, 4)


def test_a_consistency_proof_links_two_checkpoints(audited: EventStore) -> None:
    proof = audit.consistency_proof(audited.engine, 3, 8)
    path = [bytes.fromhex(h) for h in proof["path"]]
    old, new = bytes.fromhex(proof["from_root"]), bytes.fromhex(proof["to_root"])
    assert verify_consistency(3, 8, old, new, path)
    assert not verify_consistency(3, 8, new, new, path)


def test_no_proof_from_a_broken_log(audited: EventStore) -> None:
    _sql(audited, "UPDATE audit_entries SET entry = entry || ' ' WHERE leaf_index = 0")
    with pytest.raises(audit.LogBroken):
        audit.inclusion_proof(audited.engine, 5)


def test_chain_and_checkpoints_on_each_backend(
    store: EventStore, tmp_path: Path, key: SigningKey
) -> None:
    vault = _vault(store, tmp_path)
    _history(store, vault, audit.AuditLog(vault.person_key_id, key))
    result = audit.verify(store.engine, {key.key_id: key.public})
    assert result.ok and result.entries == 8 and result.signed == 2
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_entries SET entry = replace(entry, 'unodc', 'other') "),
        )
    found = {(p.code, p.at) for p in audit.verify(store.engine).problems}
    assert ("broken_chain", 4) in found and ("checkpoint_mismatch", 8) in found
