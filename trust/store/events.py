"""The trust's domain events: past-tense facts, appended to the event store and never changed.

Every event is a frozen dataclass with ``to_dict()`` / ``from_dict()`` giving a JSON-safe form
(dates as ISO strings, bytes only as base64 inside :class:`SealedBlob`). ``EVENT_TYPES`` maps the
stored ``event_type`` name back to its class. No event carries a victim's identifiers in clear:
:class:`RecordAccepted` holds them only as per-person sealed blobs (see ``trust.store.vault``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Self, TypeAlias

from schemas.errors import ReasonCode

JsonDict: TypeAlias = dict[str, Any]

# The case record's ``logicalType: date`` fields outside the (sealed) identifiers, as paths into
# the fastavro dict form. ``from_dict`` turns their ISO strings back into ``datetime.date``.
_RECORD_DATE_PATHS: tuple[tuple[str, str], ...] = (
    ("reporting_entity", "date_recorded"),
    ("event", "start_date"),
    ("event", "end_date"),
)


def new_event_id() -> str:
    """A fresh id for an event the trust itself makes (36-char UUID string)."""
    return str(uuid.uuid4())


def json_safe(value: Any) -> Any:
    """A deep copy of ``value`` with every ``date`` as an ISO string (tuples become lists)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def _record_to_json(record: Mapping[str, Any]) -> JsonDict:
    # Only the known date paths are converted (a deep copy would cost more than the rest of an
    # append); nested lists and dicts are shared with the event, which is frozen by convention.
    out = dict(record)
    for outer, inner in _RECORD_DATE_PATHS:
        part = out.get(outer)
        if isinstance(part, dict) and isinstance(part.get(inner), date):
            out[outer] = {**part, inner: part[inner].isoformat()}
    return out


def _record_from_json(record: Mapping[str, Any]) -> JsonDict:
    out = dict(record)
    for outer, inner in _RECORD_DATE_PATHS:
        part = out.get(outer)
        if isinstance(part, dict) and isinstance(part.get(inner), str):
            out[outer] = {**part, inner: date.fromisoformat(part[inner])}
    return out


