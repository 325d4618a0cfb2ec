"""Avro binary readers generated from a schema, once: fastavro's values at a fraction of its cost.

The twin of :mod:`schemas.fastencode`. fastavro's reader interprets the schema for every datum: a
dispatch on the type's name per value, a function call per field, a file-like object read byte
by byte. The trust reads every accepted record's Avro at least twice in its life — the payload at
ingest, the stored record at every replay (``trust rebuild``) — so that cost is paid per event.

:func:`compile_decoder` turns a schema's model, once, into ONE straight-line function over the
bytes and a position: varints read inline (one byte for most), an enum's code and a union's
branch looked up in a table by the raw byte, lengths checked against the end of the data. It
reads only what it can read exactly as fastavro reads it: any other input — an enum index or a
union branch out of range, a boolean byte other than 0 or 1, an ``int`` beyond 32 bits, a
varint beyond 64 bits, a length past the end, text that is not UTF-8 — makes it raise.
:func:`with_fallback` then leaves such bytes to the general reader (fastavro), which reads them
or refuses them exactly as before; bytes left over after the datum go to it too (so its own
trailing-bytes error is raised). So no bytes ever get a value, or an error, that fastavro would
not have given them. The tests check the values against fastavro's on records drawn from every
shipped schema, and on those bytes mutated at random.

Values come back as fastavro gives them: a ``dict`` per record (fields in the schema's order), a
``list`` per array, a ``str`` per string or enum code, ``bytes`` for bytes and fixed, a
``datetime.date`` for a ``date``, an aware UTC ``datetime`` for a ``timestamp-millis``.

:class:`PayloadDecoder` decodes a payload as :meth:`SchemaRegistry.decode_payload` does: through
the generated reader when the writer's schema is the current one for the kind (no resolution
needed), through the registry (fastavro, with schema resolution) otherwise.

:meth:`PayloadDecoder.decode_checked` is ingest's decode and validate in one pass, the twin of the
producer's checked encoder: :func:`compile_checked_decoder` runs the value rules (the lines of
:func:`schemas.codegen.value_rules`, the producer's) on each value as it is read, then the
validator's rules across fields, so a payload without a problem is never walked a second time.
Any other payload (a problem, bytes left to fastavro, another schema) is decoded and validated
as before, with the same values, problems and errors.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from schemas.codec import SchemaRegistry, WireSchema
from schemas.codegen import REFUSED, GeneratedSource, RuleEmitter, value_rules
from schemas.model import Array, Enum, Fixed, Node, Primitive, Record, SchemaModel, Union

if TYPE_CHECKING:
    from schemas.validate import Validator

__all__ = [
    "Decoder",
    "PayloadDecoder",
    "Refused",
    "Unread",
    "compile_checked_decoder",
    "compile_decoder",
    "compile_reader_at",
    "for_schema",
    "try_compile",
    "with_fallback",
]

Decoder = Callable[[bytes], Any]
"""A reader of one datum from the whole of some bytes."""

_RawDecoder = Callable[[bytes, int], tuple[Any, int]]


class Unread(Exception):
    """Bytes a generated decoder does not read itself (the general reader decides)."""


class Refused(Unread):
    """A value a checked decoder's rule lines refuse (the general reader and validator decide)."""


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()  # fastavro's days-since-1970 shift
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WORD = 1 << 64
_INT_WORD = 1 << 32


def _varint(b: bytes, p: int) -> tuple[int, int]:
    """The raw (still zig-zagged) varint at ``p`` and the position after it. Raises
    :class:`Unread` beyond 64 bits, IndexError past the end. Two and three bytes (a year, a
    date, a country's index) are read without the loop."""
    c = b[p]
    v = c & 0x7F
    if c < 0x80:
        return v, p + 1
    c = b[p + 1]
    v |= (c & 0x7F) << 7
    if c < 0x80:
        return v, p + 2
    c = b[p + 2]
    v |= (c & 0x7F) << 14
    if c < 0x80:
        return v, p + 3
    p += 3
    shift = 21
    while True:
        c = b[p]
        p += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            break
        shift += 7
        if shift > 63:
            raise Unread
    if v >= _WORD:
        raise Unread
    return v, p


def _long_at(b: bytes, p: int) -> tuple[int, int]:
    """The Avro ``long`` at ``p`` and the position after it."""
    v, p = _varint(b, p)
    return (v >> 1) ^ -(v & 1), p


