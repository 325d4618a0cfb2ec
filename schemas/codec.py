"""Avro codec on fastavro: the shipped schemas, their fingerprints, encode and decode.

Every payload on the wire is Avro (schemaless binary) and its envelope names the writer schema by
the SHA-256 of the schema's parsing canonical form. No schema-registry server is needed: the trust
resolves a fingerprint against the schemas it ships (the current tree plus every released snapshot
under ``avro/released/``), so a source still on an older compatible schema is read with schema
resolution into the current one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from schemas.errors import InvalidRecord, Problem, ReasonCode, UnknownSchema
from schemas.fastencode import (
    Encoder,
    RuleEmitter,
    SplitEncoder,
    compile_checked_encoder,
    compile_split_encoder,
    try_compile,
)
from schemas.lossless import LosslessPlan, plan_for
from schemas.model import Array, Node, Record, SchemaModel, Union, parse

AVRO_DIR = Path(__file__).parent / "avro"
RELEASED_DIR = AVRO_DIR / "released"

#: message kind (the envelope header's ``kind``) → the payload schema's file stem
KIND_SCHEMAS: Mapping[str, str] = {
    "RecordUpsert": "case_record",
    "RecordRetraction": "record_retraction",
    "ConsentWithdrawal": "consent_withdrawal",
    "DisposalRequest": "disposal_request",
}


@dataclass(frozen=True, eq=False)
class WireSchema:
    """One parsed Avro schema with its identity."""

    name: str
    source: dict[str, Any] = field(repr=False)
    parsed: Any = field(repr=False)
    canonical: str = field(repr=False)
    fingerprint: bytes = b""

    @cached_property
    def model(self) -> SchemaModel:
        """The schema's parsed model (:mod:`schemas.model`), built once: every walker reads it."""
        return parse(self.source)

    def encode(self, datum: Mapping[str, Any]) -> bytes:
        """Schemaless Avro binary of ``datum``; raises :class:`InvalidRecord` without values.

        Written by the encoder generated from this schema (:mod:`schemas.fastencode`, the same
        bytes at a sixth of fastavro's cost); a datum it does not write itself goes to fastavro,
        which writes it or refuses it as it always did."""
        return self.encode_written(datum)[0]

    def encode_written(self, datum: Mapping[str, Any]) -> tuple[bytes, bool]:
        """:meth:`encode`, and whether the generated encoder wrote it: then ``datum`` holds every
        field of this schema, each of exactly the type decoding gives back (a ``str`` for a
        string or an enum code, a ``list`` for an array, a ``dict`` for a record, ``None`` for a
        null branch), so where only the schema's fields are read it stands for the decoded
        record (see :meth:`SchemaRegistry.content_bytes`)."""
        generated = self._generated
        if generated is not None:
            try:
                return generated(datum), True
            except Exception:  # not one it writes itself: fastavro writes it, or refuses it
                pass
        return self._fastavro_encode(datum), False

    @cached_property
    def _generated(self) -> Encoder | None:
        try:
            model = self.model
        except ValueError:  # a schema the model does not describe: fastavro alone
            return None
        return try_compile(model)

    def _fastavro_encode(self, datum: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, self.parsed, datum)
        except Exception as exc:  # fastavro's messages may quote the datum: never pass them on
            raise InvalidRecord(
                f"record does not fit schema {self.name} ({type(exc).__name__})",
                problems=(Problem("$", ReasonCode.INVALID_RECORD, f"a {self.name} record"),),
            ) from None
        return buf.getvalue()

    def decode(self, data: bytes, reader: WireSchema | None = None) -> dict[str, Any]:
        """Decode bytes written with this schema, resolved into ``reader`` when given."""
        buf = io.BytesIO(data)
        try:
            if reader is None or reader is self:
                datum = fastavro.schemaless_reader(buf, self.parsed, None)
            else:
                datum = fastavro.schemaless_reader(buf, self.parsed, reader.parsed)
        except Exception:
            raise InvalidRecord(
                f"payload is not a valid {self.name} encoding",
                problems=(Problem("$", ReasonCode.INVALID_RECORD, f"Avro {self.name}"),),
            ) from None
        if buf.tell() != len(data):
            raise InvalidRecord(
                f"payload has trailing bytes after the {self.name} record",
                problems=(Problem("$", ReasonCode.INVALID_RECORD, "no trailing bytes"),),
            )
        assert isinstance(datum, dict)
        return datum


