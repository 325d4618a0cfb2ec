"""The text of a function generated from a schema, the constants it reads by name, and the lines
that check the value rules of :mod:`schemas.rules` inside it.

The fast validator (:mod:`schemas.validate`), the fast encoder (:mod:`schemas.fastencode`) and the
fast decoder (:mod:`schemas.fastdecode`) each turn a schema's model, once, into one straight-line
Python function; all write its lines and constants through this. The producer's checked encoder
and the trust's checked decoder run the rules as they write or read each value: both take the
rule lines from :func:`value_rules`, so the two ends cannot check different things in one pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from schemas.model import Array, Node, Primitive
from schemas.rules import (
    DATE_CLOCK_SKEW,
    EARLIEST_DATE,
    RANGES,
    SOURCE_ID_PATHS,
    control_character_search,
    int_range,
    is_source_id,
    max_chars,
    max_items,
)

__all__ = ["REFUSED", "GeneratedSource", "RuleEmitter", "latest_date", "renew", "value_rules"]


class GeneratedSource:
    """Lines of generated code (indented by depth) and the constants they name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._vars = 0

    def const(self, value: Any) -> str:
        """A name the generated code reads ``value`` by."""
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def var(self) -> str:
        """A fresh local variable name."""
        self._vars += 1
        return f"x{self._vars}"

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


#: Lines a checked pass runs at a part of the schema (see :func:`value_rules`): given the source,
#: the part, the variable holding its value and the indent, they raise :data:`REFUSED` for a
#: value that breaks a rule.
RuleEmitter = Callable[[GeneratedSource, Node, str, int], None]

REFUSED = "_Unfit"
"""The name the rule lines raise: each generated function binds it to its own exception (the
encoder's ``Unfit``, the decoder's ``Unread``), which sends the datum down the general path."""


def latest_date() -> dt.date:
    """The latest date a record may hold, checked on this machine (see rules.DATE_CLOCK_SKEW)."""
    return dt.date.today() + DATE_CLOCK_SKEW


def renew(latest: list[dt.date]) -> dt.date:
    """The clock read again into ``latest`` (dates only move forward: a date on or before the
    bound last read is never in the future, so checks read the clock only for a date past it)."""
    latest[0] = latest_date()
    return latest[0]


def value_rules(decoded: bool) -> RuleEmitter:
    """The value rules of :mod:`schemas.rules` as lines for a checked pass: at each part, the
    conditions the validator's walk (``schemas.validate``) tests there, less the exact types the
    pass makes sure of itself. Each part's lines run with its value in its Python form (a
    ``date`` object for a date); a union's are run at its branch, where the value is not None.

    ``decoded=False``: the producer's checked encoder, whose lines run before a part is written —
    a date must be a ``date`` object there (the encoder takes day counts too), and every whole
    number is held to its range (the Avro bounds where :data:`RANGES` names none, as the
    producer's walk does); the encoder refuses a value of another type itself.

    ``decoded=True``: the trust's checked decoder, whose lines run once a part is read — the
    decoder made every value of its type and within Avro's bounds, so only what the trust's
    walk (decoded mode) checks is emitted: the ranges :data:`RANGES` names, dates, text and
    list lengths. (A ``timestamp-millis`` with a range, which the walk refuses as not a whole
    number, makes the line raise ``TypeError``: that datum too takes the general path.)"""
    latest = [latest_date()]  # this pass's bound: the clock read again only past it

    def rules(src: GeneratedSource, node: Node, v: str, depth: int) -> None:
        if isinstance(node, Primitive):
            t = node.kind
            if node.logical_type == "date":
                last = src.const(latest)
                future = f"({v} > {last}[0] and {v} > {src.const(renew)}({last}))"
                wrong = f"{v} < {src.const(EARLIEST_DATE)} or {future}"
                if not decoded:  # a date object (the encoder takes day counts too)
                    wrong = f"type({v}) is not {src.const(dt.date)} or {wrong}"
            elif t in ("int", "long"):
                if decoded and node.path not in RANGES:
                    return  # the decoder's own bounds are the walk's
                lo, hi = int_range(node.path, t)
                wrong = f"not {lo} <= {v} <= {hi}"
            elif t == "string" and node.path in SOURCE_ID_PATHS:
                wrong = f"not {src.const(is_source_id)}({v})"
            elif t == "string":  # printable text has no control character: no search then
                search = src.const(control_character_search(node.path))
                control = f"(not {v}.isprintable() and {search}({v}) is not None)"
                wrong = f"len({v}) > {max_chars(node.path)} or {control}"
            else:
                return
        elif isinstance(node, Array):
            wrong = f"len({v}) > {max_items(node.path)}"
        else:
            return
        src.add(depth, f"if {wrong}:")
        src.add(depth + 1, f"raise {REFUSED}")

    return rules