def _int_at(b: bytes, p: int) -> tuple[int, int]:
    """The Avro ``int`` at ``p``: anything beyond 32 bits is left to fastavro."""
    v, p = _varint(b, p)
    if v >= _INT_WORD:
        raise Unread
    return (v >> 1) ^ -(v & 1), p


def _length_at(b: bytes, p: int) -> tuple[int, int]:
    """A length (a non-negative ``long``) at ``p``; a negative one is left to fastavro."""
    v, p = _varint(b, p)
    if v & 1:
        raise Unread
    return v >> 1, p


def _symbol_at(b: bytes, p: int, by_raw: tuple[str | None, ...]) -> tuple[str, int]:
    """The enum symbol whose index is the varint at ``p``: ``by_raw`` holds symbol i at 2i and
    None at every odd place (a negative index); one beyond the symbols raises."""
    v, p = _varint(b, p)
    symbol = by_raw[v]
    if symbol is None:
        raise Unread
    return symbol, p


# One byte below 0x80 is a whole varint: these tables give what it stands for in one lookup,
# None for a byte that starts a longer varint (or, for a length, a negative value) — the
# generated code then reads it with the functions above.
_ONE_BYTE = tuple((i >> 1) ^ -(i & 1) for i in range(128)) + (None,) * 128
_ONE_LENGTH = tuple(None if i & 1 else i >> 1 for i in range(128)) + (None,) * 128


class _DecoderSource(GeneratedSource):
    """The text of one generated decoder and the constants it reads (by name). ``rules``: lines
    to run at each part once it is read (a checked decoder, see :func:`compile_checked_decoder`)."""

    def __init__(self, rules: RuleEmitter | None = None) -> None:
        super().__init__()
        self.rules = rules

    def number(self, depth: int, v: str, wide: str = "_long_at") -> None:
        """Lines reading one Avro ``long`` (``int`` with ``wide="_int_at"``, a length with
        ``"_length_at"``) at ``p`` into ``v``, and moving ``p`` past it."""
        table = "_LEN" if wide == "_length_at" else "_ONE"
        self.add(depth, f"{v} = {table}[b[p]]")
        self.add(depth, "p += 1")
        self.add(depth, f"if {v} is None:")
        # two bytes (a length of 64 to 8,191: a ciphertext's, a signature's) read here too
        self.add(depth + 1, f"{v} = b[p - 1]")
        self.add(depth + 1, f"if {v} > 127 and b[p] < 128:")
        self.add(depth + 2, f"{v} = {v} & 127 | b[p] << 7")
        self.add(depth + 2, "p += 1")
        if wide == "_length_at":  # a negative length: left to fastavro
            self.add(depth + 2, f"if {v} & 1:")
            self.add(depth + 3, "raise _Unread")
            self.add(depth + 2, f"{v} >>= 1")
        else:  # zig-zag (an int's two bytes are well within 32 bits)
            self.add(depth + 2, f"{v} = ({v} >> 1) ^ -({v} & 1)")
        self.add(depth + 1, "else:")
        self.add(depth + 2, f"{v}, p = {wide}(b, p - 1)")

    def span(self, depth: int, v: str) -> None:
        """Lines reading a length and setting ``e`` to the end of the span it starts at ``p``
        (raising for one past the end of the data)."""
        self.number(depth, v, "_length_at")
        self.add(depth, f"e = p + {v}")
        self.add(depth, "if e > n:")
        self.add(depth + 1, "raise _Unread")


def _emit_decode(src: _DecoderSource, node: Node, v: str, depth: int) -> None:
    """Lines reading the Avro binary at ``b[p:]`` into variable ``v`` (as fastavro's
    ``schemaless_reader`` reads it, without a reader schema) and moving ``p`` past it, or
    raising for bytes they do not read; in a checked decoder, then the rule lines of the part
    (a union's run at its branch, where the value is not None)."""
    checked = _emit_read(src, node, v, depth)
    if src.rules is not None and not checked and not isinstance(node, Union):
        src.rules(src, node, v, depth)


