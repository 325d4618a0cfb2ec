"""Receipts are signed by the trust: a source can tell them from anything else on its topic."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import ReasonCode
from schemas.keys import SigningKey
from schemas.receipt import Receipt, ReceiptRejected, sign_receipt, verify_receipt

TRUST = SigningKey.generate("trust")
KEYS = {TRUST.key_id: TRUST.public}

receipts = st.builds(
    Receipt,
    source_id=st.from_regex(r"[a-z][a-z0-9_-]{1,20}", fullmatch=True),
    event_id=st.one_of(st.none(), st.uuids().map(str)),
    reason=st.sampled_from([c.value for c in ReasonCode]),
    field_path=st.one_of(st.none(), st.sampled_from(["$.case_id", "$.victims[0].sex"])),
    detail=st.text(max_size=60),
    topic=st.just("tip.inbound.police"),
    partition=st.integers(0, 64),
    offset=st.integers(0, 2**40),
    received_at_ms=st.integers(0, 2**42),
)


@given(receipts)
def test_a_signed_receipt_verifies_and_round_trips(receipt: Receipt) -> None:
    raw = sign_receipt(receipt, TRUST)
    assert sign_receipt(receipt, TRUST) == raw  # deterministic: a re-send is the same bytes
    got = verify_receipt(raw, KEYS)
    assert got.signing_key_id == TRUST.key_id
    assert dataclasses.replace(got, signing_key_id="", signature=b"") == receipt


@given(receipts, st.data())
def test_any_flipped_bit_is_refused(receipt: Receipt, data: st.DataObject) -> None:
    raw = bytearray(sign_receipt(receipt, TRUST))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ReceiptRejected):
        verify_receipt(bytes(raw), KEYS)


def test_unsigned_and_foreign_receipts_are_refused() -> None:
    receipt = Receipt("police", None, "invalid_record", None, "d", "tip.inbound.police", 0, 1, 5)
    from schemas.receipt import RECEIPT_SCHEMA

    with pytest.raises(ReceiptRejected, match="unsigned"):
        verify_receipt(RECEIPT_SCHEMA.encode(receipt.to_avro()), KEYS)
    with pytest.raises(ReceiptRejected, match="does not trust"):
        verify_receipt(sign_receipt(receipt, SigningKey.generate("trust")), KEYS)
    with pytest.raises(ReceiptRejected):
        verify_receipt(b"not a receipt", KEYS)


def test_only_reason_codes_travel() -> None:
    with pytest.raises(ValueError):
        Receipt("police", None, "Amina Okafor was here", None, "d", "t", 0, 1, 5)
