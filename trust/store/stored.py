"""How a domain event lies in ``stored_events``: its row on the way in, the event on the way out.

A row holds the event as JSON (through the one converter, with its type's ``version``) — except
an accepted case record, the one event of every accepted message, which is one **binary body**
(version 3, below) with the JSON part only ``{"v":3}``. Its minimised record is **Avro bytes**
with the writer schema's fingerprint (``body_schema``): reading resolves the writer's schema to
the current one, so schema evolution is the upcaster of records. The identifiers are not in the
record — they stay sealed per person beside it.

**An accepted record's body (version 3).** The Avro binary (:data:`ACCEPTED_BODY_SCHEMA`, an
internal schema never sent anywhere) of the event's fields that are not columns of the row —
``event_id`` and ``source_id`` are read back from their columns — its sealed identifiers as raw
bytes (each person's key id as its 32 bytes, the nonce and ciphertext joined, no base64, no JSON
keys) and, last, the record's Avro bytes. Version 2 kept the fields and the sealed identifiers
(base64 inside JSON) in the JSON part, about three times the bytes; such rows are read as they
are, and an event the body cannot hold exactly (a key id or a sealed part that is not what the
vault writes) is still stored that way.

Upcasters bring an older stored version of an event's JSON up to its current version, one step at
a time; a stored event of a version newer than the code, or an unknown type, is an error (never
guessed at).

The record's Avro bytes are written by the encoder generated from the schema
(:mod:`schemas.fastencode`): every accepted message pays for that encode, and fastavro's general
writer costs six times the generated one on the case record. They are read back by the decoder
generated from the same schema (:mod:`schemas.fastdecode`) when written with the current one —
every replay reads every record, and fastavro's general reader costs two to three times as
much; a record written with an older schema is resolved into the current one by fastavro.
"""

from __future__ import annotations

import binascii
import io
import json
from collections.abc import Callable, Collection, Mapping
from datetime import date
from typing import Any

import fastavro
import orjson
from sqlalchemy import Connection

from schemas.codec import default_registry
from schemas.fastdecode import PayloadDecoder
from schemas.fastdecode import with_fallback as decoder_with_fallback
from schemas.fastencode import SMALL_LONGS, Unfit, avro_long
from schemas.model import parse
from trust.convert import converter
from trust.store.db import param_mark
from trust.store.events import EVENT_TYPES, Event, JsonDict, RecordAccepted, SealedBlob
from trust.store.tables import stored_events as _events

_REGISTRY = default_registry()
_CASE = _REGISTRY.current("case_record")
_VERSION_KEY = "v"


# --- the record's Avro bytes -------------------------------------------------------------------
#
# ``WireSchema.encode`` writes through the encoder generated once from the schema
# (:mod:`schemas.fastencode`, shared with the producer), leaving to fastavro only a datum the
# generated one does not write itself; the bytes are fastavro's either way.

encode_record = _CASE.encode
"""The current case record schema's Avro bytes of a record (:meth:`WireSchema.encode`'s)."""

_RECORDS = PayloadDecoder(_REGISTRY)


def decode_record(body_schema: bytes, body: bytes) -> dict[str, Any]:
    """A stored record's Avro ``body`` written with the schema ``body_schema``, in the current
    case record schema (:meth:`SchemaRegistry.decode_payload`'s values and errors)."""
    return _RECORDS.decode_payload("RecordUpsert", body_schema, body)


# The case record's ``logicalType: date`` fields outside the (sealed) identifiers, as paths into
# the fastavro dict form: version-1 rows hold them as ISO strings inside the JSON.
_RECORD_DATE_PATHS: tuple[tuple[str, str], ...] = (
    ("reporting_entity", "date_recorded"),
    ("event", "start_date"),
    ("event", "end_date"),
)


class UnreadableEvent(Exception):
    """A stored event this code cannot read (an unknown type, or a newer version)."""


def _record_from_json(record: Mapping[str, Any]) -> JsonDict:
    out = dict(record)
    for outer, inner in _RECORD_DATE_PATHS:
        part = out.get(outer)
        if isinstance(part, dict) and isinstance(part.get(inner), str):
            out[outer] = {**part, inner: date.fromisoformat(part[inner])}
    return out