def _emit_read(src: _DecoderSource, node: Node, v: str, depth: int) -> bool:
    """:func:`_emit_decode`'s reading lines; True if they ran the part's rule lines too (a
    list's, where only a non-empty list needs them)."""
    if isinstance(node, Primitive):
        kind, logical = node.kind, node.logical_type
        if logical == "date" and kind == "int":
            src.number(depth, v, "_int_at")
            src.add(depth, f"{v} = _ordinal({v} + {_EPOCH_ORDINAL})")
            return False
        if logical == "timestamp-millis" and kind == "long":
            src.number(depth, v)
            src.add(depth, f"{v} = _EPOCH + _Delta(microseconds={v} * 1000)")
            return False
        if logical is not None:
            raise ValueError(f"{node.path}: logical type {logical} is not generated")
        if kind == "long":
            src.number(depth, v)
        elif kind == "int":
            src.number(depth, v, "_int_at")
        elif kind in ("string", "bytes"):
            src.span(depth, v)
            if kind == "string":
                src.add(depth, f"{v} = b[p:e].decode()")  # strict: not UTF-8 raises
            else:
                src.add(depth, f"{v} = b[p:e]")
            src.add(depth, "p = e")
        elif kind == "boolean":
            src.add(depth, f"{v} = _BOOL[b[p]]")  # IndexError for a byte other than 0 or 1
            src.add(depth, "p += 1")
        elif kind in ("float", "double"):
            size = 4 if kind == "float" else 8
            unpack = src.const(struct.Struct("<f" if kind == "float" else "<d").unpack_from)
            src.add(depth, f"{v} = {unpack}(b, p)[0]")  # struct.error past the end
            src.add(depth, f"p += {size}")
        elif kind == "null":
            src.add(depth, f"{v} = None")
        else:
            raise ValueError(f"{node.path}: unknown Avro type {kind}")
    elif isinstance(node, Enum):
        # the one-byte varint of index i is the byte 2i: a table by that byte, None elsewhere
        first: list[str | None] = [None] * 256
        for i, symbol in enumerate(node.symbols[:64]):
            first[2 * i] = symbol
        by_raw = tuple(s for symbol in node.symbols for s in (symbol, None))
        table, symbols = src.const(tuple(first)), src.const(by_raw)
        src.add(depth, f"{v} = {table}[b[p]]")
        src.add(depth, "p += 1")
        src.add(depth, f"if {v} is None:")
        src.add(depth + 1, f"{v}, p = _symbol_at(b, p - 1, {symbols})")
    elif isinstance(node, Fixed):
        if node.logical_type is not None:
            raise ValueError(f"{node.path}: logical type {node.logical_type} is not generated")
        src.add(depth, f"e = p + {node.size}")
        src.add(depth, "if e > n:")
        src.add(depth + 1, "raise _Unread")
        src.add(depth, f"{v} = b[p:e]")
        src.add(depth, "p = e")
    elif isinstance(node, Union):
        inner = node.inner  # ValueError for anything but [null, T]
        null_at = next(i for i, b in enumerate(node.branches) if b is not inner)
        src.add(depth, "p += 1")
        src.add(depth, f"if b[p - 1] == {2 * null_at}:")  # the one-byte varint of branch i: 2i
        src.add(depth + 1, f"{v} = None")
        src.add(depth, f"elif b[p - 1] == {2 * (1 - null_at)}:")
        _emit_decode(src, inner, v, depth + 1)
        src.add(depth, "else:")
        src.add(depth + 1, "raise _Unread")
    elif isinstance(node, Record):
        names = []
        for f in node.fields:
            x = src.var()
            _emit_decode(src, f.type, x, depth)
            names.append((f.name, x))
        src.add(depth, f"{v} = {{{', '.join(f'{name!r}: {x}' for name, x in names)}}}")
    elif isinstance(node, Array):
        # blocks until a zero count; a negative count is followed by the block's byte size
        count, item = src.var(), src.var()
        src.add(depth, "if b[p] == 0:")  # empty: the usual case for most lists
        src.add(depth + 1, "p += 1")
        src.add(depth + 1, f"{v} = []")
        src.add(depth, "else:")
        depth += 1
        src.add(depth, f"{v} = []")
        src.number(depth, count)
        src.add(depth, f"while {count}:")
        src.add(depth + 1, f"if {count} < 0:")
        src.add(depth + 2, f"{count} = -{count}")
        src.number(depth + 2, item)  # the block's size in bytes: not needed
        src.add(depth + 1, f"for _ in range({count}):")
        _emit_decode(src, node.items, item, depth + 2)
        src.add(depth + 2, f"{v}.append({item})")
        src.number(depth + 1, count)
        # most lists are empty: where the rule lines pass an empty list, only a non-empty one
        # (read here) runs them
        if src.rules is not None and _empty_passes(src.rules, node):
            src.rules(src, node, v, depth)
            return True
    else:
        raise ValueError(f"{node.path}: maps are not generated")
    return False