def fingerprint_of(source: Mapping[str, Any]) -> tuple[Any, str, bytes]:
    """Parse a schema; return (parsed, canonical form, SHA-256 fingerprint of the canonical form)."""
    parsed = fastavro.parse_schema(dict(source))
    canonical = to_parsing_canonical_form(parsed)
    return parsed, canonical, hashlib.sha256(canonical.encode()).digest()


def load_schema_file(path: Path, name: str | None = None) -> WireSchema:
    source = json.loads(path.read_text(encoding="utf-8"))
    parsed, canonical, fp = fingerprint_of(source)
    return WireSchema(name or path.stem, source, parsed, canonical, fp)


class SchemaRegistry:
    """Fingerprint → schema, with no server: the schemas this code ships."""

    def __init__(self, current: Iterable[WireSchema], historic: Iterable[WireSchema] = ()) -> None:
        self._current = {s.name: s for s in current}
        self._by_fp: dict[bytes, WireSchema] = {}
        self._released: dict[str, list[WireSchema]] = {}  # by name, oldest first
        # per (old, current) fingerprints: which fields the old schema lacks (None: no plan)
        self._plans: dict[tuple[bytes, bytes], LosslessPlan | None] = {}
        # per (old, current) fingerprints: whether a written datum stands for the decoded one
        self._exact: dict[tuple[bytes, bytes], bool] = {}
        # per name: the one-pass writer of the current and the earliest released bytes, if any
        self._splits: dict[str, tuple[LosslessPlan, SplitEncoder] | None] = {}
        for s in historic:
            self._by_fp[s.fingerprint] = s
            self._released.setdefault(s.name, []).append(s)
        for s in self._current.values():
            self._by_fp[s.fingerprint] = s

    def current(self, name: str) -> WireSchema:
        return self._current[name]

    def for_kind(self, kind: str) -> WireSchema:
        return self._current[KIND_SCHEMAS[kind]]

    def writer(self, fingerprint: bytes) -> WireSchema:
        try:
            return self._by_fp[fingerprint]
        except KeyError:
            raise UnknownSchema(
                "payload schema fingerprint is not one this trust ships",
                problems=(Problem("$", ReasonCode.UNKNOWN_SCHEMA, "a shipped schema"),),
            ) from None

    def content_bytes(
        self,
        name: str,
        payload: bytes,
        datum: dict[str, Any] | None = None,
        *,
        written: dict[str, Any] | None = None,
    ) -> bytes:
        """The bytes a record is known by across schema versions (a producer's outbox digests
        them to tell a changed record from one sent before): ``payload`` (the record under the
        current schema) re-encoded under the earliest released schema that holds it without
        loss, else ``payload`` itself. A field added later, left at its default, then does not
        make every unchanged record look new. ``datum``: ``payload`` decoded, when the caller
        has it (saves a decode). ``written``: the datum the generated encoder wrote ``payload``
        from (:meth:`WireSchema.encode_written` said so); where the two schemas differ only by
        added fields it stands for the decoded record, and saves the decode, which is a third
        of the cost of a producer's record.

        Whether an old schema holds the record is decided from the two schemas where they
        differ only by added fields (:mod:`schemas.lossless`), else by a round trip."""
        current = self._current[name]
        for old in self._released.get(name, ()):
            if old.fingerprint == current.fingerprint:
                break
            plan = self._plan(old, current)
            if (
                written is not None
                and plan is not None
                and self._stands_for_decoded(old, current, plan)
            ):
                if not plan.holds(written):
                    continue
                try:
                    return old.encode(written)
                except InvalidRecord:
                    continue
            if datum is None:
                datum = current.decode(payload)
            if plan is not None and not plan.holds(datum):
                continue
            try:
                encoded = old.encode(datum)  # fields the old schema lacks are left out
            except InvalidRecord:
                continue
            if plan is not None or old.decode(encoded, current) == datum:
                return encoded
        return payload

    def encode_with_content(self, name: str, datum: dict[str, Any]) -> tuple[bytes, bytes]:
        """The record's payload under the current schema ``name`` (:meth:`WireSchema.encode`)
        and its :meth:`content_bytes`, as a producer needs both. Where the earliest released
        schema is the current one less some fields, both come from one generated pass (see
        :func:`schemas.fastencode.compile_split_encoder`); else the payload is written and its
        content bytes worked out from the datum written."""
        current = self._current[name]
        split = self._split(name)
        if split is not None:
            plan, encode = split
            try:
                payload, earliest = encode(datum)
            except Exception:  # not one the generated pass writes: the general way below
                pass
            else:
                if plan.holds(datum):
                    return payload, earliest
                return payload, self.content_bytes(name, payload, written=datum)
        payload, written = current.encode_written(datum)
        return payload, self.content_bytes(name, payload, written=datum if written else None)

    def checked_encoder(
        self, name: str, rules: RuleEmitter
    ) -> Callable[[dict[str, Any]], tuple[bytes, bytes]] | None:
        """:meth:`encode_with_content` in one generated pass that also runs ``rules`` (lines
        that refuse a value breaking a rule, see :func:`schemas.fastencode.compile_checked_encoder`):
        the function returned gives a datum's payload and content bytes, the very bytes
        :meth:`encode_with_content` gives, and raises for a datum a rule refuses or the pass does
        not write (the caller then checks it and encodes it the usual way). None where the
        schema has no such pass: not generated, or its earliest release not the current schema
        less some fields."""
        current = self._current[name]
        released = self._released.get(name, ())
        old: WireSchema | None = None
        if released and released[0].fingerprint != current.fingerprint:
            if self._split_plan(name) is None:
                return None
            old = released[0]  # the split's: content bytes are the record under this schema
        try:
            compiled = compile_checked_encoder(
                current.model, None if old is None else old.model, rules
            )
        except ValueError:
            return None
        content_bytes = self.content_bytes
        # the releases content_bytes tries after the earliest (up to the current schema): none,
        # and a record the earliest does not hold is known by its payload
        later = False
        for s in released[1:]:
            if s.fingerprint == current.fingerprint:
                break
            later = True

        def encode(datum: dict[str, Any]) -> tuple[bytes, bytes]:
            payload, earliest, at_defaults = compiled(datum)
            if at_defaults:  # (no older schema: ``earliest`` is the payload, as content_bytes)
                return payload, earliest
            if not later:
                return payload, payload
            return payload, content_bytes(name, payload, written=datum)

        return encode

    def _split_plan(self, name: str) -> LosslessPlan | None:
        """The plan of a one-pass split of ``name`` (see :meth:`_split`) where its earliest
        release is the current schema less fields a written datum's check can stand for; None
        where there is none (such a split's encoder may still not compile)."""
        current = self._current[name]
        released = self._released.get(name, ())
        if released and released[0].fingerprint != current.fingerprint:
            old = released[0]
            plan = self._plan(old, current)
            if plan is not None and self._stands_for_decoded(old, current, plan):
                return plan
        return None

    def _split(self, name: str) -> tuple[LosslessPlan, SplitEncoder] | None:
        if name not in self._splits:
            self._splits[name] = None
            plan = self._split_plan(name)
            if plan is not None:
                old, current = self._released[name][0], self._current[name]
                try:
                    encode = compile_split_encoder(current.model, old.model)
                except ValueError:
                    pass
                else:
                    self._splits[name] = (plan, encode)
        return self._splits[name]

    def _stands_for_decoded(self, old: WireSchema, current: WireSchema, plan: LosslessPlan) -> bool:
        """Whether a datum the generated encoder wrote gives the plan's check and the old
        schema's encode what its decoded record would: its fields hold the decoded values and
        types, so a difference can come only from what the current schema does not read — a key
        beside its fields, which a field only the old schema has would read (such a pair is not
        taken) — or from a default compared by type and value where decoding gives another
        type (a number's default against a date's day count: only ``None``, text, ``[]`` and
        booleans are taken)."""
        key = (old.fingerprint, current.fingerprint)
        if key not in self._exact:
            self._exact[key] = _fields_within(old.model.root, current.model.root) and all(
                f.default is None or type(f.default) in (str, bool) or f.default == []
                for f in plan.added
            )
        return self._exact[key]

    def _plan(self, old: WireSchema, current: WireSchema) -> LosslessPlan | None:
        key = (old.fingerprint, current.fingerprint)
        if key not in self._plans:
            self._plans[key] = plan_for(old.model, current.model)
        return self._plans[key]

    def decode_payload(self, kind: str, fingerprint: bytes, payload: bytes) -> dict[str, Any]:
        """Decode a payload by its writer fingerprint into the current schema for its kind."""
        writer = self.writer(fingerprint)
        reader = self.for_kind(kind)
        if writer.name != reader.name:
            raise UnknownSchema(
                f"schema {writer.name} is not the schema for kind {kind}",
                problems=(Problem("$", ReasonCode.UNKNOWN_SCHEMA, f"a {reader.name} schema"),),
            )
        return writer.decode(payload, reader)

    @property
    def names(self) -> list[str]:
        return sorted(self._current)

    def shipped(self) -> list[WireSchema]:
        """Every schema this code reads, current and released before (by name, then
        fingerprint)."""
        return sorted(self._by_fp.values(), key=lambda s: (s.name, s.fingerprint))


