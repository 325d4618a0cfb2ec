"""One parsed model of an Avro schema: the only module that reads a schema's Avro JSON.

Every part of the project that needs to know a schema's shape — the validator, the pruner, the
mapper, the compatibility check, the release stage's code lists — reads it here, from a small
typed tree parsed once per schema, instead of walking the JSON itself (walkers that each walk the
JSON drift apart: one resolves a named type another does not, one keys a rule by field name,
another by path).

Every node knows its **path**, the way problems, allow-lists and rules name it: ``$`` is the
root, ``.name`` a field, ``[]`` every element of a list, ``{}`` every value of a map. A union's
branches share the union's path. Named types (records, enums, fixed) are resolved when parsed:
every use of ``Country`` is an :class:`Enum` node at its own path with the same symbols.

``WireSchema.model`` (see :mod:`schemas.codec`) is the cached model of a shipped schema;
:func:`parse` builds one from Avro JSON (the compatibility check's released snapshots).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "PRIMITIVES",
    "Array",
    "Enum",
    "Field",
    "Fixed",
    "Map",
    "Node",
    "Primitive",
    "Record",
    "SchemaModel",
    "Union",
    "element",
    "parse",
    "strip",
]

#: The Avro primitive type names.
PRIMITIVES: frozenset[str] = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)


@dataclass(frozen=True, slots=True, eq=False)
class Primitive:
    """``null``, ``boolean``, ``int``, ``long``, ``float``, ``double``, ``bytes`` or ``string``."""

    path: str
    kind: str
    logical_type: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Enum:
    path: str
    name: str  # unqualified, as errors and the mapper name it (``Gender``)
    fullname: str
    symbols: tuple[str, ...]
    default: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Fixed:
    path: str
    name: str
    fullname: str
    size: int
    logical_type: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Array:
    path: str
    items: Node


@dataclass(frozen=True, slots=True, eq=False)
class Map:
    path: str
    values: Node


@dataclass(frozen=True, slots=True, eq=False)
class Union:
    """A union; its branches share its path. ICS-TIP uses only ``[null, T]`` (an optional T)."""

    path: str
    branches: tuple[Node, ...]

    @property
    def nullable(self) -> bool:
        return any(isinstance(b, Primitive) and b.kind == "null" for b in self.branches)

    @property
    def others(self) -> tuple[Node, ...]:
        """The branches that are not ``null``, in order."""
        return tuple(
            b for b in self.branches if not (isinstance(b, Primitive) and b.kind == "null")
        )

    @property
    def inner(self) -> Node:
        """The one branch that is not ``null``; ValueError for any other union."""
        others = self.others
        if len(others) != 1:
            raise ValueError(f"{self.path}: only [null, T] unions are supported in ICS-TIP schemas")
        return others[0]


@dataclass(frozen=True, slots=True, eq=False)
class Field:
    """One field of a record. ``default`` is the Avro JSON default (meaningful when
    ``has_default``); use :meth:`fresh_default` for a value that may be changed."""

    name: str
    path: str
    type: Node
    default: Any = None
    has_default: bool = False
    doc: str | None = None

    @property
    def nullable(self) -> bool:
        """Whether the field may hold null (a ``[null, T]`` union)."""
        return isinstance(self.type, Union) and self.type.nullable

    @property
    def is_array(self) -> bool:
        """Whether the field holds a list (optional or not)."""
        return isinstance(strip(self.type), Array)

    @property
    def element(self) -> Node:
        """What one value of the field is: the type beneath ``[null, T]`` and one list level."""
        return element(self.type)

    @property
    def is_leaf(self) -> bool:
        """A field that holds values rather than records (lists of codes are leaves)."""
        return not isinstance(self.element, Record | Map)

    def fresh_default(self) -> Any:
        """The default as a new value (a list default is never shared between records)."""
        d = self.default
        return copy.deepcopy(d) if isinstance(d, list | dict) else d


@dataclass(frozen=True, slots=True, eq=False)
class Record:
    path: str
    name: str
    fullname: str
    fields: tuple[Field, ...]
    doc: str | None = None

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.path}: record {self.name} has no field {name}")


Node: TypeAlias = Primitive | Enum | Fixed | Array | Map | Union | Record
Named: TypeAlias = Record | Enum | Fixed


def strip(node: Node) -> Node:
    """``node`` without a ``[null, T]`` union around it (other nodes unchanged)."""
    if isinstance(node, Union):
        others = node.others
        if len(others) == 1:
            return others[0]
    return node


def element(node: Node) -> Node:
    """The type of one value: ``node`` without ``[null, T]`` and without one list level."""
    node = strip(node)
    if isinstance(node, Array):
        node = strip(node.items)
    return node


class SchemaModel:
    """The parsed tree of one schema with its lookups by path and by name."""

    def __init__(self, root: Node) -> None:
        self.root = root
        self._nodes: dict[str, Node] = {}
        self._fields: dict[str, Field] = {}
        self._named: dict[str, list[Named]] = {}
        self._index(root)

    def _index(self, node: Node) -> None:
        self._nodes.setdefault(node.path, node)
        if isinstance(node, Record | Enum | Fixed):
            for key in {node.name, node.fullname}:
                found = self._named.setdefault(key, [])
                if not any(n.fullname == node.fullname for n in found):
                    found.append(node)
        if isinstance(node, Record):
            for f in node.fields:
                self._fields[f.path] = f
                self._index(f.type)
        elif isinstance(node, Union):
            for b in node.branches:
                self._index(b)
        elif isinstance(node, Array):
            self._index(node.items)
        elif isinstance(node, Map):
            self._index(node.values)

    # by path -------------------------------------------------------------------------------

    def __contains__(self, path: object) -> bool:
        return path in self._nodes

    def at(self, path: str) -> Node:
        """The node at ``path`` as declared (for a field: its type, union included)."""
        try:
            return self._nodes[path]
        except KeyError:
            raise KeyError(f"the schema has no path {path}") from None

    def field(self, path: str) -> Field:
        """The field at ``path`` (e.g. ``$.victims[].sex``)."""
        try:
            return self._fields[path]
        except KeyError:
            raise KeyError(f"the schema has no field {path}") from None

    def has_field(self, path: str) -> bool:
        return path in self._fields

    def record_at(self, path: str) -> Record:
        """The record at ``path``, through ``[null, T]`` (``$.victims[]`` is the Victim)."""
        node = strip(self.at(path))
        if not isinstance(node, Record):
            raise LookupError(f"{path} is not a record")
        return node

    def enum_at(self, path: str) -> Enum:
        """The code list of the field at ``path``, through ``[null, T]`` and one list level."""
        node = element(self.at(path))
        if not isinstance(node, Enum):
            raise LookupError(f"{path} holds no enum")
        return node

    # iteration -----------------------------------------------------------------------------

    def fields(self) -> Iterator[Field]:
        """Every field, parents before children, in document order."""
        return iter(self._fields.values())

    def leaves(self) -> Iterator[Field]:
        """Every field that holds values rather than records, in document order."""
        return (f for f in self._fields.values() if f.is_leaf)

    def paths(self) -> list[str]:
        """Every field path, parents before children."""
        return list(self._fields)

    # by name -------------------------------------------------------------------------------

    def named(self, name: str) -> Named:
        """The named type called ``name`` (unqualified or full name), as first defined."""
        found = self._named.get(name, [])
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise LookupError(f"the schema declares {what} named type {name}")
        return found[0]

    def enum(self, name: str) -> Enum:
        node = self.named(name)
        if not isinstance(node, Enum):
            raise LookupError(f"{name} is not an enum")
        return node


# --- parsing ---------------------------------------------------------------------------------


def parse(source: Any) -> SchemaModel:
    """Parse Avro JSON (a dict, a list or a type name) into a :class:`SchemaModel`."""
    return SchemaModel(_Parser().node(source, "$", ""))


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Parser:
    """One pass over the JSON; a named type's definition is kept by full name, and every later
    reference is parsed from that definition at the reference's own path."""

    def __init__(self) -> None:
        self.defined: dict[str, tuple[Any, str]] = {}  # full name -> (JSON, its namespace)
        self.open: set[str] = set()  # named types being parsed (a reference to one recurses)
        self.symbols: dict[str, tuple[str, ...]] = {}

    def node(self, s: Any, path: str, ns: str) -> Node:
        if isinstance(s, str):
            if s in PRIMITIVES:
                return Primitive(path, s)
            return self.reference(s, path, ns)
        if isinstance(s, list):
            return Union(path, tuple(self.node(b, path, ns) for b in s))
        if not isinstance(s, Mapping):
            raise ValueError(f"{path}: not an Avro schema")
        t = s.get("type")
        if isinstance(t, list | Mapping):
            return self.node(t, path, ns)
        if not isinstance(t, str):
            raise ValueError(f"{path}: a type without a type name")
        if t in ("record", "error", "enum", "fixed"):
            return self.definition(s, path, ns)
        if t == "array":
            return Array(path, self.node(s["items"], f"{path}[]", ns))
        if t == "map":
            return Map(path, self.node(s["values"], f"{path}{{}}", ns))
        if t in PRIMITIVES:
            logical = s.get("logicalType")
            return Primitive(path, t, logical if isinstance(logical, str) else None)
        return self.reference(t, path, ns)

    def reference(self, name: str, path: str, ns: str) -> Node:
        for full in (_fullname(name, ns), name):
            if full in self.defined:
                source, its_ns = self.defined[full]
                if full in self.open:
                    raise ValueError(f"{path}: recursive type {name} is not supported")
                return self.named(source, path, full, its_ns)
        raise ValueError(f"{path}: unknown type {name}")

    def definition(self, s: Mapping[str, Any], path: str, ns: str) -> Node:
        name = s["name"]
        own = s.get("namespace")
        if "." in name:
            its_ns = name.rpartition(".")[0]
        elif isinstance(own, str):
            its_ns = own
        else:
            its_ns = ns
        full = _fullname(name, its_ns)
        before = self.defined.get(full)
        if before is None:
            self.defined[full] = (s, its_ns)
        elif before[0] is not s:
            raise ValueError(f"{path}: type {full} is defined twice")
        return self.named(s, path, full, its_ns)

    def named(self, s: Mapping[str, Any], path: str, full: str, ns: str) -> Node:
        t = s["type"]
        short = full.rpartition(".")[2]
        if t == "enum":
            symbols = self.symbols.setdefault(full, tuple(s["symbols"]))
            return Enum(path, short, full, symbols, s.get("default"))
        if t == "fixed":
            logical = s.get("logicalType")
            return Fixed(
                path, short, full, int(s["size"]), logical if isinstance(logical, str) else None
            )
        self.open.add(full)
        try:
            fields = tuple(self.field(f, path, ns) for f in s["fields"])
        finally:
            self.open.discard(full)
        return Record(path, short, full, fields, s.get("doc"))

    def field(self, f: Mapping[str, Any], parent: str, ns: str) -> Field:
        name = f["name"]
        path = f"{parent}.{name}"
        return Field(
            name=name,
            path=path,
            type=self.node(f["type"], path, ns),
            default=copy.deepcopy(f.get("default")),
            has_default="default" in f,
            doc=f.get("doc"),
        )