def _empty_passes(rules: RuleEmitter, node: Array) -> bool:
    """Whether the rule lines of the list ``node`` pass an empty list: run once, here, on one."""
    probe = _DecoderSource(rules)
    probe.add(0, "def probe(v):")
    rules(probe, node, "v", 1)
    probe.add(1, "return True")
    namespace: dict[str, Any] = {**probe.constants, REFUSED: Refused}
    try:
        exec(compile("\n".join(probe.lines), f"<probe {node.path}>", "exec"), namespace)
        return namespace["probe"]([]) is True
    except Exception:  # it refuses an empty list (or cannot say): run them on every list
        return False


def _compile_raw(model: SchemaModel, rules: RuleEmitter | None = None) -> _RawDecoder:
    src = _DecoderSource(rules)
    src.add(0, "def decode(b, p=0):")
    src.add(1, "n = len(b)")
    _emit_decode(src, model.root, "x0", 1)
    src.add(1, "return x0, p")
    namespace: dict[str, Any] = {
        **src.constants,
        "_ONE": _ONE_BYTE,
        "_LEN": _ONE_LENGTH,
        "_long_at": _long_at,
        "_int_at": _int_at,
        "_length_at": _length_at,
        "_symbol_at": _symbol_at,
        "_Unread": Unread,
        REFUSED: Refused,
        "_BOOL": (False, True),
        "_ordinal": date.fromordinal,
        "_EPOCH": _EPOCH,
        "_Delta": timedelta,
    }
    exec(compile("\n".join(src.lines), f"<decode {model.root.path}>", "exec"), namespace)
    decode: _RawDecoder = namespace["decode"]
    return decode


def compile_reader_at(model: SchemaModel) -> Callable[[bytes, int], tuple[Any, int]]:
    """The generated reader of ``model`` over part of some bytes: ``read(data, start)`` gives the
    datum that starts at ``start`` and where it ends (the rest of ``data`` is the caller's). It
    raises as :func:`compile_decoder`'s does for bytes it does not read itself (the caller
    leaves them to the general reader); ValueError here for a schema it cannot generate."""
    return _compile_raw(model)


def compile_decoder(model: SchemaModel) -> Decoder:
    """The schemaless Avro binary reader of ``model`` as one generated function (see the module
    note): the datum that fills the whole of the bytes given. It raises for any bytes it does not
    read itself (:class:`Unread` for bytes left over); ValueError here for a schema with a part
    it cannot generate (a map, a union other than ``[null, T]``, another logical type)."""
    return _whole(_compile_raw(model))


def _whole(raw: Callable[[bytes, int], tuple[Any, int]]) -> Decoder:
    """A decoder of whole payloads from a reader at an offset (:class:`Unread` for bytes left
    over)."""

    def decode(data: bytes) -> Any:
        datum, end = raw(data, 0)
        if end != len(data):
            raise Unread
        return datum

    return decode


def compile_checked_decoder(model: SchemaModel, rules: RuleEmitter) -> Decoder:
    """The reader of :func:`compile_decoder` that also checks a record's value rules as it reads
    it: ``rules`` emits, at each part of the schema, lines that raise (:class:`Refused`) for a
    value breaking a rule, run once the part is read — the trust's are
    :func:`schemas.codegen.value_rules` (decoded), the lines the producer's checked encoder runs.
    It raises for bytes it does not read itself and for a value a rule refuses: the caller then
    decodes and validates the usual way, so a datum it returns is the one the decoder gives and
    passed every rule the lines check. ValueError here for a schema it cannot generate."""
    return _whole(_compile_raw(model, rules))


def try_compile(model: SchemaModel) -> Decoder | None:
    """:func:`compile_decoder`, or None for a schema it cannot generate."""
    try:
        return compile_decoder(model)
    except ValueError:
        return None


