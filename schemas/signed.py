"""Signed Avro messages from the trust: one composition of Ed25519 and the codec for every kind.

A message is encoded with an empty ``signature`` and its ``signing_key_id`` set, prefixed with a
context string naming its kind (so a signature over one kind can never pass for another), and
signed; the published bytes carry the signature. Verification re-encodes with the signature
emptied. Ed25519 is deterministic: signing the same message twice gives the same bytes.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature

from schemas.codec import WireSchema
from schemas.keys import SigningKey, VerifyKey


class SignatureRefused(Exception):
    """Why a signed message must not be used (no content in the message)."""


def _unsigned(schema: WireSchema, context: bytes, datum: dict[str, Any], key_id: str) -> bytes:
    return context + schema.encode({**datum, "signing_key_id": key_id, "signature": b""})


def sign(schema: WireSchema, context: bytes, datum: dict[str, Any], key: SigningKey) -> bytes:
    """``datum`` (its Avro dict form) signed by ``key``, as the bytes to publish."""
    return signed_bytes(schema, context, datum, key)[1]


def signed_bytes(
    schema: WireSchema, context: bytes, datum: dict[str, Any], key: SigningKey
) -> tuple[bytes, bytes]:
    """The signature over ``datum`` and the bytes to publish (the datum with it filled in)."""
    signature = key.sign(_unsigned(schema, context, datum, key.key_id))
    return signature, schema.encode({**datum, "signing_key_id": key.key_id, "signature": signature})


def verify(
    schema: WireSchema, context: bytes, datum: dict[str, Any], keys: dict[str, VerifyKey]
) -> None:
    """Check the signature of a decoded message.

    Raises:
        SignatureRefused: unsigned, signed by a key not in ``keys``, or altered.
    """
    signature = datum.get("signature") or b""
    if not signature:
        raise SignatureRefused("unsigned")
    key = keys.get(datum.get("signing_key_id") or "")
    if key is None:
        raise SignatureRefused("signed by a key this receiver does not trust")
    try:
        key.public.verify(signature, _unsigned(schema, context, datum, datum["signing_key_id"]))
    except InvalidSignature:
        raise SignatureRefused("the signature does not verify: altered or forged") from None
