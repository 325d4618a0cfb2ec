"""Messages a trust must refuse: what a broken or hostile sender could put on an inbound topic.

Used by the demo and the tests to show that every kind of bad message gets its own receipt and
crashes nothing. Each function returns raw envelope bytes to append to a topic; none of them goes
through :class:`producers.publisher.Publisher`, whose validation would stop some of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from schemas.codec import default_registry
from schemas.envelope import EventHeader, new_event_id, seal_batch
from schemas.keys import SigningKey, TrustKeyPair, TrustPublicKey


@dataclass(frozen=True)
class BadMessage:
    """One bad message: where it goes, what it is, and the reason code the trust should give."""

    topic: str
    value: bytes
    expected_reason: str
    what: str


def _seal(source: SigningKey, trust: TrustPublicKey, record: dict[str, Any]) -> bytes:
    schema = default_registry().for_kind("RecordUpsert")
    header = EventHeader(
        source.owner,
        new_event_id(),
        "RecordUpsert",
        schema.fingerprint,
        int(time.time() * 1000),
        trust.key_id,
        source.key_id,
    )
    # encode without validation: fastavro only checks types, not ICS-TIP ranges
    return seal_batch([(header, schema.encode(record))], trust_key=trust, source_key=source)[0]


def minimal_record(source_id: str, case_id: str) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "reporting_entity": {"source_id": source_id, "organisation_type": "Other"},
        "event": {"year_of_exploitation": 2024, "forms_of_exploitation": ["ForcedLabour"]},
        "victims": [{"victim_id": "v1", "sex": "Unknown"}],
    }


def tampered(envelope: bytes, topic: str) -> BadMessage:
    """A genuine envelope with one bit of its ciphertext flipped on the way."""
    b = bytearray(envelope)
    b[-5] ^= 0x01
    return BadMessage(topic, bytes(b), "bad_signature", "tampered envelope (one bit flipped)")


def unknown_source(trust: TrustPublicKey, source_id: str = "rogue") -> BadMessage:
    """A well-formed envelope from a sender the trust never registered."""
    key = SigningKey.generate(source_id)
    return BadMessage(
        f"tip.inbound.{source_id}",
        _seal(key, trust, minimal_record(source_id, "R-1")),
        "unknown_source",
        "unregistered source",
    )


def wrong_trust_key(source: SigningKey, topic: str) -> BadMessage:
    """A registered source sealing to a trust key the trust does not hold."""
    stranger = TrustKeyPair.generate().public
    return BadMessage(
        topic,
        _seal(source, stranger, minimal_record(source.owner, "W-1")),
        "unknown_trust_key",
        "sealed to the wrong trust key",
    )


def invalid_record(source: SigningKey, trust: TrustPublicKey, topic: str) -> BadMessage:
    """A registered source's correctly sealed record that breaks an ICS-TIP rule (age 150)."""
    record = minimal_record(source.owner, "I-1")
    record["victims"][0]["age_at_identification"] = 150
    return BadMessage(
        topic,
        _seal(source, trust, record),
        "invalid_record",
        "schema-invalid payload (age out of range)",
    )


def duplicate(envelope: bytes, topic: str) -> BadMessage:
    """An envelope sent a second time (a producer retry, or a replay)."""
    return BadMessage(topic, envelope, "duplicate_event", "the same event sent twice")
