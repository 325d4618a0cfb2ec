"""Schema evolution rules: what a new version of a wire schema may change.

Sources upgrade at their own pace, so the trust must read every released writer schema with the
current one, and a consumer of a release must not lose a field it relied on. Rules (per record):

- adding a field is compatible only with a default (an old writer never sends it);
- removing a field is not (readers that relied on it break), nor is renaming one;
- changing a field's type is not, except widening int → long and adding enum symbols;
- removing an enum symbol is not (old data may hold it);
- renaming a record, enum or fixed is not (Avro resolves named types by name), nor is changing a
  logical type (a date read as a plain number).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schemas.codec import AVRO_DIR, RELEASED_DIR
from schemas.errors import Problem, ReasonCode
from schemas.model import (
    Array,
    Enum,
    Fixed,
    Map,
    Node,
    Primitive,
    Record,
    SchemaModel,
    Union,
    parse,
)


def _kind(node: Node) -> str:
    if isinstance(node, Primitive):
        return node.kind
    return {
        Union: "union",
        Record: "record",
        Enum: "enum",
        Array: "array",
        Map: "map",
        Fixed: "fixed",
    }[type(node)]


def _problem(path: str, expected: str) -> Problem:
    return Problem(path, ReasonCode.INCOMPATIBLE_SCHEMA, expected)


def _compare(old: Node, new: Node, path: str, out: list[Problem]) -> None:
    ko, kn = _kind(old), _kind(new)
    if ko != kn and not (ko == "int" and kn == "long"):
        out.append(_problem(path, f"type {ko} kept (found {kn})"))
        return
    # Avro resolves named types by their unqualified name: a renamed record, enum or fixed
    # cannot be read by the new schema at all
    if (
        isinstance(old, Record | Enum | Fixed)
        and isinstance(new, Record | Enum | Fixed)
        and old.name != new.name
    ):
        out.append(_problem(path, f"type name {old.name} kept (found {new.name})"))
        return
    if isinstance(old, Union) and isinstance(new, Union):
        if len(old.branches) != len(new.branches):
            out.append(_problem(path, "the same union branches"))
            return
        for i, (a, b) in enumerate(zip(old.branches, new.branches, strict=True)):
            _compare(a, b, f"{path}<{i}>", out)
    elif isinstance(old, Record) and isinstance(new, Record):
        new_fields = {f.name: f for f in new.fields}
        old_names = {f.name for f in old.fields}
        for f in old.fields:
            g = new_fields.get(f.name)
            if g is None:
                out.append(_problem(f"{path}.{f.name}", "field kept (removed)"))
            else:
                _compare(f.type, g.type, f"{path}.{f.name}", out)
        for name, g in new_fields.items():
            if name not in old_names and not g.has_default:
                out.append(_problem(f"{path}.{name}", "a default for an added field"))
    elif isinstance(old, Enum) and isinstance(new, Enum):
        missing = [s for s in old.symbols if s not in new.symbols]
        if missing:
            out.append(_problem(path, "every symbol kept (removed: " + ", ".join(missing) + ")"))
    elif isinstance(old, Array) and isinstance(new, Array):
        _compare(old.items, new.items, f"{path}[]", out)
    elif isinstance(old, Map) and isinstance(new, Map):
        _compare(old.values, new.values, f"{path}{{}}", out)
    elif isinstance(old, Fixed) and isinstance(new, Fixed):
        if old.size != new.size:
            out.append(_problem(path, f"fixed size {old.size} kept"))
        elif old.logical_type != new.logical_type:
            out.append(_problem(path, "the same logical type"))
    elif (
        isinstance(old, Primitive)
        and isinstance(new, Primitive)
        and old.logical_type != new.logical_type
    ):
        out.append(_problem(path, "the same logical type"))


def compare_models(old: SchemaModel, new: SchemaModel) -> list[Problem]:
    """Every incompatibility between two versions of one schema (empty: compatible)."""
    out: list[Problem] = []
    _compare(old.root, new.root, "$", out)
    return out


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Problem]:
    """Every incompatibility between two versions of one schema, as Avro JSON."""
    return compare_models(parse(old), parse(new))


def latest_release(released_dir: Path = RELEASED_DIR) -> Path | None:
    versions = [p for p in released_dir.iterdir() if p.is_dir()] if released_dir.is_dir() else []
    if not versions:
        return None

    def key(p: Path) -> tuple[int, ...]:
        return tuple(int(x) if x.isdigit() else 0 for x in p.name.split("."))

    return max(versions, key=key)


def check_tree(avro_dir: Path = AVRO_DIR, released: Path | None = None) -> dict[str, list[Problem]]:
    """Compare every schema in the tree with the previous release's; name → problems.

    A schema that the release had and the tree lacks is itself a problem; a new schema is fine.
    """
    base = released or latest_release()
    result: dict[str, list[Problem]] = {}
    if base is None:
        return result
    for old_path in sorted(base.glob("*.avsc")):
        new_path = avro_dir / old_path.name
        if not new_path.exists():
            result[old_path.stem] = [
                Problem("$", ReasonCode.INCOMPATIBLE_SCHEMA, "schema kept (removed)")
            ]
            continue
        old = json.loads(old_path.read_text(encoding="utf-8"))
        new = json.loads(new_path.read_text(encoding="utf-8"))
        result[old_path.stem] = compare(old, new)
    return result
