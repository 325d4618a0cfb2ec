"""Validate a record against its Avro schema and the ICS-TIP rules, reporting every problem by path.

fastavro's own validator quotes the offending datum in its messages; a datum here may be a name or
a date of birth, so this module compiles each schema once into small checking closures that report
``Problem(path, code, expected)`` and never the value. Both ends use it: the producer before it
seals anything, the trust after it decrypts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from schemas.codec import WireSchema
from schemas.errors import InvalidRecord, Problem, ReasonCode
from schemas.rules import RANGES, has_control_characters, max_chars, max_items

Check = Callable[[Any, str, list[Problem]], None]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _noop(v: Any, p: str, out: list[Problem]) -> None:
    return None


def _compile(schema: Any, path: str, named: dict[str, Any], decoded: bool = False) -> Check:
    """``decoded``: the datum came out of the Avro decoder, so types, enums and required fields
    are already guaranteed; compile only the value rules of :mod:`schemas.rules` (ranges, text
    and list limits, control characters), which Avro cannot express."""
    if isinstance(schema, str):
        if schema in named:
            return _compile(named[schema], path, named, decoded)
        return _primitive(schema, None, path, decoded)
    if isinstance(schema, list):
        return _union(schema, path, named, decoded)
    t = schema["type"]
    if isinstance(t, (dict, list)):
        return _compile(t, path, named, decoded)
    if t == "record":
        named[schema["name"]] = schema
        fields = [
            (f["name"], _compile(f["type"], f"{path}.{f['name']}", named, decoded), "default" in f)
            for f in schema["fields"]
        ]
        if decoded:
            fields = [f for f in fields if f[1] is not _noop]
            if not fields:
                return _noop

        def check_record(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, Mapping):
                out.append(Problem(p, ReasonCode.INVALID_RECORD, "an object"))
                return
            for name, check, has_default in fields:
                if name in v:
                    check(v[name], f"{p}.{name}", out)
                elif not has_default:
                    out.append(
                        Problem(f"{p}.{name}", ReasonCode.MISSING_VALUE, "a value (required)")
                    )

        return check_record
    if t == "enum":
        named[schema["name"]] = schema
        if decoded:
            return _noop
        symbols = frozenset(schema["symbols"])
        listed = ", ".join(schema["symbols"][:12]) + (" …" if len(schema["symbols"]) > 12 else "")

        def check_enum(v: Any, p: str, out: list[Problem]) -> None:
            if v not in symbols:
                out.append(
                    Problem(p, ReasonCode.UNKNOWN_CODE, f"one of {schema['name']}: {listed}")
                )

        return check_enum
    if t == "array":
        item = _compile(schema["items"], f"{path}[]", named, decoded)
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
    if t == "fixed":
        named[schema["name"]] = schema
        if decoded:
            return _noop
        size = schema["size"]

        def check_fixed(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, bytes) or len(v) != size:
                out.append(Problem(p, ReasonCode.BAD_FORMAT, f"{size} bytes"))

        return check_fixed
    return _primitive(t, schema.get("logicalType"), path, decoded)


def _primitive(t: str, logical: str | None, path: str, decoded: bool = False) -> Check:
    rng = RANGES.get(path)
    if decoded and t != "string" and not (t in ("int", "long") and rng):
        return _noop
    if logical == "date":

        def check_date(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, dt.date) or isinstance(v, dt.datetime):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "a date"))

        return check_date
    if t in ("int", "long"):
        lo, hi = rng if rng else (_INT_MIN, _INT_MAX) if t == "int" else (-(2**63), 2**63 - 1)
        expected = f"a whole number from {lo} to {hi}"

        def check_int(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, int) or isinstance(v, bool):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "a whole number"))
            elif not lo <= v <= hi:
                out.append(Problem(p, ReasonCode.OUT_OF_RANGE, expected))

        return check_int
    if t == "string":
        longest = max_chars(path)
        too_long = f"text of at most {longest} characters"

        def check_str(v: Any, p: str, out: list[Problem]) -> None:
            if not isinstance(v, str):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "text"))
            elif len(v) > longest:
                out.append(Problem(p, ReasonCode.TOO_LARGE, too_long))
            elif has_control_characters(v, path):
                out.append(Problem(p, ReasonCode.BAD_FORMAT, "text without control characters"))

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


def _union(branches: list[Any], path: str, named: dict[str, Any], decoded: bool = False) -> Check:
    nullable = "null" in branches
    others = [b for b in branches if b != "null"]
    if len(others) != 1:
        raise ValueError(f"{path}: only [null, T] unions are supported in ICS-TIP schemas")
    inner = _compile(others[0], path, named, decoded)
    if decoded and inner is _noop:
        return _noop

    def check_optional(v: Any, p: str, out: list[Problem]) -> None:
        if v is None:
            if not nullable:
                out.append(Problem(p, ReasonCode.MISSING_VALUE, "a value"))
            return
        inner(v, p, out)

    return check_optional


def _record_rules(datum: Mapping[str, Any], out: list[Problem]) -> None:
    """Cross-field ICS-TIP rules of a case record."""
    event = datum.get("event")
    if isinstance(event, Mapping):
        start, end = event.get("start_date"), event.get("end_date")
        if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
            out.append(
                Problem(
                    "$.event.end_date", ReasonCode.OUT_OF_RANGE, "a date on or after start_date"
                )
            )
    seen: set[str] = set()
    for i, victim in enumerate(datum.get("victims") or ()):
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


class Validator:
    """A schema compiled into checks; call :meth:`problems` or :meth:`check`.

    ``decoded=True`` is for data that came out of the Avro decoder (the trust): Avro already
    guarantees types and codes, so only the ICS-TIP value rules are checked.
    """

    def __init__(self, schema: WireSchema, *, decoded: bool = False) -> None:
        self.schema = schema
        self._check = _compile(schema.source, "$", {}, decoded)
        self._is_case = schema.name == "case_record"

    def problems(self, datum: Any) -> list[Problem]:
        out: list[Problem] = []
        self._check(datum, "$", out)
        if self._is_case and not out and isinstance(datum, Mapping):
            _record_rules(datum, out)
        return out

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