def with_fallback(model: SchemaModel, general: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A decoder of ``model`` that reads what the generated one reads and leaves any other bytes
    to ``general`` (which reads them or refuses them, with its own error); ``general`` alone
    for a schema that cannot be generated."""
    try:
        raw = _compile_raw(model)
    except ValueError:
        return general

    def decode(data: bytes) -> Any:
        if type(data) is bytes:  # a memoryview or bytearray: the general reader takes it
            try:
                datum, end = raw(data, 0)
            except Exception:  # not bytes it reads itself: the general reader reads or refuses
                return general(data)
            if end == len(data):
                return datum
        return general(data)

    return decode


def for_schema(schema: WireSchema) -> Callable[[bytes], dict[str, Any]]:
    """:meth:`WireSchema.decode` (without a reader schema) through the generated reader: the
    same values, and for bytes it leaves to fastavro the same :class:`InvalidRecord`."""
    try:
        model = schema.model
    except ValueError:  # a schema the model does not describe: fastavro alone
        return schema.decode
    decode: Callable[[bytes], dict[str, Any]] = with_fallback(model, schema.decode)
    return decode


class PayloadDecoder:
    """:meth:`SchemaRegistry.decode_payload` through the generated readers: a payload written
    with the current schema of its kind is read by that schema's generated reader (the same
    values as fastavro's, fastavro itself for bytes it leaves); one written with any other
    schema goes to the registry (fastavro, resolving it into the current schema), as do its
    errors (``UnknownSchema``, ``InvalidRecord``)."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._current: dict[tuple[str, bytes], Callable[[bytes], dict[str, Any]]] = {}
        # per kind and current schema: the validator a checked reader was made for, and the reader
        self._checked: dict[tuple[str, bytes], tuple[Validator, _CheckedReader]] = {}

    def decode_payload(self, kind: str, fingerprint: bytes, payload: bytes) -> dict[str, Any]:
        """The payload of a message of ``kind`` written with the schema ``fingerprint``."""
        found = self._current.get((kind, fingerprint))
        if found is not None:
            return found(payload)
        try:
            reader = self._registry.for_kind(kind)
        except Exception:  # an unknown kind: the registry raises its own error
            return self._registry.decode_payload(kind, fingerprint, payload)
        if reader.fingerprint != fingerprint:
            return self._registry.decode_payload(kind, fingerprint, payload)
        found = self._current[(kind, fingerprint)] = for_schema(reader)
        return found(payload)

    def decode_checked(
        self, kind: str, fingerprint: bytes, payload: bytes, validator: Validator
    ) -> dict[str, Any]:
        """:meth:`decode_payload`, then ``validator.check`` (the trust's validator of the
        kind's current schema), in one pass where it can: a payload written with that schema is
        read by a checked decoder (:func:`compile_checked_decoder` with the trust's value rules,
        then the validator's rules across fields), and a datum with no problem is returned
        without a second walk over it. Anything else — a payload of another schema, bytes the
        generated reader leaves to fastavro, a value breaking a rule — is decoded and validated
        exactly as the two calls do, with their values and their errors (``InvalidRecord`` with
        every problem, ``UnknownSchema``)."""
        found = self._checked.get((kind, fingerprint))
        if found is not None and found[0] is validator:
            datum = found[1](payload)
            if datum is not None:
                return datum
        else:
            read = self._checked_reader(kind, fingerprint, validator)
            if read is not None:  # only the current schemas' (the fingerprint is the sender's)
                self._checked[(kind, fingerprint)] = (validator, read)
                datum = read(payload)
                if datum is not None:
                    return datum
        datum = self.decode_payload(kind, fingerprint, payload)
        validator.check(datum)
        return datum

    def _checked_reader(
        self, kind: str, fingerprint: bytes, validator: Validator
    ) -> _CheckedReader | None:
        """The one pass of :meth:`decode_checked` for payloads of ``kind`` written with
        ``fingerprint``: the datum of a payload with no problem, None for any other (which the
        caller decodes and validates the usual way). None where there is no such pass: another
        schema than the kind's current one, a validator other than the trust's of that schema,
        a schema the decoder cannot generate."""
        try:
            schema = self._registry.for_kind(kind)
        except Exception:  # an unknown kind: the usual path raises the registry's error
            return None
        if schema.fingerprint != fingerprint or validator.schema is not schema:
            return None
        if not validator.decoded:  # the producer's checks are not the trust's
            return None
        try:
            raw = _compile_raw(schema.model, value_rules(decoded=True))
        except ValueError:
            return None
        holds = validator.cross_field_rules_hold

        def read(payload: bytes) -> dict[str, Any] | None:
            if type(payload) is not bytes:  # a memoryview: the general reader takes it
                return None
            try:
                datum: dict[str, Any]
                datum, end = raw(payload, 0)
                if end == len(payload) and holds(datum):
                    return datum
            except Exception:  # bytes it does not read, a rule broken: the usual path decides
                pass
            return None

        return read


_CheckedReader = Callable[[bytes], "dict[str, Any] | None"]