def _record_accepted_v1_to_v2(payload: JsonDict) -> JsonDict:
    # v1 kept the record in the JSON with ISO dates; v2 keeps it as Avro bytes beside the JSON.
    # The upcast result carries the record decoded, as reading a v2 row does.
    return {**payload, "record": _record_from_json(payload["record"])}


def _record_accepted_v2_to_v3(payload: JsonDict) -> JsonDict:
    # v3 changed how the event is stored (one binary body), not what it holds
    return payload


# --- a link's evidence, packed --------------------------------------------------------------------
#
# A ``RecordLinked`` event (one per linked victim record) is mostly its evidence: per pair, the
# other record's ids, the probability, the weight and each comparison's level — the converter's
# JSON repeats every key of that in every pair, of every event. Version 2 stores the evidence
# packed: ``{"levels": [comparison names], "pairs": [[source_id, case_id, victim_id,
# probability, match_weight, levels]]}``, each pair's ``levels`` the list of its levels in the
# order of the names when its comparisons are those names in that order (they are, for every
# pair one model scored), else the pair's own dict. No evidence stays ``[]``. Nor is the event
# id in the JSON: it is the row's ``event_id`` column. Read back, it is the converter's form
# again: nothing a reader sees changes.


def _pack_evidence(pairs: list[JsonDict]) -> JsonDict | list[JsonDict]:
    if not pairs:
        return pairs
    names = list(pairs[0]["levels"])
    packed = []
    for pair in pairs:
        other, levels = pair["other"], pair["levels"]
        mine: list[int] | JsonDict = levels
        if len(levels) == len(names) and all(a == b for a, b in zip(levels, names, strict=True)):
            mine = list(levels.values())
        packed.append(
            [
                other["source_id"],
                other["case_id"],
                other["victim_id"],
                pair["probability"],
                pair["match_weight"],
                mine,
            ]
        )
    return {"levels": names, "pairs": packed}


def _unpack_evidence(evidence: JsonDict | list[JsonDict]) -> list[JsonDict]:
    if isinstance(evidence, list):
        return evidence  # none
    names = evidence["levels"]
    return [
        {
            "other": {"source_id": s, "case_id": c, "victim_id": v},
            "probability": p,
            "match_weight": w,
            "levels": dict(zip(names, levels, strict=True)) if isinstance(levels, list) else levels,
        }
        for s, c, v, p, w, levels in evidence["pairs"]
    ]


def _linked_v1_to_v2(payload: JsonDict) -> JsonDict:
    return {**payload, "evidence": _pack_evidence(payload["evidence"])}


def _linked_packed(payload: JsonDict) -> JsonDict:
    # the event id is the row's ``event_id`` column: not written twice
    out = {k: v for k, v in payload.items() if k != "event_id"}
    out["evidence"] = _pack_evidence(payload["evidence"])
    return out


def _linked_unpacked(payload: JsonDict, event_id: str | None) -> JsonDict:
    out = {**payload, "evidence": _unpack_evidence(payload["evidence"])}
    if "event_id" not in out:
        if event_id is None:
            raise UnreadableEvent("RecordLinked version 2 needs its row's event_id")
        out["event_id"] = event_id
    return out


PACKED: Mapping[
    str, tuple[Callable[[JsonDict], JsonDict], Callable[[JsonDict, str | None], JsonDict]]
] = {
    "RecordLinked": (_linked_packed, _linked_unpacked),
}
"""Per event type, how its current version's converter form is packed for the store, and
unpacked again (after any upcasting; given the row's ``event_id`` column) before it is
structured."""


Upcaster = Callable[[JsonDict], JsonDict]

UPCASTERS: Mapping[tuple[str, int], Upcaster] = {
    ("RecordAccepted", 1): _record_accepted_v1_to_v2,
    ("RecordAccepted", 2): _record_accepted_v2_to_v3,
    ("RecordLinked", 1): _linked_v1_to_v2,  # version 2 packs the evidence
}
"""(event type, stored version) -> the step to version + 1."""


def _iso(value: object) -> str | dict[str, str | None]:
    # A safety net for a date outside the paths the converter knows; anything else is an error.
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, SealedBlob):  # json (the fallback) does not write these itself
        return _blob_json(value)
    raise TypeError(f"cannot store a {type(value).__name__} in an event payload")


