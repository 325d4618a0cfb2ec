"""How an accepted record lies in ``stored_events``: one binary body (version 3) when it holds
the event exactly — as it does every event the vault seals — else the version-2 row, whose JSON
part is exactly what the one converter makes of the event (less the record, the Avro body)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import default_registry
from trust.convert import converter
from trust.store.events import RecordAccepted, SealedBlob
from trust.store.stored import ACCEPTED_BODY_SCHEMA, decode, event_row

from .builders import accepted

CASE = default_registry().current("case_record")

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_blobs = st.dictionaries(_text, st.builds(SealedBlob, _text, _text, _text), max_size=3)


def _back(row: dict[str, object]) -> object:
    return decode(
        str(row["event_type"]),
        json.loads(str(row["payload"])),
        row["body"],  # type: ignore[arg-type]
        row["body_schema"],  # type: ignore[arg-type]
        event_id=row["event_id"],  # type: ignore[arg-type]
        source_id=row["source_id"],  # type: ignore[arg-type]
    )


@given(sealed=_blobs, event_id=_text, case_id=_text)
def test_an_accepted_record_the_body_cannot_hold_is_stored_as_the_converters_json(
    sealed: dict[str, SealedBlob], event_id: str, case_id: str
) -> None:
    # blobs that are not what the vault writes (a key id, nonce or ciphertext of any text): the
    # version-3 body could not give them back as they are, so the row is version 2
    event = accepted(case_id=case_id or "c", event_id=event_id or "e", sealed=sealed)
    row = event_row(event, 1, "t", 0, 0)
    stored = json.loads(row["payload"])
    if stored["v"] == 3:  # every blob happened to be one the body holds exactly
        assert all(_canonical(b) for b in sealed.values())
    else:
        assert stored.pop("v") == 2
        expected = converter.unstructure(dataclasses.replace(event, record={}))
        del expected["record"]
        assert stored == expected
    assert _back(row) == event


def _canonical(blob: SealedBlob) -> bool:
    try:
        nonce, ct = base64.b64decode(blob.nonce, validate=True), base64.b64decode(blob.ciphertext)
    except ValueError:
        return False
    return (
        len(nonce) == 12
        and base64.b64encode(nonce).decode() == blob.nonce
        and base64.b64encode(ct).decode() == blob.ciphertext
    )


_hex_ids = st.binary(min_size=32, max_size=32).map(bytes.hex)
_nonces = st.binary(min_size=12, max_size=12).map(lambda b: base64.b64encode(b).decode())
_cts = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
_vault_blobs = st.builds(
    SealedBlob,
    st.one_of(_hex_ids, _text),  # the vault's hex key ids, or any other text
    _nonces,
    _cts,
    st.sampled_from([None, CASE.fingerprint]),
)


@given(
    sealed=st.dictionaries(_text, _vault_blobs, max_size=4),
    event_id=_text,
    case_id=_text,
    produced=st.integers(-(2**62), 2**62),
    accepted_after=st.integers(-(2**40), 2**40),
    agreement=st.one_of(st.none(), st.integers(0, 2**40)),
    kind=st.sampled_from(["RecordUpsert", "Other"]),
)
def test_an_accepted_record_as_the_vault_seals_it_is_one_binary_body(
    sealed: dict[str, SealedBlob],
    event_id: str,
    case_id: str,
    produced: int,
    accepted_after: int,
    agreement: int | None,
    kind: str,
) -> None:
    event = dataclasses.replace(
        accepted(case_id=case_id or "c", event_id=event_id or "e", sealed=sealed),
        produced_at_ms=produced,
        accepted_at_ms=produced + accepted_after,
        agreement_version=agreement,
        kind=kind,
    )
    row = event_row(event, 1, "t", 0, 0)
    assert row["payload"] == '{"v":3}'
    assert row["body_schema"] == CASE.fingerprint
    back = _back(row)
    assert back == event
    # the body is the Avro binary of its schema: fastavro writes the same bytes
    assert row["body"] == _fastavro_body(event, CASE.encode(event.record))
    # no base64, no JSON keys: the body is the record's Avro, the raw sealed bytes and a few more
    raw = sum(
        len(base64.b64decode(b.nonce)) + len(base64.b64decode(b.ciphertext))
        for b in sealed.values()
    )
    ids = sum(len(k.encode()) + 32 + 12 for k in sealed)  # victim id, key id, lengths, flags
    record = len(CASE.encode(event.record))
    fixed = len(event.case_id.encode()) + 40
    assert len(row["body"]) <= record + raw + ids + fixed + sum(
        len(b.person_key_id.encode()) for b in sealed.values()
    )


def _fastavro_body(event: RecordAccepted, record: bytes) -> bytes:
    def key(kid: str) -> tuple[bytes, str | None]:
        if len(kid) == 64 and all(c in "0123456789abcdef" for c in kid):
            return bytes.fromhex(kid), None
        return b"", kid

    datum = {
        "case_id": event.case_id,
        "produced_at_ms": event.produced_at_ms,
        "accepted_after_ms": event.accepted_at_ms - event.produced_at_ms,
        "kind": None if event.kind == "RecordUpsert" else event.kind,
        "agreement_version": event.agreement_version,
        "sealed": [
            {
                "victim_id": v,
                "key_id": key(b.person_key_id)[0],
                "key_text": key(b.person_key_id)[1],
                "sealed": base64.b64decode(b.nonce) + base64.b64decode(b.ciphertext),
                "avro": b.schema is not None,
            }
            for v, b in event.sealed_identifiers.items()
        ],
        "record": record,
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(ACCEPTED_BODY_SCHEMA), datum)
    return buf.getvalue()


def test_a_blob_of_an_unknown_schema_keeps_the_record_in_version_2() -> None:
    blob = SealedBlob("ab" * 32, base64.b64encode(bytes(12)).decode(), "Y3Q=", b"\x01" * 32)
    event = accepted(sealed={"v1": blob})
    row = event_row(event, 1, "t", 0, 0)
    assert json.loads(row["payload"])["v"] == 2
    assert _back(row) == event
