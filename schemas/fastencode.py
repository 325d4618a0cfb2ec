"""Avro binary writers generated from a schema, once: fastavro's bytes at a sixth of its cost.

fastavro's writer interprets the schema for every datum: a dispatch on the type's name per value,
a ``symbols.index`` per enum (250 countries), a trial validation of each branch per union. Every
record both ends handle is encoded at least once (the producer's payload and the old-schema bytes
its outbox knows a record by, each envelope's header; the trust's stored record), so that cost is
paid per event on both paths.

:func:`compile_encoder` turns a schema's model, once, into ONE straight-line function that writes
the same bytes: a table per enum, the union branch known from ``None`` or not, lengths and small
integers from a table. It writes only values whose type it checks exactly (a ``str`` for a
string or an enum's code, an ``int`` — not a ``bool`` — for an int or a ``timestamp-millis`` long, a ``date`` for
a date, a ``dict`` for a record, a ``list`` for an array); anything else (a missing field, a
subclass, an unknown code, an int beyond 32 bits, a long beyond 64, a datetime) raises inside it.
:func:`with_fallback` then leaves such a datum to the general writer (fastavro), which writes it
or refuses it exactly as before — so no value ever gets bytes, or an error, that fastavro would
not have given it. The tests check the bytes against fastavro's on values drawn from every
shipped schema, and on values it leaves out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from schemas.codegen import GeneratedSource, RuleEmitter
from schemas.model import Array, Enum, Fixed, Node, Primitive, Record, SchemaModel, Union

__all__ = [
    "CheckedEncoder",
    "Encoder",
    "RuleEmitter",
    "SplitEncoder",
    "Unfit",
    "avro_long",
    "compile_checked_encoder",
    "compile_encoder",
    "compile_split_encoder",
    "try_compile",
    "with_fallback",
]

Encoder = Callable[[Any], bytes]


class Unfit(Exception):
    """A value a generated encoder does not write itself (the general writer decides)."""


_LONG_RANGE = 1 << 63
_INT_RANGE = 1 << 31
_SMALL = 4096  # lengths, counts and non-negative integers below this come from a table


def _varint(n: int) -> bytes:
    """The varint of ``n`` >= 0, without a loop up to seven bytes: two and three (day counts,
    years, lengths) and six (a time in milliseconds, once per accepted message) are the
    commonest beyond the table; a loop costs several times this."""
    if n < 0x4000:
        if n < 0x80:
            return bytes((n,))
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 0x10000000:
        if n < 0x200000:
            return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21))
    if n < 0x800000000:
        return bytes(
            (n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80,
             n >> 28)
        )  # fmt: skip
    if n < 0x40000000000:
        return bytes(
            (n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80,
             n >> 28 & 0x7F | 0x80, n >> 35)
        )  # fmt: skip
    if n < 0x2000000000000:
        return bytes(
            (n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80,
             n >> 28 & 0x7F | 0x80, n >> 35 & 0x7F | 0x80, n >> 42)
        )  # fmt: skip
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _long(v: int) -> bytes:
    """Avro's zig-zag varint of a 64-bit integer."""
    if not -_LONG_RANGE <= v < _LONG_RANGE:
        raise Unfit
    return _varint((v << 1) ^ (v >> 63))


def _int(v: int) -> bytes:
    """:func:`_long` of a 32-bit integer: fastavro refuses a larger one in a union (where it
    checks the branch), so the generated encoder leaves any larger one to it. Three bytes (day
    counts of dates since 1992, years) without a further call."""
    if not -_INT_RANGE <= v < _INT_RANGE:
        raise Unfit
    n = (v << 1) ^ (v >> 63)
    if 0x4000 <= n < 0x200000:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    return _varint(n)


