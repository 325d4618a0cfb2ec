"""One audit-log entry: what it keeps of a stored event, as canonical JSON without personal data.

An entry names the stored event (kind, id, store seq, time recorded, SHA-256 of its stored bytes),
its source, and per kind of event the facts :data:`AUDITED` lists: codes, counts, the names of
sources, consumers, purposes and operators, random person ids, and victim records as opaque keyed
digests (the vault's person key ids). Never a name, a date of birth, a document number, free
text or a field of a case record. The method note ``audit.md`` lists every kind and field.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from trust.store.events import (
    AccessRefused,
    AgreementSubmitted,
    ConsentWithdrawn,
    DisposalRequested,
    Event,
    IdentifiersViewed,
    InboundDeleted,
    KekRotated,
    LinkModelAdopted,
    LinkOverridden,
    LinkReviewOpened,
    MessageRejected,
    PersonKeysShredded,
    PersonsMerged,
    PersonSplit,
    PrincipalAdded,
    PrincipalRevoked,
    RecordAccepted,
    RecordLinked,
    RecordRetracted,
    RecordUnlinked,
    ReleaseIssued,
    RetentionApplied,
    SourceKeyRevoked,
    SubscriptionAdded,
    SubscriptionApproved,
    SubscriptionRemoved,
    TrustKeyRetired,
    VictimRef,
)

ENTRY_FORMAT = 1
"""The ``v`` of every entry this code writes (a new format is a new ``v``: old entries stay)."""

CHAIN_START = bytes(32)
"""The link before the first entry's: 32 zero bytes."""