def _blob_json(blob: SealedBlob) -> dict[str, str | None]:
    """What the converter makes of a blob (its ``schema`` as base64)."""
    return {
        "person_key_id": blob.person_key_id,
        "nonce": blob.nonce,
        "ciphertext": blob.ciphertext,
        "schema": None if blob.schema is None else _b64(blob.schema),
    }


def _dumps(payload: JsonDict) -> str:
    """Compact UTF-8 JSON. orjson writes what ``json.dumps`` with these options writes, several
    times faster; the few values it cannot (integers beyond 64 bits) go through ``json``."""
    try:
        return orjson.dumps(payload, default=_iso).decode()
    except orjson.JSONEncodeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_iso)


def _accepted_json(event: RecordAccepted) -> JsonDict:
    """What the converter makes of a :class:`RecordAccepted` less its record (in the Avro body),
    built directly: the version-2 row, kept for an event the version-3 body cannot hold."""
    sealed = event.sealed_identifiers
    return {
        "event_id": event.event_id,
        "source_id": event.source_id,
        "case_id": event.case_id,
        # orjson writes a dataclass as the dict of its fields — but a blob's ``schema`` is bytes
        "sealed_identifiers": {k: _blob_json(b) for k, b in sealed.items()},
        "produced_at_ms": event.produced_at_ms,
        "accepted_at_ms": event.accepted_at_ms,
        "kind": event.kind,
        "agreement_version": event.agreement_version,
    }


# --- an accepted record's version-3 body -------------------------------------------------------

ACCEPTED_BODY_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "AcceptedBody",
    "namespace": "org.tiptrust.store",
    "doc": "A RecordAccepted event less its event_id and source_id (columns of its row)",
    "fields": [
        {"name": "case_id", "type": "string"},
        {"name": "produced_at_ms", "type": "long"},
        {"name": "accepted_after_ms", "type": "long", "doc": "accepted_at_ms - produced_at_ms"},
        {"name": "kind", "type": ["null", "string"], "doc": "null: RecordUpsert"},
        {"name": "agreement_version", "type": ["null", "long"]},
        {
            "name": "sealed",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "SealedIdentifiers",
                    "fields": [
                        {"name": "victim_id", "type": "string"},
                        {"name": "key_id", "type": "bytes", "doc": "the hex key id's 32 bytes"},
                        {"name": "key_text", "type": ["null", "string"], "doc": "else as text"},
                        {"name": "sealed", "type": "bytes", "doc": "nonce then ciphertext"},
                        {"name": "avro", "type": "boolean", "doc": "Avro plaintext (else JSON)"},
                    ],
                },
            },
        },
        {"name": "record", "type": "bytes", "doc": "the record's Avro (body_schema)"},
    ],
}
"""The Avro schema of an accepted record's stored body (version 3): internal to the store."""

_BODY_VERSION = 3
_BODY_PAYLOAD = '{"v":3}'
_UPSERT = "RecordUpsert"
_NONCE = 12  # the vault's AES-GCM nonce
_NONCE_TEXT = 16  # its base64
_KEY_ID = 32  # the vault's key ids: 64 hex characters
_BODY_PARSED = fastavro.parse_schema(ACCEPTED_BODY_SCHEMA)
_BODY_MODEL = parse(ACCEPTED_BODY_SCHEMA)


def _fastavro_read_body(data: bytes) -> Any:
    buf = io.BytesIO(data)
    datum = fastavro.schemaless_reader(buf, _BODY_PARSED, None)
    if buf.tell() != len(data):
        raise UnreadableEvent("RecordAccepted body has trailing bytes")
    return datum


# read by the decoder generated from the schema (schemas.fastdecode), fastavro for any other bytes
_decode_body = decoder_with_fallback(_BODY_MODEL, _fastavro_read_body)

_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64
_NULL, _SOME = b"\x00", b"\x02"  # a [null, T] union's branch
_KEY_LENGTH = avro_long(_KEY_ID)


def _b64(b: bytes) -> str:
    return _b2a(b, newline=False).decode("ascii")


# base64 text that decodes (strictly) is canonical — it comes back as it is from its bytes — unless
# bits are left over before its padding: with "==", the last character's low four bits must be 0,
# with "=", its low two
_CLEAN_BEFORE_2 = frozenset("AQgw")
_CLEAN_BEFORE_1 = frozenset("AEIMQUYcgkosw048")


