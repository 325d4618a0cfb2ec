"""Validate a record against its Avro schema and the ICS-TIP rules, reporting every problem by path.

fastavro's own validator quotes the offending datum in its messages; a datum here may be a name or
a date of birth, so this module compiles each schema once into small checking closures that report
``Problem(path, code, expected)`` and never the value. Both ends use it: the producer before it
seals anything, the trust after it decrypts.

Nearly every record validated is valid, so a validator first runs the same rules compiled into
one straight-line function that only answers "no problem at all", and walks the closures (which
name every problem) only for a record it cannot clear.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from functools import cache, cached_property
from typing import Any

from schemas.codec import SchemaRegistry, WireSchema
from schemas.codegen import GeneratedSource, RuleEmitter, value_rules
from schemas.codegen import latest_date as _latest_date
from schemas.codegen import renew as _renew
from schemas.errors import InvalidRecord, Problem, ReasonCode
from schemas.model import Array, Enum, Fixed, Map, Node, Primitive, Record, SchemaModel, Union
from schemas.rules import (
    DATE_ORDER,
    EARLIEST_DATE,
    RANGES,
    SOURCE_ID_PATHS,
    SOURCE_ID_PATTERN,
    age_conflict,
    control_character_search,
    date_order_text,
    date_range_text,
    int_range,
    is_source_id,
    max_chars,
    max_items,
)

Check = Callable[[Any, str, list[Problem]], None]

_NO_CONTROL = "text without control characters"


def _noop(v: Any, p: str, out: list[Problem]) -> None:
    return None


def _compile(node: Node, decoded: bool = False) -> Check:
    """``decoded``: the datum came out of the Avro decoder, so types, enums and required fields
    are already guaranteed; compile only the value rules of :mod:`schemas.rules` (ranges, text
    and list limits, control characters), which Avro cannot express."""
    path = node.path
    if isinstance(node, Primitive):
        return _primitive(node.kind, node.logical_type, path, decoded)
    if isinstance(node, Union):
        return _union(node, decoded)
    if isinstance(node, Record):
        fields = [(f.name, _compile(f.type, decoded), f.has_default, f.path) for f in node.fields]
        if decoded:
            fields = [f for f in fields if f[1] is not _noop]
            if not fields:
                return _noop

        def check_record(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, Mapping):
                out.append(Problem(p, ReasonCode.INVALID_RECORD, "an object"))
                return
            # outside lists a record is checked at its own path (the very string object): its
            # fields' paths are then known, and not formatted again for every datum
            static = p is path
            for name, check, has_default, field_path in fields:
                if name in v:
                    check(v[name], field_path if static else f"{p}.{name}", out)
                elif not has_default:
                    out.append(
                        Problem(
                            field_path if static else f"{p}.{name}",
                            ReasonCode.MISSING_VALUE,
                            "a value (required)",
                        )
                    )

        return check_record
    if isinstance(node, Enum):
        if decoded:
            return _noop
        symbols = frozenset(node.symbols)
        listed = ", ".join(node.symbols[:12]) + (" …" if len(node.symbols) > 12 else "")
        expected = f"one of {node.name}: {listed}"

        def check_enum(v: Any, p: str, out: list[Problem]) -> None:
            if v not in symbols:
                out.append(Problem(p, ReasonCode.UNKNOWN_CODE, expected))

        return check_enum
    if isinstance(node, Array):
        item = _compile(node.items, decoded)
        most = max_items(path)
        too_many = f"at most {most} items"

        def check_array(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, (list, tuple)):
                out.append(Problem(p, ReasonCode.INVALID_RECORD, "a list"))
                return
            if len(v) > most:
                out.append(Problem(p, ReasonCode.TOO_LARGE, too_many))
                return
            if item is _noop:
                return
            for i, x in enumerate(v):
                item(x, f"{p}[{i}]", out)

        return check_array
    if isinstance(node, Fixed):
        if decoded:
            return _noop
        size = node.size

        def check_fixed(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, bytes) or len(v) != size:
                out.append(Problem(p, ReasonCode.BAD_FORMAT, f"{size} bytes"))

        return check_fixed
    raise ValueError(f"{path}: unsupported Avro type map")


def _primitive(t: str, logical: str | None, path: str, decoded: bool = False) -> Check:
    rng = RANGES.get(path)
    if decoded and t != "string" and not (t in ("int", "long") and rng) and logical != "date":
        return _noop
    if logical == "date":
        return _date(decoded)
    if t in ("int", "long"):
        lo, hi = int_range(path, t)
        expected = f"a whole number from {lo} to {hi}"

        def check_int(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, int) or isinstance(v, bool):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "a whole number"))
            elif not lo <= v <= hi:
                out.append(Problem(p, ReasonCode.OUT_OF_RANGE, expected))

        return check_int
    if t == "string" and path in SOURCE_ID_PATHS:
        a_source_id = f"a source id ({SOURCE_ID_PATTERN})"

        def check_source_id(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, str):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "text"))
            elif not is_source_id(v):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, a_source_id))

        return check_source_id
    if t == "string":
        longest = max_chars(path)
        too_long = f"text of at most {longest} characters"
        control = control_character_search(path)  # rules.has_control_characters at this path
        if decoded:  # the decoder made it text

            def check_decoded_str(v: Any, p: str, out: list[Problem]) -> None:
                if len(v) > longest:
                    out.append(Problem(p, ReasonCode.TOO_LARGE, too_long))
                elif control(v) is not None:
                    out.append(Problem(p, ReasonCode.BAD_FORMAT, _NO_CONTROL))

            return check_decoded_str

        def check_str(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, str):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "text"))
            elif len(v) > longest:
                out.append(Problem(p, ReasonCode.TOO_LARGE, too_long))
            elif control(v) is not None:
                out.append(Problem(p, ReasonCode.BAD_FORMAT, _NO_CONTROL))

        return check_str
    if t == "bytes":

        def check_bytes(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, bytes):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "bytes"))

        return check_bytes
    if t == "boolean":

        def check_bool(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, bool):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "true or false"))

        return check_bool
    if t in ("float", "double"):

        def check_float(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "a number"))

        return check_float
    if t == "null":

        def check_null(v: Any, p: str, out: list[Problem]) -> None:
            if v is not None:
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "no value"))

        return check_null
    raise ValueError(f"unsupported Avro type {t}")


def _date(decoded: bool, optional: bool = False) -> Check:
    """A date field; ``optional``: a ``[null, date]`` union, checked in one call (dates are on
    the trust's hot path)."""
    out_of_range = date_range_text()
    # dates only move forward: a date on or before the bound last read is never in the future,
    # so the clock is read again only for a date past it
    latest = [_latest_date()]
    if decoded:  # the decoder made it a date (or None where the schema allows it)

        def check_decoded_date(v: Any, p: str, out: list[Problem]) -> None:
            if v is not None and (v < EARLIEST_DATE or (v > latest[0] and v > _renew(latest))):
                out.append(Problem(p, ReasonCode.OUT_OF_RANGE, out_of_range))

        return check_decoded_date

    def check_date(v: Any, p: str, out: list[Problem]) -> None:
        if v is None and optional:
            return
        if not isinstance(v, dt.date) or isinstance(v, dt.datetime):
            out.append(Problem(p, ReasonCode.BAD_FORMAT, "a date"))
        elif v < EARLIEST_DATE or (v > latest[0] and v > _renew(latest)):
            out.append(Problem(p, ReasonCode.OUT_OF_RANGE, out_of_range))

    return check_date


def _union(node: Union, decoded: bool = False) -> Check:
    nullable = node.nullable
    if nullable and isinstance(node.inner, Primitive) and node.inner.logical_type == "date":
        return _date(decoded, optional=True)
    inner = _compile(node.inner, decoded)
    if decoded and inner is _noop:
        return _noop

    def check_optional(v: Any, p: str, out: list[Problem]) -> None:
        if v is None:
            if not nullable:
                out.append(Problem(p, ReasonCode.MISSING_VALUE, "a value"))
            return
        inner(v, p, out)

    return check_optional


# one rules.DATE_ORDER pair in a schema: the steps to their record, the two field names, the
# second's path and what it must be
_DateOrder = tuple[tuple[str, ...], str, str, str, str]


def _date_order(model: SchemaModel) -> tuple[_DateOrder, ...]:
    """The :data:`rules.DATE_ORDER` pairs ``model`` holds (pairs inside lists: none declared,
    not supported)."""
    pairs = []
    for first, second in DATE_ORDER:
        if not (model.has_field(first) and model.has_field(second)):
            continue
        parent, _, a = first.rpartition(".")
        parent_b, _, b = second.rpartition(".")
        if parent != parent_b or "[]" in parent:
            raise ValueError(f"date order {first}, {second}: one record outside lists only")
        pairs.append((tuple(parent.split(".")[1:]), a, b, second, date_order_text(first)))
    return tuple(pairs)


def _record_rules(
    datum: Mapping[str, Any], order: tuple[_DateOrder, ...], out: list[Problem]
) -> None:
    """Cross-field ICS-TIP rules of a case record."""
    for steps, first, second, path, expected in order:
        part: Any = datum
        for step in steps:
            part = part.get(step) if isinstance(part, Mapping) else None
        if isinstance(part, Mapping):
            start, end = part.get(first), part.get(second)
            if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
                out.append(Problem(path, ReasonCode.OUT_OF_RANGE, expected))
    seen: set[str] = set()
    for i, victim in enumerate(datum.get("victims") or ()):
        if isinstance(victim, Mapping):
            _victim_age_rules(victim, i, out)
        vid = victim.get("victim_id") if isinstance(victim, Mapping) else None
        if isinstance(vid, str):
            if vid in seen:
                out.append(
                    Problem(
                        f"$.victims[{i}].victim_id",
                        ReasonCode.INVALID_RECORD,
                        "ids unique within the case",
                    )
                )
            seen.add(vid)


def _victim_age_rules(victim: Mapping[str, Any], i: int, out: list[Problem]) -> None:
    """A victim's exact age, age range and majority status agree (:func:`rules.age_conflict`):
    a record where they contradict each other is refused (``invalid_record``), never repaired."""
    found = age_conflict(
        victim.get("age_at_identification"),
        victim.get("age_range_lower"),
        victim.get("age_range_upper"),
        victim.get("majority_status"),
    )
    if found is not None:
        path, expected = found
        out.append(
            Problem(path.replace("$.victims[]", f"$.victims[{i}]", 1), _AGE_CONFLICT, expected)
        )


_AGE_CONFLICT = ReasonCode.INVALID_RECORD


# --- the fast path -----------------------------------------------------------------------------
#
# Nearly every record either end validates is valid, and the walk above then spends a closure
# call on every field, list and item to find nothing. ``_clean_check`` compiles the same rules of
# a schema (in either mode), once, into ONE straight-line function that only answers "no problem
# at all?" — no Problem made, no path formatted, no call per field. It is sound, not complete: it
# says True only where the walk finds nothing (it reads the same tables and makes the same
# comparisons, with exact types where the walk accepts subclasses too); anything else — a
# problem, a value of an unexpected type, a missing required field (it raises then) — sends the
# datum through the walk, which reports exactly what it always has.


class _FastSource(GeneratedSource):
    """The text of one generated function and the constants it reads (by name)."""

    def __init__(self, decoded: bool) -> None:
        super().__init__()
        self.decoded = decoded

    def fail_if(self, depth: int, condition: str) -> None:
        self.add(depth, f"if {condition}:")
        self.add(depth + 1, "return False")


def _has_rules(node: Node, decoded: bool) -> bool:
    """Whether :func:`_compile` checks anything at ``node`` (does not make it _noop)."""
    if isinstance(node, Map):
        raise ValueError(f"{node.path}: unsupported Avro type map")
    if not decoded:
        return True  # types and codes, everywhere
    if isinstance(node, Primitive):
        t, rng = node.kind, RANGES.get(node.path)
        return (
            t == "string"
            or (t in ("int", "long") and rng is not None)
            or node.logical_type == "date"
        )
    if isinstance(node, Union):
        inner = node.inner
        if node.nullable and isinstance(inner, Primitive) and inner.logical_type == "date":
            return True
        return _has_rules(inner, decoded)
    if isinstance(node, Record):
        return any(_has_rules(f.type, decoded) for f in node.fields)
    return isinstance(node, Array)  # its length; enums and fixed: the decoder checked them


def _emit_date(src: _FastSource, v: str, depth: int, optional: bool) -> None:
    # as _date: before 1900 or past the latest date (the clock read again only past the bound
    # last read); the producer's also wants a date (not a datetime), the trust's has one
    future = f"({v} > _latest[0] and {v} > _renew(_latest))"
    wrong = f"{v} < _EARLIEST or {future}"
    if not src.decoded:
        wrong = f"type({v}) is not _Date or {wrong}"
    src.fail_if(depth, f"{v} is not None and ({wrong})" if optional else wrong)


def _emit_primitive(src: _FastSource, node: Primitive, v: str, depth: int) -> None:
    t, exact = node.kind, not src.decoded
    if node.logical_type == "date":
        _emit_date(src, v, depth, optional=src.decoded)  # decoded: None passes, as in _date
    elif t in ("int", "long"):
        lo, hi = int_range(node.path, t)
        src.fail_if(depth, f"type({v}) is not int or not {lo} <= {v} <= {hi}")
    elif t == "string" and node.path in SOURCE_ID_PATHS:
        src.fail_if(depth, f"not _is_source_id({v})")
    elif t == "string":  # printable text has no control character: no search then
        search = src.const(control_character_search(node.path))
        control = f"(not {v}.isprintable() and {search}({v}) is not None)"
        rules = f"len({v}) > {max_chars(node.path)} or {control}"
        src.fail_if(depth, f"type({v}) is not str or {rules}" if exact else rules)
    elif t == "bytes":
        src.fail_if(depth, f"type({v}) is not bytes")
    elif t == "boolean":
        src.fail_if(depth, f"type({v}) is not bool")
    elif t in ("float", "double"):
        src.fail_if(depth, f"type({v}) is not float and type({v}) is not int")
    elif t == "null":
        src.fail_if(depth, f"{v} is not None")
    else:
        raise ValueError(f"unsupported Avro type {t}")


def _emit_clean(src: _FastSource, node: Node, v: str, depth: int) -> None:
    """Lines that ``return False`` unless the value in variable ``v`` passes every rule the
    walk checks at ``node`` (the same comparisons as the closures :func:`_compile` makes)."""
    decoded = src.decoded
    if isinstance(node, Primitive):
        _emit_primitive(src, node, v, depth)
    elif isinstance(node, Union):
        inner = node.inner
        if node.nullable and isinstance(inner, Primitive) and inner.logical_type == "date":
            _emit_date(src, v, depth, optional=True)
        elif node.nullable:
            src.add(depth, f"if {v} is not None:")
            _emit_clean(src, inner, v, depth + 1)
        else:
            src.fail_if(depth, f"{v} is None")
            _emit_clean(src, inner, v, depth)
    elif isinstance(node, Record):
        src.fail_if(depth, f"type({v}) is not dict")
        for f in node.fields:
            if not _has_rules(f.type, decoded):
                continue
            x = src.var()
            if decoded or not f.has_default:
                src.add(depth, f"{x} = {v}[{f.name!r}]")  # absent: KeyError, the walk decides
                _emit_clean(src, f.type, x, depth)
            else:  # the producer's may leave out a field with a default
                src.add(depth, f"{x} = {v}.get({f.name!r}, _ABSENT)")
                src.add(depth, f"if {x} is not _ABSENT:")
                _emit_clean(src, f.type, x, depth + 1)
    elif isinstance(node, Array):
        src.fail_if(depth, f"type({v}) is not list or len({v}) > {max_items(node.path)}")
        if _has_rules(node.items, decoded):
            x = src.var()
            src.add(depth, f"for {x} in {v}:")
            _emit_clean(src, node.items, x, depth + 1)
    elif isinstance(node, Enum):
        if not decoded:
            src.fail_if(depth, f"{v} not in {src.const(frozenset(node.symbols))}")
    elif isinstance(node, Fixed):
        if not decoded:
            src.fail_if(depth, f"type({v}) is not bytes or len({v}) != {node.size}")
    else:
        raise ValueError(f"{node.path}: unsupported Avro type map")


def _clean_check(model: SchemaModel, decoded: bool) -> Callable[[Any], bool]:
    """The rules of ``model`` as one generated function (see the section note): True only if
    the walk would find no problem; False, or an exception, otherwise."""
    src = _FastSource(decoded)
    src.add(0, "def clean(x0):")
    _emit_clean(src, model.root, "x0", 1)
    src.add(1, "return True")
    namespace: dict[str, Any] = {
        **src.constants,
        "_ABSENT": object(),
        "_Date": dt.date,
        "_EARLIEST": EARLIEST_DATE,
        "_latest": [_latest_date()],
        "_renew": _renew,
        "_is_source_id": is_source_id,
    }
    exec(compile("\n".join(src.lines), f"<clean {model.root.path}>", "exec"), namespace)
    clean: Callable[[Any], bool] = namespace["clean"]
    return clean


def _record_rules_hold(datum: dict[str, Any], order: tuple[_DateOrder, ...]) -> bool:
    """Whether :func:`_record_rules` finds nothing, for a datum the generated check passed (so
    its records are dicts and its lists lists, and victim ids are text): the same rules without
    a Problem made or an abstract ``Mapping`` check per step."""
    for steps, first, second, _, _ in order:
        part: Any = datum
        for step in steps:
            part = part.get(step) if type(part) is dict else None
        if type(part) is dict:
            start, end = part.get(first), part.get(second)
            if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
                return False
        elif part is not None:
            return False  # not what the check passes: let the walk look
    victims = datum.get("victims") or ()
    if len(victims) > 1 and len({v["victim_id"] for v in victims}) != len(victims):
        return False
    for v in victims:
        age, lower, upper = (
            v.get("age_at_identification"),
            v.get("age_range_lower"),
            v.get("age_range_upper"),
        )
        if age is None and lower is None and upper is None:
            continue  # no age, no range: a majority status alone contradicts nothing
        if age_conflict(age, lower, upper, v.get("majority_status")) is not None:
            return False
    return True


def _producer_rules() -> RuleEmitter:
    """The producer's rules for a checked encoder (``SchemaRegistry.checked_encoder``): at each
    part, the clean check's conditions (``_emit_clean``, producer's mode) less the exact types the
    encoder checks there itself — a ``str`` for a string or an enum code (an unknown code is not
    in its table), an ``int`` for a whole number, a ``float`` for a number, a ``dict`` for a
    record with every field present, a ``list`` for a list, ``bytes`` of the size for a fixed,
    ``None`` or the branch for an optional value. Each line runs before the part is written,
    and a value of another type that gets through it is refused by the encoder's own check.
    The lines are :func:`schemas.codegen.value_rules`', shared with the trust's checked decoder."""
    return value_rules(decoded=False)


class Validator:
    """A schema compiled into checks; call :meth:`problems` or :meth:`check`.

    ``decoded=True`` is for data that came out of the Avro decoder (the trust): Avro already
    guarantees types and codes, so only the ICS-TIP value rules are checked. Either way, first
    by one generated function that can only say "no problem" (``_clean_check``), then, for a
    datum it cannot clear, by the walk that names every problem.
    """

    def __init__(self, schema: WireSchema, *, decoded: bool = False) -> None:
        self.schema = schema
        self._decoded = decoded
        self._check = _compile(schema.model.root, decoded)
        self._root = schema.model.root.path  # see check_record: the path object itself
        self._is_case = schema.name == "case_record"
        self._date_order = _date_order(schema.model)
        self._content_encoder: tuple[SchemaRegistry, Any] | None = None

    @cached_property
    def _clean(self) -> Callable[[Any], bool]:
        """The fast path's generated check (``_clean_check``), compiled when first needed (a
        producer whose records all take ``content_encoder``'s pass never needs it)."""
        return _clean_check(self.schema.model, self._decoded)

    def _is_clean(self, datum: Any) -> bool:
        """The fast path: whether ``datum`` certainly has no problem (see ``_clean_check``)."""
        assert self._clean is not None
        try:
            return self._clean(datum) and (
                not self._is_case or _record_rules_hold(datum, self._date_order)
            )
        except Exception:  # a shape the decoder never makes: the walk says what it is
            return False

    @property
    def decoded(self) -> bool:
        """Whether this is the trust's validator (of decoded data: value rules only)."""
        return self._decoded

    def cross_field_rules_hold(self, datum: dict[str, Any]) -> bool:
        """Whether the rules across fields (a case record's date order, unique victim ids, ages)
        find nothing in a decoded datum whose value rules have all passed; True for a schema
        without such rules. For the trust's one pass (``PayloadDecoder.decode_checked``): False,
        or an exception, sends the datum to :meth:`problems`."""
        return not self._is_case or _record_rules_hold(datum, self._date_order)

    def problems(self, datum: Any) -> list[Problem]:
        """Every problem of ``datum``, in the order the walk meets them (none: valid)."""
        if self._clean is not None and self._is_clean(datum):
            return []
        return self._walk(datum)

    def _walk(self, datum: Any) -> list[Problem]:
        """The walk of every compiled check, then the cross-field rules (the fast path's
        reference: what :meth:`problems` reports whenever it cannot say "none" at once)."""
        out: list[Problem] = []
        self._check(datum, self._root, out)
        if self._is_case and not out and isinstance(datum, Mapping):
            _record_rules(datum, self._date_order, out)
        return out

    def content_encoder(
        self, registry: SchemaRegistry
    ) -> Callable[[Any], tuple[bytes, bytes] | None] | None:
        """For the producer: a datum's payload and content bytes
        (``registry.encode_with_content``) when it certainly has no problem, checked in the
        encoder's own pass over the record (one walk instead of two: the rules of the clean
        check at each value as it is written, then the cross-field rules); None for any other
        datum, which :meth:`problems` then judges and the registry encodes as before. None
        where the schema has no such pass (see ``SchemaRegistry.checked_encoder``); only for a
        producer's validator (``decoded=False``) of the registry's current schema."""
        if self._content_encoder is None or self._content_encoder[0] is not registry:
            self._content_encoder = (registry, self._make_content_encoder(registry))
        found: Callable[[Any], tuple[bytes, bytes] | None] | None = self._content_encoder[1]
        return found

    def _make_content_encoder(
        self, registry: SchemaRegistry
    ) -> Callable[[Any], tuple[bytes, bytes] | None] | None:
        schema = self.schema
        if self._decoded or schema.name not in registry.names:
            return None
        if registry.current(schema.name) is not schema:
            return None
        encode = registry.checked_encoder(schema.name, _producer_rules())
        if encode is None:
            return None
        is_case, order = self._is_case, self._date_order

        def encode_valid(datum: Any) -> tuple[bytes, bytes] | None:
            try:
                encoded = encode(datum)
                if is_case and not _record_rules_hold(datum, order):
                    return None
            except Exception:  # a rule refused it, or a value the pass does not write
                return None
            return encoded

        return encode_valid

    def check(self, datum: Any) -> None:
        """Raise :class:`InvalidRecord` listing every problem (paths only, no values)."""
        found = self.problems(datum)
        if found:
            raise InvalidRecord(
                f"{self.schema.name} has {len(found)} problem(s): "
                + "; ".join(str(p) for p in found[:5]),
                problems=tuple(found),
            )


@cache
def validator_for(schema: WireSchema, *, decoded: bool = False) -> Validator:
    return Validator(schema, decoded=decoded)