def canonical(value: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a JSON object: keys sorted, no spaces, UTF-8 (orjson)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def chain_next(previous: bytes, entry: bytes) -> bytes:
    """The hash-chain link of ``entry`` after ``previous``: SHA-256(previous ‖ entry)."""
    return hashlib.sha256(previous + entry).digest()


def stored_event_digest(event_type: str, payload: str, body: bytes | None) -> str:
    """SHA-256 (hex) of a stored event as its row holds it: type, JSON payload and Avro body,
    each prefixed by its length (4 bytes, big-endian). The payload holds the event's random id
    (and a record's sealed identifiers), so the digest confirms no guess about its content."""
    h = hashlib.sha256()
    for part in (event_type.encode(), payload.encode(), body or b""):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.hexdigest()


# --- what an entry holds, per kind of event -----------------------------------------------------

RecordRef = Callable[[str, str, str], str]
"""An opaque keyed digest of a victim record (source, case, victim); victim ``""`` is the case."""

INGEST, LINKAGE, ACCESS, RELEASE, AGREEMENT, KEY, OTHER = (
    "ingest",
    "linkage",
    "access",
    "release",
    "agreement",
    "key",
    "other",
)
Facts = dict[str, Any]


def _refs(ref: RecordRef, victims: list[VictimRef]) -> list[str]:
    return sorted(ref(v.source_id, v.case_id, v.victim_id) for v in victims)


def _sources(victims: list[VictimRef]) -> list[str]:
    return sorted({v.source_id for v in victims})


def _accepted(ev: RecordAccepted, ref: RecordRef) -> Facts:
    facts: Facts = {
        "decision": "accepted",
        "case_ref": ref(ev.source_id, ev.case_id, ""),
        "refs": sorted(b.person_key_id for b in ev.sealed_identifiers.values()),
    }
    if ev.agreement_version is not None:  # recorded since agreements are events; older: absent
        facts["agreement_version"] = ev.agreement_version
    return facts


def _retracted(ev: RecordRetracted, ref: RecordRef) -> Facts:
    return {"case_ref": ref(ev.source_id, ev.case_id, ""), "reason": ev.reason}


def _consent(ev: ConsentWithdrawn, ref: RecordRef) -> Facts:
    return {
        "case_ref": ref(ev.source_id, ev.case_id, ""),
        "refs": [ref(ev.source_id, ev.case_id, ev.victim_id)],
        "scopes": sorted(ev.scopes),
    }


def _disposal(ev: DisposalRequested, ref: RecordRef) -> Facts:
    victim = [] if ev.victim_id is None else [ref(ev.source_id, ev.case_id, ev.victim_id)]
    return {
        "case_ref": ref(ev.source_id, ev.case_id, ""),
        "refs": victim,
        "whole_case": ev.victim_id is None,
        "basis": ev.basis,
    }


def _rejected(ev: MessageRejected, ref: RecordRef) -> Facts:
    # the reason is a ReasonCode and the field a schema path; ``detail`` is left out (free text)
    return {
        "decision": "rejected",
        "reason": ev.reason,
        "field_path": ev.field_path,
        "topic": ev.topic,
        "partition": ev.partition,
        "offset": ev.offset,
    }


def _release(ev: ReleaseIssued, ref: RecordRef) -> Facts:
    signed = base64.b64decode(ev.signed_b64) if ev.signed_b64 else b""
    return {
        "stream": ev.stream,
        "sequence": ev.sequence,
        "consumer": ev.consumer,
        "purpose": ev.purpose,
        "period": ev.period,
        "cells_digest": ev.cells_digest,
        "signed_digest": hashlib.sha256(signed).hexdigest() if signed else None,
    }


def _subscribed(ev: SubscriptionAdded, ref: RecordRef) -> Facts:
    facts: Facts = {"consumer": ev.consumer, "stream": ev.stream, "purpose": ev.purpose}
    if ev.requested_by:  # since release review; older subscriptions name no requester
        facts["operator"] = ev.requested_by
    return facts


def _approved(ev: SubscriptionApproved, ref: RecordRef) -> Facts:
    return {
        "consumer": ev.consumer,
        "stream": ev.stream,
        "purpose": ev.purpose,
        "request": ev.request_id,
        "definition": ev.definition,
        "operator": ev.approved_by,
    }


def _key_revoked(ev: SourceKeyRevoked, ref: RecordRef) -> Facts:
    return {"sources": [ev.source_id], "key_id": ev.key_id, "operator": ev.revoked_by}


def _inbound_deleted(ev: InboundDeleted, ref: RecordRef) -> Facts:
    return {"topic": ev.topic, "partition": ev.partition, "before_offset": ev.before_offset}


def _trust_key_retired(ev: TrustKeyRetired, ref: RecordRef) -> Facts:
    return {"key_id": ev.key_id}


def _refused(ev: AccessRefused, ref: RecordRef) -> Facts:
    return {"principal": ev.principal, "action": ev.action, "reason": ev.reason}


def _unsubscribed(ev: SubscriptionRemoved, ref: RecordRef) -> Facts:
    return {"consumer": ev.consumer, "stream": ev.stream}


def _linked(ev: RecordLinked, ref: RecordRef) -> Facts:
    return {
        "refs": _refs(ref, [ev.victim]),
        "sources": _sources([ev.victim]),
        "person": ev.person_id,
        "decision": ev.decision,
        "model_version": ev.model_version,
        "pairs": len(ev.evidence),
    }


def _unlinked(ev: RecordUnlinked, ref: RecordRef) -> Facts:
    return {
        "refs": _refs(ref, [ev.victim]),
        "sources": _sources([ev.victim]),
        "person": ev.person_id,
        "reason": ev.reason,
    }


def _merged(ev: PersonsMerged, ref: RecordRef) -> Facts:
    return {
        "person": ev.person_id,
        "absorbed": sorted(ev.absorbed),
        "reason": ev.reason,
        "pairs": len(ev.evidence),
    }


def _split(ev: PersonSplit, ref: RecordRef) -> Facts:
    return {
        "person": ev.person_id,
        "new_person": ev.new_person_id,
        "refs": _refs(ref, ev.moved),
        "sources": _sources(ev.moved),
        "reason": ev.reason,
    }


def _review(ev: LinkReviewOpened, ref: RecordRef) -> Facts:
    return {
        "review_id": ev.review_id,
        "refs": _refs(ref, [ev.victim]),
        "sources": _sources([ev.victim]),
        "person": ev.person_id,
        "candidates": sorted(ev.candidates),
        "model_version": ev.model_version,
    }


def _overridden(ev: LinkOverridden, ref: RecordRef) -> Facts:
    return {
        "refs": _refs(ref, [ev.victim]),
        "others": _refs(ref, ev.others),
        "sources": _sources([ev.victim, *ev.others]),
        "same": ev.same,
        "review_id": ev.review_id,
        "operator": ev.operator,
    }


def _viewed(ev: IdentifiersViewed, ref: RecordRef) -> Facts:
    return {
        "operator": ev.operator,
        "refs": _refs(ref, ev.victims),
        "sources": _sources(ev.victims),
        "purpose": ev.purpose,
    }


def _adopted(ev: LinkModelAdopted, ref: RecordRef) -> Facts:
    version = ev.model.get("version")
    return {
        "operator": ev.operator,
        "model_version": version if isinstance(version, str) else None,
        "trained_on_records": ev.trained_on_records,
    }


def _shredded(ev: PersonKeysShredded, ref: RecordRef) -> Facts:
    # the vault's key ids are the same opaque digests every other entry names records by
    return {"refs": sorted(ev.key_ids), "causes": sorted(ev.causes)}


def _rotated(ev: KekRotated, ref: RecordRef) -> Facts:
    return {"rewrapped": ev.rewrapped, "reason": ev.reason}


def _principal_added(ev: PrincipalAdded, ref: RecordRef) -> Facts:
    # who may act, as what: never the token or its hash
    return {"principal": ev.name, "role": ev.role, "steward_of": ev.source, "operator": ev.added_by}


def _principal_revoked(ev: PrincipalRevoked, ref: RecordRef) -> Facts:
    return {"principal": ev.name, "operator": ev.revoked_by}


def _agreement(ev: AgreementSubmitted, ref: RecordRef) -> Facts:
    # the signed document is in the store; its digest here lets a source check which terms the
    # trust holds without the log repeating them
    return {
        "sources": [ev.source_id],
        "agreement_version": ev.agreement_version,
        "effective_from": ev.effective_from.isoformat(),
        "key_id": ev.key_id,
        "document_sha256": hashlib.sha256(ev.document).hexdigest(),
    }


def _retention(ev: RetentionApplied, ref: RecordRef) -> Facts:
    # how many, never which: case ids are the sources' own references
    return {
        "sources": [ev.source_id],
        "agreement_version": ev.agreement_version,
        "at_end": ev.at_end,
        "cases": len(ev.case_ids),
        "victims": ev.victims,
    }


AUDITED: Mapping[str, tuple[str, Callable[[Any, RecordRef], Facts]]] = {
    RecordAccepted.event_type: (INGEST, _accepted),
    RecordRetracted.event_type: (INGEST, _retracted),
    ConsentWithdrawn.event_type: (INGEST, _consent),
    DisposalRequested.event_type: (INGEST, _disposal),
    MessageRejected.event_type: (INGEST, _rejected),
    RecordLinked.event_type: (LINKAGE, _linked),
    RecordUnlinked.event_type: (LINKAGE, _unlinked),
    PersonsMerged.event_type: (LINKAGE, _merged),
    PersonSplit.event_type: (LINKAGE, _split),
    LinkReviewOpened.event_type: (LINKAGE, _review),
    LinkOverridden.event_type: (LINKAGE, _overridden),
    LinkModelAdopted.event_type: (LINKAGE, _adopted),
    IdentifiersViewed.event_type: (ACCESS, _viewed),
    ReleaseIssued.event_type: (RELEASE, _release),
    SubscriptionAdded.event_type: (RELEASE, _subscribed),
    SubscriptionApproved.event_type: (RELEASE, _approved),
    AccessRefused.event_type: (ACCESS, _refused),
    SubscriptionRemoved.event_type: (RELEASE, _unsubscribed),
    PersonKeysShredded.event_type: (KEY, _shredded),
    KekRotated.event_type: (KEY, _rotated),
    SourceKeyRevoked.event_type: (KEY, _key_revoked),
    InboundDeleted.event_type: (KEY, _inbound_deleted),
    TrustKeyRetired.event_type: (KEY, _trust_key_retired),
    PrincipalAdded.event_type: (ACCESS, _principal_added),
    PrincipalRevoked.event_type: (ACCESS, _principal_revoked),
    AgreementSubmitted.event_type: (AGREEMENT, _agreement),
    RetentionApplied.event_type: (AGREEMENT, _retention),
}
"""Per event kind: its category and the facts its entry keeps. A kind not listed is still
audited (kind, ids, digest; category ``other``): nothing the store holds escapes the log."""


def _no_facts(ev: Event, ref: RecordRef) -> Facts:
    return {}


def make_entry(
    leaf_index: int,
    seq: int,
    event: Event,
    *,
    recorded_at_ms: int,
    event_digest: str,
    ref: RecordRef,
) -> bytes:
    """The canonical bytes of the entry auditing the stored event ``event`` at ``seq``."""
    category, facts = AUDITED.get(event.event_type, (OTHER, _no_facts))
    return canonical(
        {
            "v": ENTRY_FORMAT,
            "leaf_index": leaf_index,
            "kind": event.event_type,
            "category": category,
            "event_id": event.event_id,
            "event_seq": seq,
            "at_ms": recorded_at_ms,
            "event_digest": event_digest,
            "source": event.source_id,
            "facts": facts(event, ref),
        }
    )
