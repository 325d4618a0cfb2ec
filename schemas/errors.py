"""Reason codes and the contract errors that carry them.

Every rejection anywhere in tiptrust (a producer's bad row, an envelope the trust refuses, a record
that fails validation) has a :class:`ReasonCode`. The same code is the receipt's ``reason`` on
``tip.rejected.<source>``, so a sender can learn why. Errors carry a field *path* and what was
expected — never the offending value, which may be personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    """Why something was rejected. Stable strings: they appear in receipts and summaries."""

    # envelope, in the order the trust checks them
    MALFORMED_ENVELOPE = "malformed_envelope"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_SOURCE = "unknown_source"
    SOURCE_MISMATCH = "source_mismatch"
    UNKNOWN_SOURCE_KEY = "unknown_source_key"
    REVOKED_SOURCE_KEY = "revoked_source_key"  # signed with a key the trust revoked
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_TRUST_KEY = "unknown_trust_key"
    DECRYPTION_FAILED = "decryption_failed"
    UNKNOWN_SCHEMA = "unknown_schema"
    INVALID_RECORD = "invalid_record"
    # stewardship and idempotency
    NO_AGREEMENT = "no_agreement"
    LEGAL_BASIS_NOT_ACCEPTED = "legal_basis_not_accepted"  # a victim's basis the agreement refuses
    DUPLICATE_EVENT = "duplicate_event"
    # the trust's own checks of one message, beyond the contract
    INVALID_TOPIC = "invalid_topic"  # the message arrived on a topic that names no valid source
    TOO_LARGE = "too_large"  # a message, field or list beyond the limits of schemas.rules
    CONFLICTING_IDENTITY = "conflicting_identity"  # clashes with what the store holds
    PROCESSING_FAILED = "processing_failed"  # anything else that failed for this one message
    # producer side (rows of an agency export)
    MISSING_VALUE = "missing_value"
    UNKNOWN_CODE = "unknown_code"
    BAD_FORMAT = "bad_format"
    OUT_OF_RANGE = "out_of_range"
    UNMAPPED_COLUMN = "unmapped_column"
    BAD_MAPPING = "bad_mapping"
    # schema evolution
    INCOMPATIBLE_SCHEMA = "incompatible_schema"
    # notices about a record the trust accepted (not refusals)
    LINKED_PERSON_ERASED = "linked_person_erased"  # a record linked with it was erased


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a message was read from: enough to find it again, nothing of its content."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in one record: a JSONPath-like location and what was expected there."""

    path: str
    code: ReasonCode
    expected: str
    row: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row} " if self.row is not None else ""
        return f"{where}{self.path} {self.code.value}: {self.expected}"


class ContractError(Exception):
    """Base of every wire-contract failure. ``code`` is the receipt reason; no payload values."""

    code: ReasonCode = ReasonCode.MALFORMED_ENVELOPE

    def __init__(
        self,
        message: str,
        *,
        delivery: Delivery | None = None,
        event_id: str | None = None,
        problems: tuple[Problem, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.delivery = delivery
        self.event_id = event_id
        self.problems = problems

    @property
    def field_path(self) -> str | None:
        return self.problems[0].path if self.problems else None


class MalformedEnvelope(ContractError):
    code = ReasonCode.MALFORMED_ENVELOPE


class UnsupportedVersion(ContractError):
    code = ReasonCode.UNSUPPORTED_VERSION


class UnknownSource(ContractError):
    code = ReasonCode.UNKNOWN_SOURCE


class SourceMismatch(ContractError):
    code = ReasonCode.SOURCE_MISMATCH


class UnknownSourceKey(ContractError):
    code = ReasonCode.UNKNOWN_SOURCE_KEY


class RevokedSourceKey(ContractError):
    """Signed with a source key the trust revoked: nothing it signs is accepted any more (the
    source re-sends under its new key)."""

    code = ReasonCode.REVOKED_SOURCE_KEY


class BadSignature(ContractError):
    code = ReasonCode.BAD_SIGNATURE


class UnknownTrustKey(ContractError):
    code = ReasonCode.UNKNOWN_TRUST_KEY


class DecryptionFailed(ContractError):
    code = ReasonCode.DECRYPTION_FAILED


class UnknownSchema(ContractError):
    code = ReasonCode.UNKNOWN_SCHEMA


class InvalidRecord(ContractError):
    code = ReasonCode.INVALID_RECORD


class IncompatibleSchema(ContractError):
    code = ReasonCode.INCOMPATIBLE_SCHEMA
