"""Whether a record decoded under the current schema fits an older one without loss, worked out
from the two schemas once instead of by a round trip per record.

A producer's outbox knows a record by its bytes under the earliest released schema that holds
it without loss (``SchemaRegistry.content_bytes``), so that a field added later, left at its
default, does not make every unchanged record look new. The plain test is a round trip:
encode under the old schema, decode back into the current one with Avro's schema resolution,
compare — and resolution is the costliest Avro call a publish makes (about 130 µs a record).

When the two schemas differ only by fields one of them lacks (the same records, arrays, optional
unions, primitives and enums elsewhere), the round trip gives the record back exactly when every
field the old schema lacks holds its default (resolution fills in exactly those defaults, and
every other field goes through the old schema unchanged), and ``WireSchema.encode`` under the
old schema still refuses what it cannot hold (a code it does not list, a value out of range).
:func:`plan_for` finds those fields; :meth:`LosslessPlan.holds` checks them. A pair of schemas
that differ in any other way gets no plan (None), and the caller keeps the round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from schemas.model import Array, Enum, Fixed, Node, Primitive, Record, SchemaModel, Union

#: a step from a record to one of its fields (a name), or into every item of a list (None)
Step = str | None

_SIMPLE_DEFAULTS = (type(None), bool, int, float, str)


class _NoPlan(Exception):
    """The schemas differ in a way :func:`plan_for` does not reason about."""


@dataclass(frozen=True)
class AddedField:
    """A field of the current schema that the old one lacks: where it is and its default."""

    steps: tuple[Step, ...]  # from the root to the record holding it
    name: str
    default: Any


@dataclass(frozen=True)
class LosslessPlan:
    """The fields an old schema lacks (see the module note)."""

    added: tuple[AddedField, ...]

    def holds(self, datum: dict[str, Any]) -> bool:
        """True when every added field of ``datum`` (decoded under the current schema) holds
        its default: the old schema then keeps the whole record."""
        for f in self.added:
            for parent in _walk(datum, f.steps):
                if f.name in parent and not _same(parent[f.name], f.default):
                    return False
        return True


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, list):
        return isinstance(value, list) and not value  # only [] is supported as a list default
    return type(value) is type(default) and bool(value == default)


def _walk(node: Any, steps: tuple[Step, ...]) -> Iterator[dict[str, Any]]:
    """Every record reached from ``node`` along ``steps`` (absent or null parts lead nowhere)."""
    if not steps:
        if isinstance(node, dict):
            yield node
        return
    step, rest = steps[0], steps[1:]
    if step is None:
        if isinstance(node, list):
            for item in node:
                yield from _walk(item, rest)
    elif isinstance(node, dict):
        child = node.get(step)
        if child is not None:
            yield from _walk(child, rest)


def plan_for(old: SchemaModel, current: SchemaModel) -> LosslessPlan | None:
    """The plan for records of ``current`` against ``old``; None when the schemas differ in any
    way other than fields one of them lacks."""
    added: list[AddedField] = []
    try:
        _pair(old.root, current.root, (), added)
    except _NoPlan:
        return None
    return LosslessPlan(tuple(added))


def _pair(old: Node, cur: Node, steps: tuple[Step, ...], added: list[AddedField]) -> None:
    if isinstance(cur, Record) and isinstance(old, Record):
        if old.fullname != cur.fullname:
            raise _NoPlan
        old_fields = {f.name: f for f in old.fields}
        for f in cur.fields:
            before = old_fields.pop(f.name, None)
            if before is None:
                if not f.has_default:
                    raise _NoPlan  # resolution would fail: not a plain addition
                default = f.default
                if not (isinstance(default, _SIMPLE_DEFAULTS) or default == []):
                    raise _NoPlan
                added.append(AddedField(steps, f.name, default))
            else:
                _pair(before.type, f.type, (*steps, f.name), added)
        if any(not f.has_default for f in old_fields.values()):
            raise _NoPlan  # a field only the old schema has must take its default when written
    elif isinstance(cur, Array) and isinstance(old, Array):
        _pair(old.items, cur.items, (*steps, None), added)
    elif isinstance(cur, Union) and isinstance(old, Union):
        if cur.nullable != old.nullable or len(cur.others) != 1 or len(old.others) != 1:
            raise _NoPlan
        _pair(old.inner, cur.inner, steps, added)
    elif isinstance(cur, Primitive) and isinstance(old, Primitive):
        if (cur.kind, cur.logical_type) != (old.kind, old.logical_type):
            raise _NoPlan
    elif isinstance(cur, Enum) and isinstance(old, Enum):
        # a symbol the old enum lacks makes the old encoder refuse the record (no loss); one it
        # has is read back as itself (an enum's default serves only symbols the reader lacks,
        # and the current enum holds every symbol a decoded record can have)
        if cur.fullname != old.fullname:
            raise _NoPlan
    elif isinstance(cur, Fixed) and isinstance(old, Fixed):
        if (cur.size, cur.logical_type, cur.fullname) != (old.size, old.logical_type, old.fullname):
            raise _NoPlan
    else:
        raise _NoPlan
