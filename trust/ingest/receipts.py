"""Receipts: the sender of a refused message learns why, on ``tip.rejected.<source>``.

A follower of the store's ``MessageRejected`` events: each receipt is signed by the trust's release
key (Ed25519 is deterministic), so its bytes are a pure function of its stored event and the key,
and the re-send after a crash is byte-for-byte the same receipt. A rejection whose topic named no
valid source has nobody to receive it; it stays in the quarantine for the operator.
"""

from __future__ import annotations

from schemas.keys import SigningKey
from schemas.receipt import Receipt, sign_receipt
from transport import EventLog, topics
from trust.follow import Batch
from trust.store.events import MessageRejected

RECEIPTS_FOLLOWER = "trust-receipts"


def receipt_of(ev: MessageRejected) -> Receipt:
    """The receipt of one stored rejection (reason, path and position; no value)."""
    if ev.source_id is None:
        raise ValueError("a rejection without a source has no receipt")
    return Receipt(
        source_id=ev.source_id,
        event_id=ev.event_id,
        reason=ev.reason,
        field_path=ev.field_path,
        detail=ev.detail,
        topic=ev.topic,
        partition=ev.partition,
        offset=ev.offset,
        received_at_ms=ev.received_at_ms,
    )


class ReceiptPublisher:
    """Puts a receipt for every stored rejection of a known source on its rejected topic."""

    name = RECEIPTS_FOLLOWER
    event_types = frozenset({MessageRejected.event_type})

    def __init__(self, log: EventLog, signing_key: SigningKey) -> None:
        self.log = log
        self._key = signing_key

    def send(self, events: Batch) -> None:
        sent = 0
        for _, ev in events:
            if isinstance(ev, MessageRejected) and ev.source_id is not None:
                key = ev.event_id.encode() if ev.event_id else None
                raw = sign_receipt(receipt_of(ev), self._key)
                self.log.append(topics.rejected(ev.source_id), raw, key=key)
                sent += 1
        if sent:
            self.log.flush()
