"""How a domain event lies in ``stored_events``: its row on the way in, the event on the way out.

A row holds the event as JSON (through the one converter, with its type's ``version``) and, for
an accepted case record, the minimised record as **Avro bytes** with the writer schema's
fingerprint (``body``, ``body_schema``): reading resolves the writer's schema to the current one,
so schema evolution is the upcaster of records. The identifiers are not in the record — they stay
sealed per person in the JSON part.

Upcasters bring an older stored version of an event's JSON up to its current version, one step at
a time; a stored event of a version newer than the code, or an unknown type, is an error (never
guessed at).

The record's Avro bytes are written by an encoder generated from the schema (see *The record's
Avro bytes* below): every accepted message pays for that encode, and fastavro's general writer
costs six times the generated one on the case record.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Collection, Mapping
from datetime import date
from typing import Any

import orjson
from sqlalchemy import Connection, null, select

from schemas.codec import WireSchema, default_registry
from schemas.model import Array, Enum, Fixed, Node, Primitive, Record, SchemaModel, Union
from trust.convert import converter
from trust.store.events import EVENT_TYPES, Event, JsonDict, RecordAccepted
from trust.store.tables import stored_events as _events

_REGISTRY = default_registry()
_CASE = _REGISTRY.current("case_record")
_VERSION_KEY = "v"


# --- the record's Avro bytes -------------------------------------------------------------------
#
# fastavro's writer interprets the schema for every datum: a dispatch on the type's name per
# value, a ``symbols.index`` per enum (250 countries), a trial validation of each branch per
# union. ``compile_encoder`` turns a schema's model, once, into ONE straight-line function that
# writes the same bytes: a table per enum, the union branch known from ``None`` or not, lengths
# and small integers from a table. It writes only values whose type it checks exactly (a ``str``
# for a string, an ``int`` — not a ``bool`` — for an int, a ``date`` for a date, a ``dict`` for a
# record, a ``list`` for an array); anything else (a missing field, a subclass, an unknown code,
# an int beyond 32 bits, a long beyond 64) raises inside it, and :func:`encode_record` then
# leaves the datum to fastavro, which writes it or refuses it exactly as before. A test checks
# the bytes against fastavro's on records drawn from the schema, and on values it leaves out.


class _Unfit(Exception):
    """A value the generated encoder does not write itself (fastavro decides)."""


_LONG_RANGE = 1 << 63
_INT_RANGE = 1 << 31
_SMALL = 4096  # lengths, counts and non-negative integers below this come from a table


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _long(v: int) -> bytes:
    """Avro's zig-zag varint of a 64-bit integer."""
    if not -_LONG_RANGE <= v < _LONG_RANGE:
        raise _Unfit
    return _varint((v << 1) ^ (v >> 63))


def _int(v: int) -> bytes:
    """:func:`_long` of a 32-bit integer: fastavro refuses a larger one in a union (where it
    checks the branch), so the generated encoder leaves any larger one to it."""
    if not -_INT_RANGE <= v < _INT_RANGE:
        raise _Unfit
    return _varint((v << 1) ^ (v >> 63))