def _canonical_tail(text: str) -> bool:
    if text[-1:] != "=":
        return True
    if text[-2:-1] == "=":
        return text[-3:-2] in _CLEAN_BEFORE_2
    return text[-2:-1] in _CLEAN_BEFORE_1


def _accepted_body(event: RecordAccepted, record: bytes, fingerprint: bytes) -> bytes | None:
    """The version-3 body of ``event`` (see the module note): the Avro binary of
    :data:`ACCEPTED_BODY_SCHEMA`, written here directly — every accepted message pays for it,
    and this is a third of the generated encoder's cost on the dict it would need (the tests
    hold its bytes to fastavro's). None if the body cannot give the event back exactly (a key
    id, nonce or ciphertext that is not what the vault writes, a blob sealed under another
    schema, an integer beyond 64 bits, text that is not UTF-8): it is stored as version 2."""
    produced, accepted, agreement = (
        event.produced_at_ms,
        event.accepted_at_ms,
        event.agreement_version,
    )
    if type(produced) is not int or type(accepted) is not int:
        return None
    n = SMALL_LONGS  # a length's (a count's) Avro bytes
    try:
        case_id = event.case_id.encode()
        out = [n[len(case_id)], case_id, avro_long(produced), avro_long(accepted - produced)]
        kind = event.kind
        if kind == _UPSERT:
            out.append(_NULL)
        else:
            k = kind.encode()
            out += (_SOME, n[len(k)], k)
        if agreement is None:
            out.append(_NULL)
        elif type(agreement) is int:
            out += (_SOME, avro_long(agreement))
        else:
            return None
        sealed = event.sealed_identifiers
        if sealed:
            out.append(n[len(sealed)])
            for victim_id, blob in sealed.items():
                schema = blob.schema
                if schema is not None and schema != fingerprint:
                    return None
                nonce_text, ct_text = blob.nonce, blob.ciphertext
                # their text must come back as it is: canonical base64 (16 characters are
                # exactly the 12 bytes of a nonce, no bit left over)
                nonce, ct = _a2b(nonce_text, strict_mode=True), _a2b(ct_text, strict_mode=True)
                if len(nonce) != _NONCE or len(nonce_text) != _NONCE_TEXT:
                    return None
                if not _canonical_tail(ct_text):
                    return None
                vid = victim_id.encode()
                kid = blob.person_key_id
                raw = b""
                if len(kid) == 2 * _KEY_ID:
                    try:
                        raw = bytes.fromhex(kid)
                    except ValueError:
                        raw = b""
                both = nonce + ct
                flag = _NULL if schema is None else b"\x01"
                if len(raw) == _KEY_ID and raw.hex() == kid:
                    out += (n[len(vid)], vid, _KEY_LENGTH, raw, _NULL, n[len(both)], both, flag)
                else:  # kept as text (e.g. upper case)
                    t = kid.encode()
                    out += (n[len(vid)], vid, _NULL, _SOME, n[len(t)], t, n[len(both)], both, flag)
        out += (_NULL, n[len(record)], record)
    except (IndexError, Unfit, ValueError, TypeError, AttributeError):
        # a length beyond the table, a value of another type, text that is not UTF-8, base64
        # that does not decode (binascii.Error and UnicodeEncodeError are ValueErrors)
        return _accepted_body_slowly(event, record, fingerprint)
    return b"".join(out)