@dataclass(frozen=True, slots=True)
class SealedBlob:
    """One person's identifying fields, AES-256-GCM-sealed under that person's data key."""

    person_key_id: str
    nonce: str  # base64
    ciphertext: str  # base64

    def to_dict(self) -> JsonDict:
        return {
            "person_key_id": self.person_key_id,
            "nonce": self.nonce,
            "ciphertext": self.ciphertext,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(str(d["person_key_id"]), str(d["nonce"]), str(d["ciphertext"]))

    def __repr__(self) -> str:
        return f"SealedBlob(person_key_id={self.person_key_id!r}, len={len(self.ciphertext)})"


@dataclass(frozen=True, slots=True)
class RecordAccepted:
    """A source's case record (an upsert) passed every check and is now held by the trust.

    ``record`` is the minimised fastavro dict form with every victim's ``identifiers`` set to
    ``None``; the identifiers are in ``sealed_identifiers`` keyed by ``victim_id``.
    """

    event_type: ClassVar[str] = "RecordAccepted"
    accepted: ClassVar[bool] = True

    event_id: str
    source_id: str
    case_id: str
    record: JsonDict
    sealed_identifiers: dict[str, SealedBlob]
    produced_at_ms: int
    accepted_at_ms: int
    kind: str = "RecordUpsert"

    def __post_init__(self) -> None:
        # The store must never receive identifiers in clear: refuse at construction.
        for i, victim in enumerate(self.record.get("victims") or ()):
            if victim.get("identifiers") is not None:
                raise ValueError(f"$.victims[{i}].identifiers must be sealed, not in the record")

    @property
    def victims(self) -> list[JsonDict]:
        victims: list[JsonDict] = self.record.get("victims") or []
        return victims

    def to_dict(self) -> JsonDict:
        return {
            "event_id": self.event_id,
            "source_id": self.source_id,
            "case_id": self.case_id,
            "kind": self.kind,
            "record": _record_to_json(self.record),
            "sealed_identifiers": {
                k: v.to_dict() for k, v in sorted(self.sealed_identifiers.items())
            },
            "produced_at_ms": self.produced_at_ms,
            "accepted_at_ms": self.accepted_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            event_id=d["event_id"],
            source_id=d["source_id"],
            case_id=d["case_id"],
            record=_record_from_json(d["record"]),
            sealed_identifiers={
                k: SealedBlob.from_dict(v) for k, v in d["sealed_identifiers"].items()
            },
            produced_at_ms=int(d["produced_at_ms"]),
            accepted_at_ms=int(d["accepted_at_ms"]),
            kind=d.get("kind", "RecordUpsert"),
        )

    def __repr__(self) -> str:
        # Even minimised, a record is restricted microdata: keep it out of logs and tracebacks.
        return (
            f"RecordAccepted(event_id={self.event_id!r}, source_id={self.source_id!r}, "
            f"case_id={self.case_id!r}, victims={len(self.victims)})"
        )


@dataclass(frozen=True, slots=True)
class RecordRetracted:
    """A source withdrew one of its case records; it no longer counts anywhere."""

    event_type: ClassVar[str] = "RecordRetracted"
    accepted: ClassVar[bool] = True

    event_id: str
    source_id: str
    case_id: str
    reason: str
    accepted_at_ms: int

    def to_dict(self) -> JsonDict:
        return {
            "event_id": self.event_id,
            "source_id": self.source_id,
            "case_id": self.case_id,
            "reason": self.reason,
            "accepted_at_ms": self.accepted_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            d["event_id"], d["source_id"], d["case_id"], d["reason"], int(d["accepted_at_ms"])
        )


@dataclass(frozen=True, slots=True)
class ConsentWithdrawn:
    """A victim withdrew consent for the given purposes (``ConsentScope`` symbols)."""

    event_type: ClassVar[str] = "ConsentWithdrawn"
    accepted: ClassVar[bool] = True

    event_id: str
    source_id: str
    case_id: str
    victim_id: str
    scopes: list[str]
    accepted_at_ms: int

    def to_dict(self) -> JsonDict:
        return {
            "event_id": self.event_id,
            "source_id": self.source_id,
            "case_id": self.case_id,
            "victim_id": self.victim_id,
            "scopes": list(self.scopes),
            "accepted_at_ms": self.accepted_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            d["event_id"],
            d["source_id"],
            d["case_id"],
            d["victim_id"],
            list(d["scopes"]),
            int(d["accepted_at_ms"]),
        )


@dataclass(frozen=True, slots=True)
class DisposalRequested:
    """Disposal of one victim's data (or, with ``victim_id=None``, the whole case) was asked."""

    event_type: ClassVar[str] = "DisposalRequested"
    accepted: ClassVar[bool] = True

    event_id: str
    source_id: str
    case_id: str
    victim_id: str | None
    basis: str
    accepted_at_ms: int

    def to_dict(self) -> JsonDict:
        return {
            "event_id": self.event_id,
            "source_id": self.source_id,
            "case_id": self.case_id,
            "victim_id": self.victim_id,
            "basis": self.basis,
            "accepted_at_ms": self.accepted_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            d["event_id"],
            d["source_id"],
            d["case_id"],
            d.get("victim_id"),
            d["basis"],
            int(d["accepted_at_ms"]),
        )


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """An inbound message was refused. Position and reason code only: never any content.

    ``source_id`` is the source its topic names, or None when the topic names no valid source
    (then there is nobody to send a receipt to: the operator sees it in the quarantine).
    """

    event_type: ClassVar[str] = "MessageRejected"
    accepted: ClassVar[bool] = False

    event_id: str | None
    source_id: str | None
    reason: str
    field_path: str | None
    detail: str
    topic: str
    partition: int
    offset: int
    received_at_ms: int

    def __post_init__(self) -> None:
        ReasonCode(self.reason)  # a free-text reason could carry a value: only codes are stored

    def to_dict(self) -> JsonDict:
        return {
            "event_id": self.event_id,
            "source_id": self.source_id,
            "reason": self.reason,
            "field_path": self.field_path,
            "detail": self.detail,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "received_at_ms": self.received_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            event_id=d.get("event_id"),
            source_id=d.get("source_id"),
            reason=d["reason"],
            field_path=d.get("field_path"),
            detail=d["detail"],
            topic=d["topic"],
            partition=int(d["partition"]),
            offset=int(d["offset"]),
            received_at_ms=int(d["received_at_ms"]),
        )


@dataclass(frozen=True, slots=True)
class ReleaseIssued:
    """The trust signed one release of a stream; ``signed_b64`` holds the exact signed bytes.

    Recorded before anything leaves the trust: the release publisher (a follower) puts exactly
    these bytes on the release topic, so a crash re-sends the same release and never a different
    one under the same sequence number. (Events recorded before this rule have no bytes: they were
    published first.)
    """

    event_type: ClassVar[str] = "ReleaseIssued"
    accepted: ClassVar[bool] = False

    release_id: str
    stream: str
    sequence: int
    issued_at_ms: int
    period: str
    cells_digest: str
    signature_b64: str
    metadata: JsonDict = field(default_factory=dict)
    signed_b64: str = ""
    topic: str = ""
    consumer: str = ""  # the subscription's consumer ("" before releases were per subscription)
    purpose: str = ""

    @property
    def event_id(self) -> str:
        return self.release_id

    @property
    def source_id(self) -> str | None:
        return None  # made by the trust, not received from a source

    def to_dict(self) -> JsonDict:
        return {
            "release_id": self.release_id,
            "stream": self.stream,
            "sequence": self.sequence,
            "issued_at_ms": self.issued_at_ms,
            "period": self.period,
            "cells_digest": self.cells_digest,
            "signature_b64": self.signature_b64,
            "metadata": json_safe(self.metadata),
            "signed_b64": self.signed_b64,
            "topic": self.topic,
            "consumer": self.consumer,
            "purpose": self.purpose,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            release_id=d["release_id"],
            stream=d["stream"],
            sequence=int(d["sequence"]),
            issued_at_ms=int(d["issued_at_ms"]),
            period=d["period"],
            cells_digest=d["cells_digest"],
            signature_b64=d["signature_b64"],
            metadata=dict(d.get("metadata") or {}),
            signed_b64=str(d.get("signed_b64") or ""),
            topic=str(d.get("topic") or ""),
            consumer=str(d.get("consumer") or ""),
            purpose=str(d.get("purpose") or ""),
        )


@dataclass(frozen=True, slots=True)
class SubscriptionAdded:
    """The operator subscribed ``consumer`` to ``stream`` for ``purpose`` (replacing any earlier
    subscription of the same consumer to the same stream)."""

    event_type: ClassVar[str] = "SubscriptionAdded"
    accepted: ClassVar[bool] = False

    event_id: str
    consumer: str
    stream: str
    purpose: str
    added_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None

    def to_dict(self) -> JsonDict:
        return {
            "event_id": self.event_id,
            "consumer": self.consumer,
            "stream": self.stream,
            "purpose": self.purpose,
            "added_at_ms": self.added_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(d["event_id"], d["consumer"], d["stream"], d["purpose"], int(d["added_at_ms"]))


@dataclass(frozen=True, slots=True)
class SubscriptionRemoved:
    """The operator ended ``consumer``'s subscription to ``stream``."""

    event_type: ClassVar[str] = "SubscriptionRemoved"
    accepted: ClassVar[bool] = False

    event_id: str
    consumer: str
    stream: str
    removed_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None

    def to_dict(self) -> JsonDict:
        return {
            "event_id": self.event_id,
            "consumer": self.consumer,
            "stream": self.stream,
            "removed_at_ms": self.removed_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(d["event_id"], d["consumer"], d["stream"], int(d["removed_at_ms"]))


Event: TypeAlias = (
    RecordAccepted
    | RecordRetracted
    | ConsentWithdrawn
    | DisposalRequested
    | MessageRejected
    | ReleaseIssued
    | SubscriptionAdded
    | SubscriptionRemoved
)
"""Any event the store holds."""

EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        RecordAccepted,
        RecordRetracted,
        ConsentWithdrawn,
        DisposalRequested,
        MessageRejected,
        ReleaseIssued,
        SubscriptionAdded,
        SubscriptionRemoved,
    )
}


def decode(event_type: str, payload: Mapping[str, Any]) -> Event:
    """The event of stored type name ``event_type`` from its ``to_dict()`` form."""
    try:
        cls = EVENT_TYPES[event_type]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}") from None
    return cls.from_dict(payload)