def _fields_within(old: Node, current: Node) -> bool:
    """Whether every record of ``old`` has only fields its counterpart in ``current`` has (the
    two of the same shape, as a lossless plan found them)."""
    if isinstance(old, Record) and isinstance(current, Record):
        theirs = {f.name: f.type for f in current.fields}
        return all(f.name in theirs and _fields_within(f.type, theirs[f.name]) for f in old.fields)
    if isinstance(old, Array) and isinstance(current, Array):
        return _fields_within(old.items, current.items)
    if isinstance(old, Union) and isinstance(current, Union):
        return _fields_within(old.inner, current.inner)
    return not isinstance(old, Record | Array | Union)


def load_current(avro_dir: Path = AVRO_DIR) -> list[WireSchema]:
    return [load_schema_file(p) for p in sorted(avro_dir.glob("*.avsc"))]


def load_released(released_dir: Path = RELEASED_DIR) -> list[WireSchema]:
    """Every released snapshot: ``released/<version>/<name>.avsc``."""
    if not released_dir.is_dir():
        return []
    return [load_schema_file(p) for p in sorted(released_dir.glob("*/*.avsc"))]


@cache
def default_registry() -> SchemaRegistry:
    """The registry of the schemas this installation ships (parsed once per process)."""
    return SchemaRegistry(load_current(), load_released())


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def epoch_millis(value: int | dt.datetime) -> int:
    """Milliseconds since the epoch of a decoded ``timestamp-millis`` value, exactly.

    fastavro gives such fields back as datetimes; ``int(d.timestamp() * 1000)`` goes through a
    float and can lose a millisecond, which changes the re-encoded bytes of a signed message.
    """
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - _EPOCH) // _MS
