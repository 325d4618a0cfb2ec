"""Agreements as signed, versioned events: a source's signature over the exact bytes is verified
against its registered key, the document validated, the version recorded as an
``AgreementSubmitted`` event; a version applies from its effective date but never before the
trust received it; the running policy takes new versions in through a follower. On SQLite and
PostgreSQL where the store is the subject (``store`` is the backend-parametrised store)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from schemas.codec import default_registry
from schemas.envelope import MessageKind
from schemas.keys import SigningKey
from trust.follow import follow
from trust.stewardship.agreement import (
    SIGNING_CONTEXT,
    AgreementError,
    Agreements,
    AgreementSignatureError,
    AgreementVersion,
    AgreementVersionError,
    NoAgreement,
    parse_document,
    sign_agreement,
    submit_agreement,
    submitted_versions,
)
from trust.stewardship.policy import AgreementFollower, Policy
from trust.store.events import AgreementSubmitted
from trust.store.eventstore import EventStore

CASE = default_registry().current("case_record")
KEY = SigningKey.generate("police")
DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def document(version: int = 1, since: str = "2025-01-01", purposes: str = "[statistics]") -> bytes:
    return (
        "format: 4\n"
        "source_id: police\n"
        f"version: {version}\n"
        f"in_force_from: {since}\n"
        "fields_shared: ['$']\n"
        "releases_allowed:\n"
        "  - consumer: ministry\n"
        f"    purposes: {purposes}\n"
    ).encode()


def submit(
    store: EventStore,
    doc: bytes,
    *,
    at: int = T0,
    earlier: list[AgreementVersion] | None = None,
    key: SigningKey = KEY,
) -> AgreementVersion | None:
    return submit_agreement(
        store,
        doc,
        sign_agreement(doc, key),
        KEY.public,
        source_id="police",
        earlier=submitted_versions(store) if earlier is None else earlier,
        now_ms=at,
    )


def events(store: EventStore) -> list[AgreementSubmitted]:
    return [e for _, e in store.read() if isinstance(e, AgreementSubmitted)]


def test_a_signed_version_is_recorded_with_its_exact_bytes(store: EventStore) -> None:
    doc = document() + b"# signed by the police's data steward\n"
    recorded = submit(store, doc)
    assert recorded is not None and recorded.origin == "signed"
    [event] = events(store)
    assert event.document == doc  # the exact bytes, comment included
    assert (event.agreement_version, event.key_id, event.received_at_ms) == (1, KEY.key_id, T0)
    assert str(event.effective_from) == "2025-01-01"
    # anyone holding the source's public key can check what it agreed to
    KEY.public.public.verify(event.signature, SIGNING_CONTEXT + event.document)
    [held] = submitted_versions(store)
    assert held.agreement == parse_document(doc) and held.seq == recorded.seq


def test_a_forged_or_altered_agreement_is_refused_and_nothing_is_recorded(
    sqlite_store: EventStore,
) -> None:
    store = sqlite_store  # the subject is not the backend
    doc = document()
    with pytest.raises(AgreementSignatureError):  # signed by someone else's key
        submit(store, doc, key=SigningKey.generate("police"))
    signature = sign_agreement(doc, KEY)
    altered = doc.replace(b"[statistics]", b"[statistics, research]")
    with pytest.raises(AgreementSignatureError):
        submit_agreement(
            store, altered, signature, KEY.public, source_id="police", earlier=[], now_ms=T0
        )
    # a key registered for another source cannot vouch for the police's agreement
    other = SigningKey.generate("nrm")
    with pytest.raises(AgreementSignatureError):
        submit_agreement(
            store,
            doc,
            sign_agreement(doc, other),
            other.public,
            source_id="police",
            earlier=[],
            now_ms=T0,
        )
    # a document naming another source is refused whatever its signature
    with pytest.raises(AgreementError, match=r"\$\.source_id"):
        submit_agreement(store, doc, signature, KEY.public, source_id="nrm", earlier=[], now_ms=T0)
    assert events(store) == []


def test_an_invalid_document_is_refused_with_every_problem(sqlite_store: EventStore) -> None:
    store = sqlite_store  # the subject is not the backend
    bad = b"format: 4\nsource_id: police\nversion: two\nin_force_from: soon\nsurprise: 1\n"
    with pytest.raises(AgreementError) as info:
        submit(store, bad)
    text = str(info.value)
    for path in ("$.version", "$.in_force_from", "$.fields_shared", "surprise"):
        assert path in text, path
    with pytest.raises(AgreementError, match="not valid YAML"):
        submit(store, b"\xff\xfe: [")
    assert events(store) == []


def test_versions_only_go_up_and_a_repeat_changes_nothing(store: EventStore) -> None:
    assert submit(store, document(1)) is not None
    assert submit(store, document(1) + b"\n") is None  # same terms: held already
    with pytest.raises(AgreementVersionError, match="different terms"):
        submit(store, document(1, purposes="[research]"))
    assert submit(store, document(3)) is not None
    with pytest.raises(AgreementVersionError, match="above it"):
        submit(store, document(2))
    assert [e.agreement_version for e in events(store)] == [1, 3]


def test_a_version_applies_from_its_effective_date_but_never_before_it_arrived(
    store: EventStore,
) -> None:
    # version 2 is dated back a year, but the trust receives it only at T0 + 10 days
    submit(store, document(1, since="2020-01-01"))
    submit(store, document(2, since="2025-01-01", purposes="[research]"), at=T0 + 10 * DAY)
    policy = Policy(Agreements(submitted_versions(store), CASE))
    before, after = T0 + 5 * DAY, T0 + 11 * DAY
    upsert = MessageKind.RECORD_UPSERT
    v1 = policy.admit("police", upsert, before)
    v2 = policy.admit("police", upsert, after)
    assert v1 is not None and v1.version == 1
    assert v2 is not None and v2.version == 2
    # version 1 itself applies only once the trust had it
    with pytest.raises(NoAgreement):
        policy.admit("police", upsert, T0 - DAY)
    # a version dated in the future applies from that date, not from its arrival
    submit(store, document(3, since="2027-01-01"), at=T0 + 20 * DAY)
    policy = Policy(Agreements(submitted_versions(store), CASE))
    v = policy.admit("police", upsert, T0 + 30 * DAY)
    assert v is not None and v.version == 2


def test_the_running_policy_takes_new_versions_in(sqlite_store: EventStore) -> None:
    store = sqlite_store  # the subject is not the backend
    submit(store, document(1, since="2020-01-01"))
    policy = Policy(Agreements(submitted_versions(store), CASE))
    follower = AgreementFollower(policy)
    follow(store, follower)  # what it held already: nothing changes
    at = T0 + 2 * DAY
    v = policy.admit("police", MessageKind.RECORD_UPSERT, at)
    assert v is not None and v.version == 1
    submit(store, document(2, since="2020-01-01", purposes="[research]"), at=T0 + DAY)
    assert follow(store, follower) == 1
    v = policy.admit("police", MessageKind.RECORD_UPSERT, at)
    assert v is not None and v.version == 2 and v.allows("ministry", "research")


def test_files_and_events_are_held_side_by_side() -> None:
    # a home made before agreements were events: its file versions load beside signed ones
    old = dataclasses.replace(parse_document(document(1, since="2020-01-01")), version=1)
    held = Agreements(
        [
            AgreementVersion(old, "file"),
            AgreementVersion(parse_document(document(2)), "signed", T0),
        ],
        CASE,
    )
    assert [v.origin for v in held.versions("police")] == ["file", "signed"]
    assert held.in_force_at("police", T0 - DAY).version == 1  # a file: from its date
    assert held.in_force_at("police", T0 + 1).version == 2


def test_every_submission_is_audited_without_its_document(sqlite_store: EventStore) -> None:
    store = sqlite_store  # the subject is not the backend
    from trust.stewardship.audit import AuditLog, export_lines

    doc = document() + b"# steward: the police data protection office\n"
    submit(store, doc)
    follow(store, AuditLog(lambda source, case, victim: "ref"))
    line, _checkpoint = export_lines(store.engine)
    entry = json.loads(line)
    assert (entry["kind"], entry["source"]) == ("AgreementSubmitted", "police")
    assert "steward" not in line and "statistics" not in line  # the digest, never the terms
    assert entry["category"] == "agreement"
    assert entry["facts"]["document_sha256"] == hashlib.sha256(doc).hexdigest()
    assert entry["facts"]["agreement_version"] == 1


def test_a_version_held_only_as_a_file_can_be_submitted_signed(sqlite_store: EventStore) -> None:
    store = sqlite_store  # the subject is not the backend
    doc = document(1)
    as_file = [AgreementVersion(parse_document(doc), "file")]
    recorded = submit(store, doc, earlier=as_file)
    assert recorded is not None and recorded.origin == "signed"
    with pytest.raises(AgreementVersionError):  # a file's version with other terms
        submit(store, document(1, purposes="[research]"), earlier=as_file)
    assert len(events(store)) == 1