def _accepted_body_slowly(event: RecordAccepted, record: bytes, fingerprint: bytes) -> bytes | None:
    """:func:`_accepted_body` for what its fast path leaves (a length of 4,096 bytes or more):
    the same checks, then fastavro's writer on the datum; None where it gives None."""
    sealed = []
    for victim_id, blob in event.sealed_identifiers.items():
        if blob.schema is not None and blob.schema != fingerprint:
            return None
        try:
            nonce = _a2b(blob.nonce, strict_mode=True)
            ct = _a2b(blob.ciphertext, strict_mode=True)
        except ValueError:
            return None
        if len(nonce) != _NONCE or _b64(nonce) != blob.nonce or _b64(ct) != blob.ciphertext:
            return None
        kid = blob.person_key_id
        try:
            raw = bytes.fromhex(kid) if len(kid) == 2 * _KEY_ID else b""
        except ValueError:
            raw = b""
        hexed = len(raw) == _KEY_ID and raw.hex() == kid
        sealed.append(
            {
                "victim_id": victim_id,
                "key_id": raw if hexed else b"",
                "key_text": None if hexed else kid,
                "sealed": nonce + ct,
                "avro": blob.schema is not None,
            }
        )
    datum = {
        "case_id": event.case_id,
        "produced_at_ms": event.produced_at_ms,
        "accepted_after_ms": event.accepted_at_ms - event.produced_at_ms,
        "kind": None if event.kind == _UPSERT else event.kind,
        "agreement_version": event.agreement_version,
        "sealed": sealed,
        "record": record,
    }
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(buf, _BODY_PARSED, datum)
    except Exception:  # e.g. an integer beyond 64 bits, a lone surrogate
        return None
    return buf.getvalue()


def _accepted_from_body(
    body: bytes,
    body_schema: bytes,
    event_id: str | None,
    source_id: str | None,
    *,
    records: bool = True,
    sealed: bool = True,
) -> RecordAccepted:
    """The event a version-3 row holds; ``records=False``: its record left empty (unread),
    ``sealed=False``: its sealed identifiers left empty (for replays, which read neither)."""
    if event_id is None or source_id is None:
        raise UnreadableEvent("RecordAccepted version 3 needs its row's event_id and source_id")
    try:
        d = _decode_body(body)
    except Exception as exc:  # the body's decoder's errors: never a value in the message
        raise UnreadableEvent(f"RecordAccepted body is unreadable ({type(exc).__name__})") from None
    blobs: dict[str, SealedBlob] = {}
    if sealed:
        for part in d["sealed"]:
            both = part["sealed"]
            blobs[part["victim_id"]] = SealedBlob(
                part["key_id"].hex() if part["key_text"] is None else part["key_text"],
                _b64(both[:_NONCE]),
                _b64(both[_NONCE:]),
                body_schema if part["avro"] else None,
            )
    produced = d["produced_at_ms"]
    kind = d["kind"]
    return RecordAccepted(
        event_id=event_id,
        source_id=source_id,
        case_id=d["case_id"],
        record=decode_record(body_schema, d["record"]) if records else {},
        sealed_identifiers=blobs,
        produced_at_ms=produced,
        accepted_at_ms=produced + d["accepted_after_ms"],
        kind=_UPSERT if kind is None else kind,
        agreement_version=d["agreement_version"],
    )


EVENT_COLUMNS = (
    "event_type",
    "event_id",
    "source_id",
    "payload",
    "body",
    "body_schema",
    "recorded_at_ms",
    "topic",
    "partition",
    "offset",
)
"""The ``stored_events`` columns :func:`event_values` gives, in its order (all but ``seq``)."""
if {*EVENT_COLUMNS, "seq"} != {c.name for c in _events.columns}:  # pragma: no cover
    raise RuntimeError("stored_events' columns changed: update EVENT_COLUMNS and event_values")


def event_row(
    event: Event, recorded_at_ms: int, topic: str | None, partition: int | None, offset: int | None
) -> dict[str, Any]:
    """The ``stored_events`` values of ``event`` (without ``seq``, which the database assigns)."""
    return dict(
        zip(
            EVENT_COLUMNS,
            event_values(event, recorded_at_ms, topic, partition, offset),
            strict=True,
        )
    )


def event_values(
    event: Event, recorded_at_ms: int, topic: str | None, partition: int | None, offset: int | None
) -> tuple[Any, ...]:
    """:func:`event_row`'s values as a tuple in :data:`EVENT_COLUMNS`' order: what an append
    sends to the driver as it is (built before the append takes the store's write lock)."""
    body: bytes | None = None
    body_schema: bytes | None = None
    text: str | None = None
    if isinstance(event, RecordAccepted):
        record = encode_record(event.record)
        body_schema = _CASE.fingerprint
        body = _accepted_body(event, record, body_schema)
        if body is not None:
            text = _BODY_PAYLOAD
        else:  # version 2: the JSON beside the record's Avro
            body = record
            payload = _accepted_json(event)
            payload[_VERSION_KEY] = 2
            text = _dumps(payload)
    else:
        payload = converter.unstructure(event)
        packing = PACKED.get(event.event_type)
        if packing is not None:
            payload = packing[0](payload)
        payload[_VERSION_KEY] = type(event).version
        text = _dumps(payload)
    return (
        event.event_type,
        event.event_id,
        event.source_id,
        text,
        body,
        body_schema,
        recorded_at_ms,
        topic,
        partition,
        offset,
    )


