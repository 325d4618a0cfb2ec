"""Receipts: the trust's signed answer about one inbound message it did not accept — or, as a
notice, about one it accepted (reason ``linked_person_erased``: a record the trust had linked
with it was erased at another source's request).

The trust encodes a receipt (Avro ``receipt.avsc``) with an empty signature, signs those bytes with
its Ed25519 release key and puts the signed receipt on ``tip.rejected.<source>``. Anyone can write
to a topic; only the trust can sign, so a source shows only receipts that verify against the
trust's public release key. A receipt carries a reason code, a field path, what was expected and
the message's position — never a value from the payload.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from schemas import signed
from schemas.codec import AVRO_DIR, epoch_millis, load_schema_file
from schemas.errors import ContractError, ReasonCode
from schemas.keys import SigningKey, VerifyKey

RECEIPT_SCHEMA = load_schema_file(AVRO_DIR / "receipt.avsc")
_CONTEXT = b"tiptrust/receipt/v1\x00"


class ReceiptRejected(ContractError):
    """A message on a rejected topic that the trust did not sign (or that was altered)."""

    code = ReasonCode.BAD_SIGNATURE


@dataclass(frozen=True, slots=True)
class Receipt:
    source_id: str
    event_id: str | None
    reason: str
    field_path: str | None
    detail: str
    topic: str
    partition: int
    offset: int
    received_at_ms: int
    signing_key_id: str = ""
    signature: bytes = b""

    def __post_init__(self) -> None:
        ReasonCode(self.reason)  # only codes travel: a free-text reason could carry a value

    def to_avro(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "event_id": self.event_id,
            "reason": self.reason,
            "field_path": self.field_path,
            "detail": self.detail,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "received_at": self.received_at_ms,
            "signing_key_id": self.signing_key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Receipt:
        at = d["received_at"]
        ms = epoch_millis(at)
        return cls(
            source_id=d["source_id"],
            event_id=d.get("event_id"),
            reason=d["reason"],
            field_path=d.get("field_path"),
            detail=d["detail"],
            topic=d["topic"],
            partition=int(d["partition"]),
            offset=int(d["offset"]),
            received_at_ms=ms,
            signing_key_id=d.get("signing_key_id", ""),
            signature=d.get("signature", b""),
        )

    @property
    def received_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.received_at_ms / 1000, dt.UTC)


def sign_receipt(receipt: Receipt, key: SigningKey) -> bytes:
    """The receipt, signed by the trust, as the bytes to publish (deterministic: Ed25519)."""
    return signed.sign(RECEIPT_SCHEMA, _CONTEXT, receipt.to_avro(), key)


def verify_receipt(raw: bytes, keys: dict[str, VerifyKey]) -> Receipt:
    """Decode and verify a receipt; :class:`ReceiptRejected` if the trust did not issue it."""
    try:
        receipt = Receipt.from_avro(RECEIPT_SCHEMA.decode(raw))
    except (ContractError, ValueError, KeyError):
        raise ReceiptRejected("message is not a receipt") from None
    try:
        signed.verify(RECEIPT_SCHEMA, _CONTEXT, receipt.to_avro(), keys)
    except signed.SignatureRefused as exc:
        raise ReceiptRejected(f"receipt refused: {exc}") from None
    return receipt