_NON_NEGATIVE = tuple(_long(i) for i in range(_SMALL))
SMALL_LONGS: tuple[bytes, ...] = _NON_NEGATIVE
"""The Avro bytes of 0 … 4095 (lengths, counts), by index: for writers that join encoded parts
themselves in a loop, where even :func:`avro_long`'s call counts."""
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def avro_long(v: int) -> bytes:
    """The Avro binary of an ``int`` or ``long`` (a count, an index, a length, a time) — for
    writers that join encoded parts themselves. Raises :class:`Unfit` beyond 64 bits."""
    if 0 <= v < _SMALL:
        return _NON_NEGATIVE[v]
    if not -_LONG_RANGE <= v < _LONG_RANGE:
        raise Unfit
    return _varint((v << 1) ^ (v >> 63))


class _EncoderSource(GeneratedSource):
    """The text of one generated encoder and the constants it reads (by name). ``rules``: lines
    to run at each part before it is written (a checked encoder); ``defaults``: whether to note,
    in ``_h``, that a field the old schema lacks is off its default (a checked split)."""

    def __init__(self, rules: RuleEmitter | None = None, defaults: bool = False) -> None:
        super().__init__()
        self.rules = rules
        self.defaults = defaults

    def length(self, depth: int, n: str) -> None:
        if not n.isidentifier():  # an expression (``len(x)``): worked out once
            x = self.var()
            self.add(depth, f"{x} = {n}")
            n = x
        self.add(depth, f"o += _N[{n}] if {n} < {_SMALL} else _long({n})")


def _emit_encode(
    src: _EncoderSource, node: Node, v: str, depth: int, old: Node | None = None
) -> None:
    """Lines appending the Avro binary of the value in variable ``v`` to ``o`` (as fastavro's
    ``schemaless_writer`` writes it), or raising for a value they do not handle. ``old``: the
    same part of an older schema (see :func:`compile_split_encoder`): the span of each field
    it lacks is appended to ``_s``."""
    if src.rules is not None and not isinstance(node, Union):  # a union's branch: checked there
        src.rules(src, node, v, depth)
    if isinstance(node, Primitive):
        kind, logical = node.kind, node.logical_type
        if logical == "date" and kind == "int":  # fastavro: days since 1970-01-01
            src.add(depth, f"if type({v}) is _Date:")
            src.add(depth + 1, f"{v} = {v}.toordinal() - {_EPOCH_ORDINAL}")
        elif logical == "timestamp-millis" and kind == "long":
            pass  # an int is written as it is (a datetime is not an int: left to fastavro)
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
        src.add(depth, f"if type({v}) is not str:")  # a StrEnum member: left to fastavro
        src.add(depth + 1, "raise _Unfit")
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
        _emit_encode(src, inner, v, depth + 1, old.inner if isinstance(old, Union) else None)
    elif isinstance(node, Record):
        src.add(depth, f"if type({v}) is not dict:")
        src.add(depth + 1, "raise _Unfit")
        theirs = {f.name: f.type for f in old.fields} if isinstance(old, Record) else None
        lacking = False  # in a run of fields the old schema lacks: one span for the run
        for f in node.fields:
            x = src.var()
            src.add(depth, f"{x} = {v}[{f.name!r}]")  # absent: KeyError (fastavro's default)
            if theirs is not None and f.name not in theirs:  # a field the old schema lacks
                if not lacking:
                    src.add(depth, "_s.append(len(o))")
                    lacking = True
                if src.defaults:  # as LosslessPlan.holds: off its default, by type and value
                    src.add(depth, f"if {_off_default(src, x, f.default)}:")
                    src.add(depth + 1, "_h = False")
                _emit_encode(src, f.type, x, depth)
            else:
                if lacking:
                    src.add(depth, "_s.append(len(o))")
                    lacking = False
                _emit_encode(src, f.type, x, depth, theirs[f.name] if theirs else None)
        if lacking:
            src.add(depth, "_s.append(len(o))")
    elif isinstance(node, Array):  # one block: its count, the items, then 0 (as fastavro)
        src.add(depth, f"if type({v}) is not list:")
        src.add(depth + 1, "raise _Unfit")
        src.add(depth, f"if {v}:")
        src.length(depth + 1, f"len({v})")
        x = src.var()
        src.add(depth + 1, f"for {x} in {v}:")
        _emit_encode(src, node.items, x, depth + 2, old.items if isinstance(old, Array) else None)
        src.add(depth, "o += b'\\x00'")
    else:
        raise ValueError(f"{node.path}: maps are not generated")


