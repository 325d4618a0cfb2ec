"""Field paths over a record schema, and pruning a record to the fields an agreement shares.

A path names a field the way errors do: ``$.victims[].sex`` (``[]`` for every element of a list,
``{}`` for every value of a map); the paths and the schema's shape come from :mod:`schemas.model`.
An allow-list holds paths or prefixes of paths: ``$.event`` shares the whole event. A field not
allowed is reset to its schema default ("Unknown", ``[]`` or ``null``) — minimisation. Both ends
apply it: the producer before sealing, the trust again at ingest under the agreement in force.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.codec import WireSchema
from schemas.model import Array, Map, Node, Record, Union


def field_paths(schema: WireSchema) -> list[str]:
    """Every field path of a record schema, parents before children."""
    return schema.model.paths()


def _allowed(path: str, allowed: frozenset[str]) -> bool:
    # a path is shared if it or one of its ancestors is listed
    p = path
    while True:
        if p in allowed:
            return True
        cut = max(p.rfind("."), p.rfind("[]"), p.rfind("{}"))
        if cut <= 1:
            return False
        p = p[:cut]


class Pruner:
    """Resets every field outside an allow-list to its default, compiled once per schema."""

    def __init__(self, schema: WireSchema, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)
        model = schema.model
        unknown = sorted(a for a in self.allowed if not model.has_field(a) and a != "$")
        if unknown:
            raise ValueError("unknown field paths in allow-list: " + ", ".join(unknown))
        self._plan = self._compile(model.root)

    def _compile(self, node: Node) -> Any:
        """Returns a nested plan: for records, (_RECORD, [(name, keep, required, default,
        subplan)]); for lists and maps, (_LIST or _MAP, subplan); None for values."""
        if isinstance(node, Union):
            subs = [self._compile(b) for b in node.others]
            return subs[0] if subs else None
        if isinstance(node, Record):
            plan = []
            for f in node.fields:
                keep = _allowed(f.path, self.allowed)
                sub = self._compile(f.type)
                plan.append((f.name, keep, not f.has_default, f.default, sub))
            return (_RECORD, plan)
        if isinstance(node, Array):
            return (_LIST, self._compile(node.items))
        if isinstance(node, Map):
            return (_MAP, self._compile(node.values))
        return None

    def prune(self, datum: dict[str, Any]) -> dict[str, Any]:
        if "$" in self.allowed:
            return datum
        out = _apply(self._plan, datum)
        assert isinstance(out, dict)
        return out


_RECORD, _LIST, _MAP = range(3)


def _apply(plan: Any, value: Any) -> Any:
    if plan is None or value is None:
        return value
    kind, sub = plan
    if kind == _LIST:
        return [_apply(sub, v) for v in value]
    if kind == _MAP:
        return {k: _apply(sub, v) for k, v in value.items()}
    out: dict[str, Any] = {}
    for name, keep, required, default, subplan in sub:
        if keep:
            if name in value:
                out[name] = value[name]
            else:
                out[name] = list(default) if isinstance(default, list) else default
        elif required:
            # a required value (an id) carries structure, not content: kept whenever its parent
            # is; a required record (the event) is pruned like any other
            out[name] = value[name] if subplan is None else _apply(subplan, value[name])
        elif (
            subplan is not None and name in value and value[name] is not None and _any_kept(subplan)
        ):
            # a descendant may still be allowed (e.g. $.victims[].sex without $.victims)
            out[name] = _apply(subplan, value[name])
        else:
            out[name] = list(default) if isinstance(default, list) else default
    return out


def _any_kept(plan: Any) -> bool:
    if plan is None:
        return False
    kind, sub = plan
    if kind != _RECORD:
        return _any_kept(sub)
    return any(keep or _any_kept(subplan) for _, keep, _, _, subplan in sub)
