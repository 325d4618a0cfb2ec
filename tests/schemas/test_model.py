"""The one schema model: known answers, every walker agreeing on it, and no other walker."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.mapping import SET_BY_MAPPER, TARGETS, Mapping, MappingError
from producers.readers import Row
from schemas import rules
from schemas.codec import default_registry
from schemas.fields import Pruner, field_paths
from schemas.model import (
    Array,
    Enum,
    Field,
    Fixed,
    Map,
    Node,
    Primitive,
    Record,
    Union,
    element,
    parse,
    strip,
)
from schemas.validate import validator_for

ROOT = Path(__file__).resolve().parents[2]
REG = default_registry()
CASE = REG.current("case_record")
MODEL = CASE.model
V = validator_for(CASE)
LEAVES = [f.path for f in MODEL.leaves()]
TODAY = dt.date(2026, 1, 1)


# --- known answers ---------------------------------------------------------------------------


def test_the_model_is_parsed_once_per_schema() -> None:
    assert CASE.model is MODEL
    assert parse(CASE.source) is not MODEL  # parse itself never caches


def test_root_and_named_types() -> None:
    root = MODEL.root
    assert isinstance(root, Record)
    assert (root.path, root.name, root.fullname) == (
        "$",
        "CaseRecord",
        "org.tiptrust.icstip.CaseRecord",
    )
    assert [f.name for f in root.fields] == [
        "case_id", "reporting_entity", "event", "victims", "perpetrators",
    ]  # fmt: skip
    gender = MODEL.enum("Gender")
    assert gender is MODEL.enum("org.tiptrust.icstip.Gender")
    assert gender.path == "$.victims[].sex"  # where it is defined
    assert gender.symbols[0] == "Feminine" and gender.symbols[-1] == "Unknown"
    with pytest.raises(LookupError):
        MODEL.enum("Identifiers")  # a record
    with pytest.raises(LookupError):
        MODEL.named("Shoe")


def test_a_named_type_is_a_node_at_every_path_that_uses_it() -> None:
    victim_sex, perp_sex = MODEL.at("$.victims[].sex"), MODEL.at("$.perpetrators[].sex")
    assert isinstance(victim_sex, Enum) and isinstance(perp_sex, Enum)
    assert perp_sex.path == "$.perpetrators[].sex" and perp_sex.name == "Gender"
    assert perp_sex.symbols is victim_sex.symbols  # one code list, resolved once
    residence = MODEL.enum_at("$.victims[].country_of_residence")
    transit = MODEL.at("$.event.countries_of_transit[]")
    assert isinstance(transit, Enum) and transit.symbols is residence.symbols
    assert MODEL.enum_at("$.event.countries_of_transit") is transit  # through the list


def test_paths_of_lists_unions_and_records() -> None:
    victims = MODEL.at("$.victims")
    assert isinstance(victims, Array) and victims.path == "$.victims"
    assert isinstance(victims.items, Record) and victims.items.path == "$.victims[]"
    assert MODEL.record_at("$.victims[]") is victims.items
    identifiers = MODEL.field("$.victims[].identifiers")
    assert isinstance(identifiers.type, Union)
    assert identifiers.nullable and identifiers.has_default and identifiers.default is None
    assert not identifiers.is_leaf and not identifiers.is_array
    record = MODEL.record_at("$.victims[].identifiers")
    assert (record.name, record.path) == ("Identifiers", "$.victims[].identifiers")
    assert record.field("phone").path == "$.victims[].identifiers.phone"
    docs = MODEL.field("$.victims[].identifiers.documents")
    assert docs.is_array and not docs.is_leaf and docs.fresh_default() == []
    assert docs.fresh_default() is not docs.fresh_default()
    assert MODEL.record_at("$.victims[].identifiers.documents[]").name == "IdentityDocument"


def test_leaves_and_primitives() -> None:
    dob = MODEL.field("$.victims[].identifiers.date_of_birth")
    assert isinstance(dob.element, Primitive)
    assert (dob.element.kind, dob.element.logical_type, dob.element.path) == (
        "int", "date", "$.victims[].identifiers.date_of_birth",
    )  # fmt: skip
    case_id = MODEL.field("$.case_id")
    assert not case_id.nullable and not case_id.has_default
    assert isinstance(case_id.type, Primitive) and case_id.type.kind == "string"
    year = MODEL.field("$.event.year_of_exploitation")
    assert year.nullable and year.has_default and year.default is None
    forms = MODEL.field("$.event.forms_of_exploitation")
    assert forms.is_leaf and forms.is_array and isinstance(forms.element, Enum)
    assert len(LEAVES) == 49 and len(MODEL.paths()) == 56
    assert [p for p in LEAVES if p.startswith("$.victims[].identifiers")] == [
        "$.victims[].identifiers.given_names",
        "$.victims[].identifiers.surnames",
        "$.victims[].identifiers.date_of_birth",
        "$.victims[].identifiers.documents[].number",
        "$.victims[].identifiers.documents[].issuing_country",
        "$.victims[].identifiers.phone",
        "$.victims[].identifiers.shared_ids[].scheme",
        "$.victims[].identifiers.shared_ids[].value",
    ]
    assert set(MODEL.paths()) - set(LEAVES) == {
        "$.reporting_entity", "$.event", "$.victims", "$.victims[].identifiers",
        "$.victims[].identifiers.documents", "$.victims[].identifiers.shared_ids",
        "$.perpetrators",
    }  # fmt: skip
    assert field_paths(CASE) == MODEL.paths()


def test_unknown_paths_are_not_in_the_model() -> None:
    for path in ("$.victims[].shoe_size", "$.victims.sex", "$.victims[]sex", "victims", "$.."):
        assert path not in MODEL and not MODEL.has_field(path)
        with pytest.raises(KeyError):
            MODEL.at(path)
    with pytest.raises(LookupError):
        MODEL.record_at("$.case_id")
    with pytest.raises(LookupError):
        MODEL.enum_at("$.victims[].age_at_identification")


def test_every_shipped_schema_parses_with_fixed_and_map_nodes() -> None:
    for schema in REG.names:
        assert isinstance(REG.current(schema).model.root, Record)
    header = REG.current("envelope").model
    uuid = header.at("$.header.event_id")
    assert isinstance(uuid, Fixed) and (uuid.name, uuid.size) == ("Uuid", 16)
    produced = header.field("$.header.produced_at").element
    assert isinstance(produced, Primitive) and produced.logical_type == "timestamp-millis"


def test_namespaces_maps_and_bad_schemas() -> None:
    schema = {
        "type": "record",
        "name": "Outer",
        "namespace": "a.b",
        "fields": [
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["x", "y"]}},
            {"name": "by_full", "type": "a.b.E"},
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "c.Inner",  # its own namespace: c
                    "fields": [
                        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["z"]}},
                        {"name": "m", "type": {"type": "map", "values": "E"}},  # c.E
                    ],
                },
            },
            {"name": "other", "type": ["null", "string", "long"], "default": None},
        ],
    }
    model = parse(schema)
    assert model.enum_at("$.by_full").fullname == "a.b.E"
    assert model.enum("c.E").symbols == ("z",)
    with pytest.raises(LookupError):
        model.enum("E")  # two types share the short name: ask by full name
    m = model.at("$.inner.m")
    assert isinstance(m, Map) and m.path == "$.inner.m"
    assert isinstance(m.values, Enum) and m.values.path == "$.inner.m{}"
    assert m.values.fullname == "c.E"
    other = model.at("$.other")
    assert isinstance(other, Union) and other.nullable and len(other.others) == 2
    with pytest.raises(ValueError, match="only \\[null, T\\]"):
        _ = other.inner
    assert strip(other) is other and element(other) is other

    recursive = {"type": "record", "name": "R", "fields": [{"name": "r", "type": ["null", "R"]}]}
    with pytest.raises(ValueError, match="recursive"):
        parse(recursive)
    with pytest.raises(ValueError, match="unknown type"):
        parse({"type": "record", "name": "R", "fields": [{"name": "r", "type": "Nope"}]})
    twice = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["x"]}},
            {"name": "b", "type": {"type": "enum", "name": "E", "symbols": ["y"]}},
        ],
    }
    with pytest.raises(ValueError, match="defined twice"):
        parse(twice)


def test_the_rules_name_paths_the_schemas_have() -> None:
    """A rule keyed by a mistyped path would silently apply to nothing."""
    models = [REG.current(name).model for name in REG.names]

    def fields_at(path: str) -> list[Field]:
        return [m.field(path) for m in models if m.has_field(path)]

    def kinds(path: str) -> set[str]:
        out = set()
        for f in fields_at(path):
            e = f.element
            out.add(e.logical_type or e.kind if isinstance(e, Primitive) else type(e).__name__)
        return out

    for path in rules.RANGES:
        assert kinds(path) == {"int"}, path
    for path in rules.ID_PATHS | rules.SOURCE_ID_PATHS:
        assert kinds(path) == {"string"}, path
    for path in rules.LIST_LIMITS:
        assert fields_at(path) and all(f.is_array for f in fields_at(path)), path
    for pair in rules.DATE_ORDER:
        for path in pair:
            assert kinds(path) == {"date"}, path


def test_the_release_code_lists_come_from_the_model() -> None:
    from trust.release.aggregate import FORM_CODES, SEXES

    assert MODEL.enum("FormOfExploitation").symbols == FORM_CODES
    assert set(SEXES) == set(MODEL.enum_at("$.victims[].sex").symbols)
    assert SEXES[-1] == "Unknown"


# --- every walker agrees on which paths exist ------------------------------------------------

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|(\[\])")


def _steps(path: str) -> list[str] | None:
    """``$.a[].b`` → ["a", "[]", "b"]; None if it is not a path at all."""
    if not path.startswith("$"):
        return None
    rest, out = path[1:], []
    while rest:
        m = _STEP.match(rest)
        if m is None:
            return None
        out.append(m.group(1) or "[]")
        rest = rest[m.end() :]
    return out


def _valid(node: Node) -> Any:
    """A valid value for ``node`` that is not its default (so that pruning shows)."""
    node = strip(node)
    if isinstance(node, Record):
        return {f.name: _valid(f.type) for f in node.fields}
    if isinstance(node, Array):
        return [_valid(node.items)]
    if isinstance(node, Enum):
        return next(s for s in node.symbols if s != "Unknown")
    assert isinstance(node, Primitive), node
    if node.logical_type == "date":
        return dt.date(2000, 1, 2)
    if node.kind in ("int", "long"):
        return rules.int_range(node.path, node.kind)[0] + 1
    assert node.kind == "string"
    return "police" if node.path in rules.SOURCE_ID_PATHS else "s-" + node.path.rpartition(".")[2]


def _full() -> dict[str, Any]:
    rec = _valid(MODEL.root)
    assert isinstance(rec, dict)
    # the victim's age facts must agree (rules.age_conflict): an age of 1 is a minor's
    rec["victims"][0]["majority_status"] = "Minor"
    return rec


def _get(rec: Any, steps: list[str]) -> Any:
    for s in steps:
        rec = rec[0] if s == "[]" else rec[s]
    return rec


def _set(rec: Any, steps: list[str], value: Any) -> bool:
    """Set the value at ``steps`` (first element of each list); False if its parent is absent."""
    for s in steps[:-1]:
        if s == "[]":
            if not isinstance(rec, list) or not rec:
                return False
            rec = rec[0]
        else:
            if not isinstance(rec, dict) or s not in rec:
                return False
            rec = rec[s]
    if not isinstance(rec, dict) or steps[-1] == "[]":
        return False
    rec[steps[-1]] = value
    return True


def _unindexed(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


class _NotAValue:
    """A value no check accepts (not text, number, date, code, list or record)."""


def _validator_sees(steps: list[str], path: str) -> bool | None:
    """Whether the validator checks ``path`` (None: it cannot be placed in a record)."""
    rec = _full()
    if not _set(rec, steps, _NotAValue()):
        return None
    return path in {_unindexed(p.path) for p in V.problems(rec)}


def _pruner_accepts(path: str) -> bool:
    try:
        Pruner(CASE, [path])
    except ValueError:
        return False
    return True


def _mapping_accepts(path: str) -> bool:
    try:
        Mapping.from_dict(_mapping({path: "x"}))
    except MappingError:
        return False
    return True


def _mapping(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_id": "ngo_test",
        "organisation_type": "NGO",
        "case_column": "case",
        "victim_column": "who",
        "perpetrator_column": "pid",
        "fields": fields,
    }


def test_the_full_record_is_valid() -> None:
    rec = _full()
    assert V.problems(rec) == []
    assert CASE.decode(CASE.encode(rec)) == rec


@pytest.mark.parametrize("path", LEAVES)
def test_every_leaf_is_known_to_the_validator_the_pruner_and_the_mapper(path: str) -> None:
    steps = _steps(path)
    assert steps is not None
    assert _validator_sees(steps, path) is True
    # the pruner accepts it, and sharing only it keeps its value
    full = _full()
    assert _pruner_accepts(path)
    assert _get(Pruner(CASE, [path]).prune(full), steps) == _get(_full(), steps)
    # the mapper fills it: from a column, or itself
    assert (path in TARGETS) != (path in SET_BY_MAPPER)
    fields: dict[str, Any] = {}
    row = {"case": "c-1", "who": "v-1", "pid": "p-1"}
    want = _get(_full(), steps)
    if path in TARGETS:
        target = TARGETS[path]
        value = want[0] if target.array else want
        fields[path] = "x"
        row["x"] = value.isoformat() if isinstance(value, dt.date) else str(value)
        number = "$.victims[].identifiers.documents[].number"
        if path.startswith("$.victims[].identifiers.documents[].") and path != number:
            fields[number] = "n"  # a document is made only with its number
            row["n"] = "N-1"
        shared_value = "$.victims[].identifiers.shared_ids[].value"
        shared_scheme = "$.victims[].identifiers.shared_ids[].scheme"
        if path == shared_scheme:
            fields[shared_value] = "n"  # a shared identifier is made only with its value
            row["n"] = "N-1"
        if path == shared_value:
            fields[shared_scheme] = "s"  # ... and needs its scheme
            row["s"] = "nrm_referral"
    (mapped,) = Mapping.from_dict(_mapping(fields)).map_rows([Row(1, row)], today=TODAY).records
    got = _get(mapped.record, steps)
    if path in TARGETS:
        assert got == want
    else:
        assert got is not None and got != []
    assert V.problems(mapped.record) == []


@pytest.mark.parametrize("path", sorted(set(MODEL.paths()) - set(LEAVES)))
def test_records_are_known_to_the_validator_and_the_pruner_but_are_no_targets(path: str) -> None:
    steps = _steps(path)
    assert steps is not None
    assert _validator_sees(steps, path) is True
    assert _pruner_accepts(path)
    assert path not in TARGETS and path not in SET_BY_MAPPER
    assert not _mapping_accepts(path)


_NAMES = sorted({f.name for f in MODEL.fields()} | {"shoe_size", "victim"})
_segments = st.lists(st.tuples(st.sampled_from(_NAMES), st.booleans()), min_size=1, max_size=4)
_made_up = _segments.map(
    lambda segs: (
        "$" + "".join(f".{n}{'[]' if many else ''}" for n, many in segs[:-1]) + f".{segs[-1][0]}"
    )
)
_mutated = st.sampled_from(MODEL.paths()).flatmap(
    lambda p: st.sampled_from(
        [p, p.replace("[]", ""), p.replace(".", "[].", 1), p + "[]", p + ".x", p.upper()]
    )
)


@given(st.one_of(st.sampled_from(LEAVES), _made_up, _mutated))
def test_the_walkers_agree_on_any_path(path: str) -> None:
    exists = MODEL.has_field(path)
    assert (path in field_paths(CASE)) == exists
    assert _pruner_accepts(path) == exists
    leaf = exists and MODEL.field(path).is_leaf
    assert (path in TARGETS or path in SET_BY_MAPPER) == leaf
    assert _mapping_accepts(path) == (path in TARGETS)
    steps = _steps(path)
    if steps is not None:
        seen = _validator_sees(steps, path)
        assert seen is None or seen == exists
        if exists:
            assert seen is True


# --- no other walker -------------------------------------------------------------------------

#: Keys of Avro JSON, and the names of its complex types.
AVRO_KEYS = frozenset({"type", "fields", "symbols", "items", "values", "logicalType", "namespace"})
AVRO_TYPES = frozenset({"record", "error", "enum", "array", "map", "fixed"})
SCANNED = ("schemas", "producers", "trust", "consumers")
#: Reviewed uses of those words that do not walk a schema: (file, source of the expression).
NOT_WALKERS = {
    # a mapping file's entry keys (producers/mapping.md), not Avro JSON
    ("producers/mapping.py", "entry.get('type')"),
    ("producers/mapping.py", "data.get('fields')"),
    # takes its own schema's header record (JSON) to make fastavro's header-only schema
    ("schemas/envelope.py", "ENVELOPE_SCHEMA.source['fields']"),
    ("schemas/envelope.py", "ENVELOPE_SCHEMA.source['fields'][1]['type']"),
    # ... and its fields, to read the header as it is on the wire (its bytes sliced, not re-encoded)
    ("schemas/envelope.py", "ENVELOPE_SCHEMA.source['fields'][1]['type']['fields']"),
}


def _avro_json_uses(tree: ast.AST) -> list[ast.AST]:
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            key = node.slice
            if isinstance(key, ast.Constant) and key.value in AVRO_KEYS:
                found.append(node)
        elif isinstance(node, ast.Call):
            f, args = node.func, node.args
            if (
                isinstance(f, ast.Attribute)
                and f.attr in ("get", "setdefault", "pop")
                and args
                and isinstance(args[0], ast.Constant)
                and args[0].value in AVRO_KEYS
            ):
                found.append(node)
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            constants = [
                c
                for o in operands
                for c in (o.elts if isinstance(o, ast.Tuple | ast.List | ast.Set) else [o])
                if isinstance(c, ast.Constant)
            ]
            if any(c.value in AVRO_TYPES for c in constants):
                found.append(node)
        elif (
            isinstance(node, ast.MatchValue)
            and isinstance(node.value, ast.Constant)
            and node.value.value in AVRO_TYPES
        ):
            found.append(node)
    return found


def test_the_scan_finds_a_walker() -> None:
    walker = """
def kind(schema):
    if isinstance(schema, dict) and schema.get("type") == "enum":
        return schema["symbols"]
    return [f["type"] for f in schema["fields"]] if t in ("record", "error") else None
"""
    assert len(_avro_json_uses(ast.parse(walker))) == 6


def test_no_module_but_the_model_walks_avro_json() -> None:
    offenders = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name == "schemas/model.py":
                continue
            for node in _avro_json_uses(ast.parse(path.read_text("utf-8"))):
                source = ast.unparse(node)
                if (name, source) not in NOT_WALKERS:
                    offenders.append(f"{name}:{getattr(node, 'lineno', '?')}: {source}")
    assert offenders == [], "read the schema through schemas.model instead:\n" + "\n".join(
        offenders
    )