def compile_encoder(model: SchemaModel) -> Encoder:
    """The schemaless Avro binary writer of ``model`` as one generated function (see the module
    note). It raises for any value it does not write itself; ValueError here for a schema with a
    part it cannot generate (a map, a union other than ``[null, T]``, another logical type)."""
    src = _EncoderSource()
    src.add(0, "def encode(x0):")
    src.add(1, "o = bytearray()")
    _emit_encode(src, model.root, "x0", 1)
    src.add(1, "return bytes(o)")
    encode: Encoder = _define(src, model)
    return encode


SplitEncoder = Callable[[Any], tuple[bytes, bytes]]


def compile_split_encoder(model: SchemaModel, old: SchemaModel) -> SplitEncoder:
    """A writer of ``model`` that also gives, in the same pass, the bytes of the record under
    ``old`` — an older schema that is ``model`` less some fields (the same fields in the same
    order otherwise, the same enum symbols, union branches and sizes; ValueError if not).

    A record is its fields' bytes one after the other, so under ``old`` it is its bytes under
    ``model`` with the spans of the fields ``old`` lacks cut out. That is what ``old``'s own
    encoder writes when the record holds nothing else ``old`` could not keep — which the
    caller decides (a lossless plan: every such field at its default). A producer needs both:
    the payload, and the old schema's bytes its outbox knows the record by."""
    _same_but_added(old.root, model.root)
    src = _EncoderSource()
    src.add(0, "def encode(x0):")
    src.add(1, "o = bytearray()")
    src.add(1, "_s = [0]")
    _emit_encode(src, model.root, "x0", 1, old.root)
    src.add(1, "_s.append(len(o))")
    src.add(1, "return o, _s")
    spans_of: Callable[[Any], tuple[bytearray, list[int]]] = _define(src, model)

    def encode(datum: Any) -> tuple[bytes, bytes]:
        out, spans = spans_of(datum)  # 0, then where each cut starts and ends, then the end
        whole = bytes(out)
        if len(spans) == 2:
            return whole, whole
        return whole, b"".join([whole[a:b] for a, b in zip(spans[::2], spans[1::2], strict=True)])

    return encode


CheckedEncoder = Callable[[Any], tuple[bytes, bytes, bool]]


def compile_checked_encoder(
    model: SchemaModel, old: SchemaModel | None, rules: RuleEmitter
) -> CheckedEncoder:
    """One generated pass that checks a record's value rules as it writes it: ``rules`` emits,
    at each part of the schema, the lines that ``raise _Unfit`` for a value breaking a rule (a
    validator's), before the part's own lines. It gives what :func:`compile_split_encoder` gives
    (``old`` None: the payload twice), and whether every field ``old`` lacks holds its schema
    default (the same test as :meth:`schemas.lossless.LosslessPlan.holds`: the same type and an
    equal value, ``[]`` for a list). It raises for any datum a rule refuses or it does not write
    itself: the caller then validates and encodes the usual way, so a datum it returns for got
    the bytes the encoder gives it and passed every rule the emitted lines check."""
    if old is not None:
        _same_but_added(old.root, model.root)
        for default in _lacking_defaults(old.root, model.root):
            if not (default is None or type(default) in (bool, int, float, str) or default == []):
                raise ValueError("a default other than null, a number, text or []")
    src = _EncoderSource(rules, defaults=True)
    src.add(0, "def encode(x0):")
    src.add(1, "o = bytearray()")
    src.add(1, "_s = [0]")
    src.add(1, "_h = True")
    _emit_encode(src, model.root, "x0", 1, None if old is None else old.root)
    src.add(1, "o = bytes(o)")  # then the spans of the fields ``old`` lacks cut out
    src.add(1, "if len(_s) == 1:")
    src.add(2, "return o, o, _h")
    src.add(1, "_s.append(len(o))")
    src.add(1, "return o, b''.join([o[_s[i]:_s[i + 1]] for i in range(0, len(_s), 2)]), _h")
    encode: CheckedEncoder = _define(src, model)
    return encode


