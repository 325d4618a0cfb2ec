"""How a domain event lies in ``stored_events``: its row on the way in, the event on the way out.

A row holds the event as JSON (through the one converter, with its type's ``version``) and, for
an accepted case record, the minimised record as **Avro bytes** with the writer schema's
fingerprint (``body``, ``body_schema``): reading resolves the writer's schema to the current one,
so schema evolution is the upcaster of records. The identifiers are not in the record — they stay
sealed per person in the JSON part.

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

import json
from collections.abc import Callable, Collection, Mapping
from datetime import date
from typing import Any

import orjson
from sqlalchemy import Connection, null, select

from schemas.codec import default_registry
from schemas.fastdecode import PayloadDecoder
from trust.convert import converter
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


Upcaster = Callable[[JsonDict], JsonDict]

UPCASTERS: Mapping[tuple[str, int], Upcaster] = {
    ("RecordAccepted", 1): _record_accepted_v1_to_v2,
}
"""(event type, stored version) -> the step to version + 1."""


def _iso(value: object) -> str | dict[str, str]:
    # A safety net for a date outside the paths the converter knows; anything else is an error.
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, SealedBlob):  # orjson writes these itself; json (the fallback) does not
        return {
            "person_key_id": value.person_key_id,
            "nonce": value.nonce,
            "ciphertext": value.ciphertext,
        }
    raise TypeError(f"cannot store a {type(value).__name__} in an event payload")


def _dumps(payload: JsonDict) -> str:
    """Compact UTF-8 JSON. orjson writes what ``json.dumps`` with these options writes, several
    times faster; the few values it cannot (integers beyond 64 bits) go through ``json``."""
    try:
        return orjson.dumps(payload, default=_iso).decode()
    except orjson.JSONEncodeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_iso)


def _accepted_json(event: RecordAccepted) -> JsonDict:
    """What the converter makes of a :class:`RecordAccepted` less its record (in the Avro body),
    built directly: the one event of every accepted message, so its cost is ingest's. The
    sealed blobs are left as they are: orjson writes a dataclass as the dict of its fields in
    their order — the converter's — and ``_iso`` does the same for ``json``."""
    return {
        "event_id": event.event_id,
        "source_id": event.source_id,
        "case_id": event.case_id,
        "sealed_identifiers": event.sealed_identifiers,
        "produced_at_ms": event.produced_at_ms,
        "accepted_at_ms": event.accepted_at_ms,
        "kind": event.kind,
        "agreement_version": event.agreement_version,
    }


def event_row(
    event: Event, recorded_at_ms: int, topic: str | None, partition: int | None, offset: int | None
) -> dict[str, Any]:
    """The ``stored_events`` values of ``event`` (without ``seq``, which the database assigns)."""
    body: bytes | None = None
    body_schema: bytes | None = None
    if isinstance(event, RecordAccepted):
        body = encode_record(event.record)
        body_schema = _CASE.fingerprint
        payload = _accepted_json(event)
    else:
        payload = converter.unstructure(event)
    payload[_VERSION_KEY] = type(event).version
    return {
        "event_type": event.event_type,
        "event_id": event.event_id,
        "source_id": event.source_id,
        "payload": _dumps(payload),
        "body": body,
        "body_schema": body_schema,
        "recorded_at_ms": recorded_at_ms,
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }


def decode(
    event_type: str,
    payload: Mapping[str, Any],
    body: bytes | None = None,
    body_schema: bytes | None = None,
    *,
    records: bool = True,
) -> Event:
    """The event of stored type ``event_type`` from its row's JSON (and Avro body, if any).

    ``records=False`` leaves an accepted record's Avro body unread: the event's ``record`` is
    then empty — for readers that need only which case an event is about (its JSON part). A
    version-1 row holds its record in the JSON and is read whole either way.

    Raises:
        UnreadableEvent: an unknown type, or a version newer than this code knows.
    """
    try:
        cls = EVENT_TYPES[event_type]
    except KeyError:
        raise UnreadableEvent(f"unknown event type {event_type!r}") from None
    data = dict(payload)
    version = int(data.pop(_VERSION_KEY, 1))
    if version > cls.version:
        raise UnreadableEvent(f"{event_type} version {version} is newer than this code's")
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
    named ``types`` only, if given), in seq order; ``records=False``: see :func:`decode`."""
    c = _events.c
    body = c.body if records else null().label("body")
    stmt = (
        select(c.seq, c.event_type, c.payload, body, c.body_schema)
        .where(c.seq > after_seq)
        .order_by(c.seq)
        .limit(limit)
    )
    if types is not None:
        stmt = stmt.where(c.event_type.in_(sorted(types)))
    if upto_seq is not None:
        stmt = stmt.where(c.seq <= upto_seq)
    return [
        # json, not orjson: orjson reads an integer beyond 64 bits as a float, silently
        (seq, decode(t, json.loads(p), b, schema, records=records))
        for seq, t, p, b, schema in conn.execute(stmt)
    ]
