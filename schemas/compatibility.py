"""Schema evolution rules: what a new version of a wire schema may change.

Sources upgrade at their own pace, so the trust must read every released writer schema with the
current one, and a consumer of a release must not lose a field it relied on. Rules (per record):

- adding a field is compatible only with a default (an old writer never sends it);
- removing a field is not (readers that relied on it break), nor is renaming one;
- changing a field's type is not, except widening int → long and adding enum symbols;
- removing an enum symbol is not (old data may hold it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.codec import AVRO_DIR, RELEASED_DIR, collect_named
from schemas.errors import Problem, ReasonCode


def _named(schema: Any, named: dict[str, Any]) -> Any:
    if isinstance(schema, str) and schema in named:
        return named[schema]
    if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
        return _named(schema["type"], named)
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    t = schema["type"]
    return t if isinstance(t, str) else _kind(t)


def _compare(
    old: Any, new: Any, path: str, on: dict[str, Any], nn: dict[str, Any], out: list[Problem]
) -> None:
    old, new = _named(old, on), _named(new, nn)
    ko, kn = _kind(old), _kind(new)
    if ko != kn:
        if not (ko == "int" and kn == "long"):
            out.append(
                Problem(path, ReasonCode.INCOMPATIBLE_SCHEMA, f"type {ko} kept (found {kn})")
            )
        return
    if ko == "union":
        if len(old) != len(new):
            out.append(Problem(path, ReasonCode.INCOMPATIBLE_SCHEMA, "the same union branches"))
            return
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _compare(a, b, f"{path}<{i}>", on, nn, out)
    elif ko == "record":
        new_fields = {f["name"]: f for f in new["fields"]}
        old_names = {f["name"] for f in old["fields"]}
        for f in old["fields"]:
            g = new_fields.get(f["name"])
            if g is None:
                out.append(
                    Problem(
                        f"{path}.{f['name']}",
                        ReasonCode.INCOMPATIBLE_SCHEMA,
                        "field kept (removed)",
                    )
                )
            else:
                _compare(f["type"], g["type"], f"{path}.{f['name']}", on, nn, out)
        for name, g in new_fields.items():
            if name not in old_names and "default" not in g:
                out.append(
                    Problem(
                        f"{path}.{name}",
                        ReasonCode.INCOMPATIBLE_SCHEMA,
                        "a default for an added field",
                    )
                )
    elif ko == "enum":
        missing = [s for s in old["symbols"] if s not in new["symbols"]]
        if missing:
            out.append(
                Problem(
                    path,
                    ReasonCode.INCOMPATIBLE_SCHEMA,
                    "every symbol kept (removed: " + ", ".join(missing) + ")",
                )
            )
    elif ko == "array":
        _compare(old["items"], new["items"], f"{path}[]", on, nn, out)
    elif ko == "map":
        _compare(old["values"], new["values"], f"{path}{{}}", on, nn, out)
    elif ko == "fixed" and old["size"] != new["size"]:
        out.append(Problem(path, ReasonCode.INCOMPATIBLE_SCHEMA, f"fixed size {old['size']} kept"))
    elif (
        isinstance(old, dict)
        and isinstance(new, dict)
        and old.get("logicalType") != new.get("logicalType")
    ):
        out.append(Problem(path, ReasonCode.INCOMPATIBLE_SCHEMA, "the same logical type"))


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Problem]:
    """Every incompatibility between two versions of one schema (empty: compatible)."""
    on: dict[str, Any] = {}
    nn: dict[str, Any] = {}
    collect_named(old, on)
    collect_named(new, nn)
    out: list[Problem] = []
    _compare(old, new, "$", on, nn, out)
    return out


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