def decode(
    event_type: str,
    payload: Mapping[str, Any],
    body: bytes | None = None,
    body_schema: bytes | None = None,
    *,
    records: bool = True,
    event_id: str | None = None,
    source_id: str | None = None,
) -> Event:
    """The event of stored type ``event_type`` from its row's JSON (and body, if any).

    ``records=False`` leaves an accepted record's Avro record unread: the event's ``record`` is
    then empty — for readers that need only which case an event is about. A version-1 row holds
    its record in the JSON and is read whole either way. A version-3 accepted record needs its
    row's ``event_id`` and ``source_id`` columns (its body holds the rest).

    Raises:
        UnreadableEvent: an unknown type, a version newer than this code knows, or a row that
            lacks what its version needs (a body, its id columns) or whose body does not read.
    """
    try:
        cls = EVENT_TYPES[event_type]
    except KeyError:
        raise UnreadableEvent(f"unknown event type {event_type!r}") from None
    data = dict(payload)
    version = int(data.pop(_VERSION_KEY, 1))
    if version > cls.version:
        raise UnreadableEvent(f"{event_type} version {version} is newer than this code's")
    if version == _BODY_VERSION and cls is RecordAccepted:
        if body is None or body_schema is None:
            raise UnreadableEvent(f"{event_type} version 3 has no body")
        raw = body if type(body) is bytes else bytes(body)
        return _accepted_from_body(raw, body_schema, event_id, source_id, records=records)
    if body_schema is not None:  # the record is the Avro body (``body`` is None if left unread)
        if not records:
            data["record"] = {}
        elif body is None:
            raise UnreadableEvent(f"{event_type} has a body schema but no body")
        else:
            data["record"] = decode_record(body_schema, body)
        version = cls.version
    while version < cls.version:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise UnreadableEvent(f"no upcaster for {event_type} version {version}")
        data = step(data)
        version += 1
    packing = PACKED.get(event_type)
    if packing is not None:
        data = packing[1](data, event_id)
    return converter.structure(data, cls)


def read_page(
    conn: Connection,
    after_seq: int,
    limit: int,
    *,
    types: Collection[str] | None = None,
    upto_seq: int | None = None,
    records: bool = True,
) -> list[tuple[int, Event]]:
    """Up to ``limit`` stored events with ``seq > after_seq`` (and ``<= upto_seq``; of the
    named ``types`` only, if given), in seq order; ``records=False``: see :func:`decode`.

    The statement goes through the driver: every follower reads a page per batch (a live trust,
    one per event), and SQLAlchemy's statement, its ``IN`` list expanded anew each time, cost
    more than the query."""
    mark = param_mark(conn)
    where = [f"seq > {mark}"]
    params: list[Any] = [after_seq]
    if upto_seq is not None:
        where.append(f"seq <= {mark}")
        params.append(upto_seq)
    if types is not None:
        names = sorted(types)
        if not names:
            return []
        where.append(f"event_type IN ({', '.join([mark] * len(names))})")
        params.extend(names)
    params.append(limit)
    sql = f"{_PAGE_HEAD} WHERE {' AND '.join(where)} ORDER BY seq LIMIT {mark}"
    return [
        # json, not orjson: orjson reads an integer beyond 64 bits as a float, silently
        (seq, decode(t, json.loads(p), b, schema, records=records, event_id=eid, source_id=sid))
        for seq, t, p, b, schema, eid, sid in conn.exec_driver_sql(sql, tuple(params))
    ]


_PAGE_COLUMNS = ("seq", "event_type", "payload", "body", "body_schema", "event_id", "source_id")
_PAGE_HEAD = f"SELECT {', '.join(_PAGE_COLUMNS)} FROM {_events.name}"
if not {*_PAGE_COLUMNS} <= {c.name for c in _events.columns}:  # pragma: no cover
    raise RuntimeError("stored_events' columns changed: update read_page")