_NON_NEGATIVE = tuple(_long(i) for i in range(_SMALL))
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class _EncoderSource:
    """The text of one generated encoder and the constants it reads (by name)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._vars = 0

    def const(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def var(self) -> str:
        self._vars += 1
        return f"x{self._vars}"

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def length(self, depth: int, n: str) -> None:
        self.add(depth, f"o += _N[{n}] if {n} < {_SMALL} else _long({n})")


def _emit_encode(src: _EncoderSource, node: Node, v: str, depth: int) -> None:
    """Lines appending the Avro binary of the value in variable ``v`` to ``o`` (as fastavro's
    ``schemaless_writer`` writes it), or raising for a value they do not handle."""
    if isinstance(node, Primitive):
        kind, logical = node.kind, node.logical_type
        if logical == "date" and kind == "int":  # fastavro: days since 1970-01-01
            src.add(depth, f"if type({v}) is _Date:")
            src.add(depth + 1, f"{v} = {v}.toordinal() - {_EPOCH_ORDINAL}")
        elif logical is not None:
            raise ValueError(f"{node.path}: logical type {logical} is not generated")
        if kind in ("int", "long"):
            src.add(depth, f"if type({v}) is not int:")
            src.add(depth + 1, "raise _Unfit")
            wide = "_int" if kind == "int" else "_long"
            src.add(depth, f"o += _N[{v}] if 0 <= {v} < {_SMALL} else {wide}({v})")
        elif kind in ("string", "bytes"):
            src.add(depth, f"if type({v}) is not {'str' if kind == 'string' else 'bytes'}:")
            src.add(depth + 1, "raise _Unfit")
            if kind == "string":
                src.add(depth, f"{v} = {v}.encode()")
            src.length(depth, f"len({v})")
            src.add(depth, f"o += {v}")
        elif kind == "boolean":
            src.add(depth, f"if {v} is True:")
            src.add(depth + 1, "o += b'\\x01'")
            src.add(depth, f"elif {v} is False:")
            src.add(depth + 1, "o += b'\\x00'")
            src.add(depth, "else:")
            src.add(depth + 1, "raise _Unfit")
        elif kind in ("float", "double"):
            pack = src.const(struct.Struct("<f" if kind == "float" else "<d").pack)
            src.add(depth, f"if type({v}) is not float:")
            src.add(depth + 1, "raise _Unfit")
            src.add(depth, f"o += {pack}({v})")
        elif kind == "null":
            src.add(depth, f"if {v} is not None:")
            src.add(depth + 1, "raise _Unfit")
        else:
            raise ValueError(f"{node.path}: unknown Avro type {kind}")
    elif isinstance(node, Enum):
        codes = src.const({s: _NON_NEGATIVE[i] for i, s in enumerate(node.symbols)})
        src.add(depth, f"o += {codes}[{v}]")  # an unknown code: KeyError
    elif isinstance(node, Fixed):
        if node.logical_type is not None:
            raise ValueError(f"{node.path}: logical type {node.logical_type} is not generated")
        src.add(depth, f"if type({v}) is not bytes or len({v}) != {node.size}:")
        src.add(depth + 1, "raise _Unfit")
        src.add(depth, f"o += {v}")
    elif isinstance(node, Union):
        inner = node.inner  # ValueError for anything but [null, T]
        null_at = next(i for i, b in enumerate(node.branches) if b is not inner)
        src.add(depth, f"if {v} is None:")
        src.add(depth + 1, f"o += {_NON_NEGATIVE[null_at]!r}")
        src.add(depth, "else:")
        src.add(depth + 1, f"o += {_NON_NEGATIVE[1 - null_at]!r}")
        _emit_encode(src, inner, v, depth + 1)
    elif isinstance(node, Record):
        src.add(depth, f"if type({v}) is not dict:")
        src.add(depth + 1, "raise _Unfit")
        for f in node.fields:
            x = src.var()
            src.add(depth, f"{x} = {v}[{f.name!r}]")  # absent: KeyError (fastavro's default)
            _emit_encode(src, f.type, x, depth)
    elif isinstance(node, Array):  # one block: its count, the items, then 0 (as fastavro)
        src.add(depth, f"if type({v}) is not list:")
        src.add(depth + 1, "raise _Unfit")
        src.add(depth, f"if {v}:")
        src.length(depth + 1, f"len({v})")
        x = src.var()
        src.add(depth + 1, f"for {x} in {v}:")
        _emit_encode(src, node.items, x, depth + 2)
        src.add(depth, "o += b'\\x00'")
    else:
        raise ValueError(f"{node.path}: maps are not generated")


def compile_encoder(model: SchemaModel) -> Callable[[Any], bytes]:
    """The schemaless Avro binary writer of ``model`` as one generated function (see the section
    note). It raises for any value it does not write itself; ValueError here for a schema with a
    part it cannot generate (a map, a union other than ``[null, T]``, another logical type)."""
    src = _EncoderSource()
    src.add(0, "def encode(x0):")
    src.add(1, "o = bytearray()")
    _emit_encode(src, model.root, "x0", 1)
    src.add(1, "return bytes(o)")
    namespace: dict[str, Any] = {
        **src.constants,
        "_N": _NON_NEGATIVE,
        "_long": _long,
        "_int": _int,
        "_Unfit": _Unfit,
        "_Date": date,
    }
    exec(compile("\n".join(src.lines), f"<encode {model.root.path}>", "exec"), namespace)
    encode: Callable[[Any], bytes] = namespace["encode"]
    return encode


def _encoder_of(schema: WireSchema) -> Callable[[Mapping[str, Any]], bytes]:
    generated = compile_encoder(schema.model)

    def encode(datum: Mapping[str, Any]) -> bytes:
        try:
            return generated(datum)
        except Exception:  # not one it writes itself: fastavro writes it, or refuses it
            return schema.encode(datum)

    return encode


encode_record = _encoder_of(_CASE)
"""The current case record schema's Avro bytes of a record (:meth:`WireSchema.encode`'s)."""

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


def _iso(value: object) -> str:
    # A safety net for a date outside the paths the converter knows; anything else is an error.
    if isinstance(value, date):
        return value.isoformat()
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
    built directly: the one event of every accepted message, so its cost is ingest's."""
    return {
        "event_id": event.event_id,
        "source_id": event.source_id,
        "case_id": event.case_id,
        "sealed_identifiers": {
            victim_id: {
                "person_key_id": blob.person_key_id,
                "nonce": blob.nonce,
                "ciphertext": blob.ciphertext,
            }
            for victim_id, blob in event.sealed_identifiers.items()
        },
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
            data["record"] = _REGISTRY.decode_payload("RecordUpsert", body_schema, body)
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