def _off_default(src: _EncoderSource, v: str, default: Any) -> str:
    """The condition that the value in ``v`` is not ``default`` (lossless ``_same``'s negation)."""
    if isinstance(default, list):
        return f"type({v}) is not list or {v}"  # only [] is a list default (the plan's rule)
    if default is None:
        return f"{v} is not None"
    return f"type({v}) is not {src.const(type(default))} or {v} != {src.const(default)}"


def _lacking_defaults(old: Node, cur: Node) -> list[Any]:
    """The defaults of the fields ``cur`` has and ``old`` lacks (the two as a split pairs them)."""
    if isinstance(cur, Record) and isinstance(old, Record):
        theirs = {f.name: f.type for f in old.fields}
        out: list[Any] = []
        for f in cur.fields:
            if f.name in theirs:
                out += _lacking_defaults(theirs[f.name], f.type)
            else:
                out.append(f.default if f.has_default else _NO_DEFAULT)
        return out
    if isinstance(cur, Array) and isinstance(old, Array):
        return _lacking_defaults(old.items, cur.items)
    if isinstance(cur, Union) and isinstance(old, Union):
        return _lacking_defaults(old.inner, cur.inner)
    return []


_NO_DEFAULT = object()


def _same_but_added(old: Node, cur: Node) -> None:
    """ValueError unless ``old`` is ``cur`` less some record fields (see
    :func:`compile_split_encoder`)."""
    if isinstance(cur, Record) and isinstance(old, Record):
        theirs = [f.name for f in old.fields]
        if [f.name for f in cur.fields if f.name in set(theirs)] != theirs:
            raise ValueError(f"{cur.path}: the old record has fields in another order or more")
        own = {f.name: f.type for f in cur.fields}
        for f in old.fields:
            _same_but_added(f.type, own[f.name])
    elif isinstance(cur, Array) and isinstance(old, Array):
        _same_but_added(old.items, cur.items)
    elif isinstance(cur, Union) and isinstance(old, Union):
        if [b is cur.inner for b in cur.branches] != [b is old.inner for b in old.branches]:
            raise ValueError(f"{cur.path}: the unions differ")
        _same_but_added(old.inner, cur.inner)
    elif isinstance(cur, Enum) and isinstance(old, Enum):
        if cur.symbols != old.symbols:
            raise ValueError(f"{cur.path}: the enums differ")
    elif isinstance(cur, Fixed) and isinstance(old, Fixed):
        if (cur.size, cur.logical_type) != (old.size, old.logical_type):
            raise ValueError(f"{cur.path}: the fixed types differ")
    elif isinstance(cur, Primitive) and isinstance(old, Primitive):
        if (cur.kind, cur.logical_type) != (old.kind, old.logical_type):
            raise ValueError(f"{cur.path}: the types differ")
    else:
        raise ValueError(f"{cur.path}: the types differ")


def _define(src: _EncoderSource, model: SchemaModel) -> Any:
    namespace: dict[str, Any] = {
        **src.constants,
        "_N": _NON_NEGATIVE,
        "_long": _long,
        "_int": _int,
        "_Unfit": Unfit,
        "_Date": date,
    }
    exec(compile("\n".join(src.lines), f"<encode {model.root.path}>", "exec"), namespace)
    return namespace["encode"]


def try_compile(model: SchemaModel) -> Encoder | None:
    """:func:`compile_encoder`, or None for a schema it cannot generate."""
    try:
        return compile_encoder(model)
    except ValueError:
        return None


def with_fallback(
    model: SchemaModel, general: Callable[[Mapping[str, Any]], bytes]
) -> Callable[[Mapping[str, Any]], bytes]:
    """An encoder of ``model`` that writes what the generated one writes and leaves any other
    datum to ``general`` (which writes it or refuses it, with its own error); ``general`` alone
    for a schema that cannot be generated."""
    generated = try_compile(model)
    if generated is None:
        return general

    def encode(datum: Mapping[str, Any]) -> bytes:
        try:
            return generated(datum)
        except Exception:  # not one it writes itself: the general writer writes it, or refuses it
            return general(datum)

    return encode
