"""Field paths over a record schema, and pruning a record to the fields an agreement shares.

A path names a field the way errors do: ``$.victims[].sex`` (``[]`` for every element of a list).
An allow-list holds paths or prefixes of paths: ``$.event`` shares the whole event. A field not
allowed is reset to its schema default ("Unknown", ``[]`` or ``null``) — minimisation. Both ends
apply it: the producer before sealing, the trust again at ingest under the agreement in force.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.codec import WireSchema


def field_paths(schema: WireSchema) -> list[str]:
    """Every field path of a record schema, parents before children."""
    out: list[str] = []
    named: dict[str, Any] = {}

    def walk(s: Any, path: str) -> None:
        if isinstance(s, str):
            s = named.get(s, s)
        if isinstance(s, list):
            for b in s:
                walk(b, path)
            return
        if not isinstance(s, dict):
            return
        t = s["type"]
        if isinstance(t, (dict, list)):
            walk(t, path)
            return
        if t in ("record", "enum", "fixed"):
            named[s["name"]] = s
        if t == "record":
            for f in s["fields"]:
                p = f"{path}.{f['name']}"
                out.append(p)
                walk(f["type"], p)
        elif t == "array":
            walk(s["items"], f"{path}[]")

    walk(schema.source, "$")
    return out


def _allowed(path: str, allowed: frozenset[str]) -> bool:
    # a path is shared if it or one of its ancestors is listed
    p = path
    while True:
        if p in allowed:
            return True
        cut = max(p.rfind("."), p.rfind("[]"))
        if cut <= 1:
            return False
        p = p[:cut]


class Pruner:
    """Resets every field outside an allow-list to its default, compiled once per schema."""

    def __init__(self, schema: WireSchema, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)
        unknown = sorted(a for a in self.allowed if a not in set(field_paths(schema)) and a != "$")
        if unknown:
            raise ValueError("unknown field paths in allow-list: " + ", ".join(unknown))
        self._plan = self._compile(schema.source, "$", {})

    def _compile(self, s: Any, path: str, named: dict[str, Any]) -> Any:
        """Returns a nested plan: for records, [(name, keep | None, default, subplan)]."""
        if isinstance(s, str):
            s = named.get(s, s)
        if isinstance(s, list):
            subs = [self._compile(b, path, named) for b in s if b != "null"]
            return subs[0] if subs else None
        if not isinstance(s, dict):
            return None
        t = s["type"]
        if isinstance(t, (dict, list)):
            return self._compile(t, path, named)
        if t in ("record", "enum", "fixed"):
            named[s["name"]] = s
        if t == "record":
            plan = []
            for f in s["fields"]:
                p = f"{path}.{f['name']}"
                # ids and other required fields carry structure, not content: kept whenever
                # their parent is
                keep = _allowed(p, self.allowed)
                sub = self._compile(f["type"], p, named)
                plan.append((f["name"], keep, "default" not in f, f.get("default"), sub))
            return ("record", plan)
        if t == "array":
            return ("array", self._compile(s["items"], f"{path}[]", named))
        return None

    def prune(self, datum: dict[str, Any]) -> dict[str, Any]:
        if "$" in self.allowed:
            return datum
        out = _apply(self._plan, datum)
        assert isinstance(out, dict)
        return out


def _apply(plan: Any, value: Any) -> Any:
    if plan is None or value is None:
        return value
    kind, sub = plan
    if kind == "array":
        return [_apply(sub, v) for v in value]
    out: dict[str, Any] = {}
    for name, keep, required, default, subplan in sub:
        if required and not keep:
            out[name] = value[name]
        elif not keep:
            # a descendant may still be allowed (e.g. $.victims[].sex without $.victims)
            if (
                subplan is not None
                and name in value
                and value[name] is not None
                and _any_kept(subplan)
            ):
                out[name] = _apply(subplan, value[name])
            else:
                out[name] = list(default) if isinstance(default, list) else default
        elif name in value:
            out[name] = value[name]
        else:
            out[name] = list(default) if isinstance(default, list) else default
    return out


def _any_kept(plan: Any) -> bool:
    if plan is None:
        return False
    kind, sub = plan
    if kind == "array":
        return _any_kept(sub)
    return any(keep or _any_kept(subplan) for _, keep, _, _, subplan in sub)
