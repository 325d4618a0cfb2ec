"""Agency export rows → ICS-TIP case records, through a YAML mapping file (see ``mapping.md``).

The mapping file is validated once, against the case record schema itself, and compiled into a list
of small setter closures; mapping a row is then one dictionary lookup and one conversion per mapped
column. Problems name the row, the ICS-TIP path and what was expected — never the cell's value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from producers.readers import Row
from schemas import model as avro
from schemas.codec import default_registry
from schemas.errors import Problem, ReasonCode
from schemas.rules import (
    DATE_ORDER,
    EARLIEST_DATE,
    SOURCE_ID_PATTERN,
    date_order_text,
    date_range_text,
    int_range,
    is_source_id,
)

__all__ = ["TARGETS", "FieldSpec", "MappedBatch", "MappedRecord", "Mapping", "MappingError"]

Record = dict[str, Any]

SIBLING_WITHHELD = "withheld: another row of this case is invalid"


class MappingError(Exception):
    """The mapping file itself is wrong. ``code`` is always ``BAD_MAPPING``."""

    code: ReasonCode = ReasonCode.BAD_MAPPING

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class MappedRecord:
    """One case record built from the rows (numbers) that share its case id."""

    case_id: str
    rows: tuple[int, ...]
    record: Record


@dataclass(frozen=True, slots=True)
class MappedBatch:
    """The records of every case whose rows were all valid, and the problems of the rest."""

    records: list[MappedRecord]
    problems: list[Problem]


# --- the targets, read from the case record schema's model ---------------------------------------

# containers a target lives in; a row's setters write into ``targets[container]``
RE, EV, VI, ID, DOC, PE = range(6)
_CONTAINERS: tuple[tuple[int, str], ...] = (
    # container, the path of its record in the case record schema
    (RE, "$.reporting_entity"),
    (EV, "$.event"),
    (VI, "$.victims[]"),
    (ID, "$.victims[].identifiers"),
    (DOC, "$.victims[].identifiers.documents[]"),
    (PE, "$.perpetrators[]"),
)
#: Fields the mapper fills itself, from ``case_column`` / ``victim_column`` /
#: ``perpetrator_column`` and the top level of the mapping file: never targets.
SET_BY_MAPPER = frozenset(
    {
        "$.case_id",
        "$.reporting_entity.source_id",
        "$.reporting_entity.organisation_type",
        "$.victims[].victim_id",
        "$.perpetrators[].perpetrator_id",
    }
)
_NOT_TARGETS = SET_BY_MAPPER | {"$.victims[].identifiers", "$.victims[].identifiers.documents"}


@dataclass(frozen=True, slots=True)
class Target:
    """One ICS-TIP field a mapping may fill: where it lives and what it holds."""

    path: str
    container: int
    name: str
    kind: str  # "code" (an enum), "int", "date" or "str"
    array: bool
    symbols: frozenset[str]  # the enum's codes; empty unless kind == "code"
    enum_name: str
    bounds: tuple[int, int] = (0, 0)  # inclusive, from schemas.rules; for kind == "int" only


@dataclass(frozen=True, slots=True)
class _Schema:
    targets: dict[str, Target]
    # per record: (field name, default, is_array) in schema order, for filling unmapped fields
    layout: dict[int, tuple[tuple[str, Any, bool], ...]]
    organisation_types: frozenset[str]


def _target_of(field: avro.Field, container: int) -> Target | None:
    """The target of a leaf field (None: a nested record, reached through its own container)."""
    t = field.element
    path, name, array = field.path, field.name, field.is_array
    if isinstance(t, avro.Record):
        return None
    if isinstance(t, avro.Enum):
        return Target(path, container, name, "code", array, frozenset(t.symbols), t.name)
    if isinstance(t, avro.Primitive) and t.logical_type == "date":
        return Target(path, container, name, "date", array, frozenset(), "")
    if isinstance(t, avro.Primitive) and t.logical_type is None and t.kind in ("int", "long"):
        bounds = int_range(path, t.kind)
        return Target(path, container, name, "int", array, frozenset(), "", bounds)
    if isinstance(t, avro.Primitive) and t.logical_type is None and t.kind == "string":
        return Target(path, container, name, "str", array, frozenset(), "")
    raise ValueError(f"{path}: the mapper cannot fill a field of this type")


def _load_schema() -> _Schema:
    model = default_registry().current("case_record").model
    targets: dict[str, Target] = {}
    layout: dict[int, tuple[tuple[str, Any, bool], ...]] = {}
    for container, record_path in _CONTAINERS:
        record = model.record_at(record_path)
        layout[container] = tuple((f.name, f.default, f.is_array) for f in record.fields)
        for f in record.fields:
            if f.path not in _NOT_TARGETS:
                target = _target_of(f, container)
                if target is not None:
                    targets[f.path] = target
    # every value of a case record is either a target or filled by the mapper itself: a field
    # added to the schema outside the containers above must not be silently unmappable
    unplaced = [
        f.path for f in model.leaves() if f.path not in targets and f.path not in SET_BY_MAPPER
    ]
    if unplaced:
        raise ValueError("case record fields the mapper cannot place: " + ", ".join(unplaced))
    for pair in DATE_ORDER:  # checked per case, in its event or reporting entity: not in lists
        slots = {targets[p].container for p in pair}
        if len(slots) != 1 or not slots <= {RE, EV}:
            raise ValueError(f"date order {pair}: the mapper checks it within one record only")
    org = model.enum_at("$.reporting_entity.organisation_type")
    return _Schema(targets, layout, frozenset(org.symbols))


_SCHEMA = _load_schema()
TARGETS: dict[str, Target] = _SCHEMA.targets
"""Every path a mapping file may fill, e.g. ``$.victims[].sex``."""

# --- the mapping file ----------------------------------------------------------------------------

_TOP_KEYS = frozenset(
    {
        "source_id",
        "organisation_type",
        "case_column",
        "victim_column",
        "perpetrator_column",
        "constants",
        "fields",
        "description",
    }
)
_REQUIRED_TOP = ("source_id", "organisation_type", "case_column", "victim_column")
_FIELD_KEYS = frozenset({"column", "type", "format", "codes", "split", "missing"})
CodeValue = str | list[str] | None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One entry of ``fields``: fill ``target`` from ``column``."""

    target: Target
    column: str
    codes: dict[str, CodeValue] | None = None
    split: str | None = None
    format: str | None = None
    missing: frozenset[str] = frozenset()


class _TextLoader(yaml.SafeLoader):
    """YAML where every scalar is text (no ``N`` → False, ``01`` → 1) and keys must be unique."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise MappingError(f"line {key_node.start_mark.line + 1}: repeated key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class Mapping:
    """A validated, compiled mapping from one agency's export to ICS-TIP case records.

    Build it with :meth:`load` (a YAML file) or :meth:`from_dict`; both raise
    :class:`MappingError` (``BAD_MAPPING``) for unknown keys, unknown target paths, codes that
    are not ICS-TIP codes of their target and options that do not fit the target's type.
    """

    def __init__(
        self,
        *,
        source_id: str,
        organisation_type: str,
        case_column: str,
        victim_column: str,
        perpetrator_column: str | None,
        fields: tuple[FieldSpec, ...],
        constants: dict[str, Any],
    ) -> None:
        self.source_id = source_id
        self.organisation_type = organisation_type
        self.case_column = case_column
        self.victim_column = victim_column
        self.perpetrator_column = perpetrator_column
        self.fields = fields
        self.constants = constants
        # per container: the schema defaults with this mapping's constants applied
        per_container: dict[int, dict[str, Any]] = {c: {} for c, _ in _CONTAINERS}
        for path, value in constants.items():
            t = TARGETS[path]
            per_container[t.container][t.name] = value
        self._templates = {c: _Template(c, v) for c, v in per_container.items()}
        self._compiled: dict[date, tuple[tuple[str, Setter], ...]] = {}
        self._has_docs = any(f.target.container == DOC for f in fields)
        self._has_perp_fields = any(f.target.container == PE for f in fields)
        mapped = {f.target.path for f in fields}
        # rules.DATE_ORDER pairs this mapping fills from columns: (container, first, second,
        # path of the second, what it must be)
        self._date_order = tuple(
            (TARGETS[a].container, TARGETS[a].name, TARGETS[b].name, b, date_order_text(a))
            for a, b in DATE_ORDER
            if a in mapped and b in mapped
        )

    # construction ----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        """Read and validate a YAML mapping file (format: ``producers/mapping.md``)."""
        p = Path(path)
        try:
            data = yaml.load(p.read_text("utf-8"), Loader=_TextLoader)
        except MappingError as e:
            raise MappingError(f"{p.name}: {e.message}") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise MappingError(f"{p.name}: not valid YAML{where}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise MappingError(f"{p.name}: cannot be read ({type(e).__name__})") from None
        return cls.from_dict(data, origin=p.name)

    @classmethod
    def from_dict(cls, data: Any, *, origin: str = "mapping") -> Mapping:
        """Validate a mapping already parsed into Python values (as :meth:`load` does)."""

        def fail(where: str, message: str) -> MappingError:
            return MappingError(f"{origin}: {where}: {message}")

        if not isinstance(data, dict):
            raise fail("top level", "expected a mapping of keys to values")
        unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
        if unknown:
            raise fail("top level", f"unknown key(s) {', '.join(unknown)}")
        for key in _REQUIRED_TOP:
            if not isinstance(data.get(key), str) or not data[key]:
                raise fail(key, "required, expected text")
        source_id = data["source_id"]
        if not is_source_id(source_id):
            raise fail("source_id", f"expected {SOURCE_ID_PATTERN} (the whole text)")
        org = data["organisation_type"]
        if org not in _SCHEMA.organisation_types:
            raise fail("organisation_type", f"expected one of {_list(_SCHEMA.organisation_types)}")
        perp_col = data.get("perpetrator_column")
        if perp_col is not None and (not isinstance(perp_col, str) or not perp_col):
            raise fail("perpetrator_column", "expected text")
        raw_fields = data.get("fields") or {}
        if not isinstance(raw_fields, dict):
            raise fail("fields", "expected a mapping of ICS-TIP paths to field entries")
        raw_constants = data.get("constants") or {}
        if not isinstance(raw_constants, dict):
            raise fail("constants", "expected a mapping of ICS-TIP paths to values")

        specs: list[FieldSpec] = []
        for path, entry in raw_fields.items():
            where = f"fields.{path}"
            target = _target(path, fail, where)
            specs.append(_field_spec(target, entry, fail, where))
        if perp_col is None and any(s.target.container == PE for s in specs):
            raise fail("perpetrator_column", "required when a $.perpetrators[] field is mapped")

        constants: dict[str, Any] = {}
        for path, value in raw_constants.items():
            where = f"constants.{path}"
            target = _target(path, fail, where)
            if path in raw_fields:
                raise fail(where, "also mapped under fields; a target takes one or the other")
            if target.container == DOC:
                raise fail(where, "documents come from columns only")
            constants[path] = _constant(target, value, fail, where)

        return cls(
            source_id=source_id,
            organisation_type=org,
            case_column=data["case_column"],
            victim_column=data["victim_column"],
            perpetrator_column=perp_col,
            fields=tuple(specs),
            constants=constants,
        )

    @property
    def columns(self) -> frozenset[str]:
        """Every export column this mapping reads."""
        cols = {self.case_column, self.victim_column} | {f.column for f in self.fields}
        if self.perpetrator_column:
            cols.add(self.perpetrator_column)
        return frozenset(cols)

    # mapping ---------------------------------------------------------------------------------

    def map_rows(self, rows: Iterable[Row], *, today: date | None = None) -> MappedBatch:
        """Group rows by case into case records; withhold every case that has an invalid row.

        Rows with the same ``case_column`` value (anywhere in the export) form one record; rows
        with the same ``victim_column`` value within a case are one victim (likewise
        perpetrators). Where rows disagree on a single-valued field the first non-empty value
        wins; multi-valued fields are the union in order of appearance. A case with any invalid
        row is not emitted: the invalid row gets its problems, each sibling row one
        ``INVALID_RECORD`` problem. ``today`` bounds dates (no date may be later); it defaults
        to the current date. Problems come sorted by row.
        """
        return self._map(rows, today or date.today())

    def _map(self, rows: Iterable[Row], today: date) -> MappedBatch:
        setters = _compile(self, today)
        case_col, victim_col, perp_col = (
            self.case_column,
            self.victim_column,
            self.perpetrator_column,
        )
        has_docs, has_perp_fields, date_order = (
            self._has_docs,
            self._has_perp_fields,
            self._date_order,
        )
        new_document = self._templates[DOC].fill
        cases: dict[str, _Case] = {}
        problems: list[Problem] = []
        bad_rows: set[int] = set()
        for row in rows:
            n = row.number
            values = row.values
            row_bad = False
            cid = values.get(case_col)
            if cid is not None:
                cid = cid.strip() or None
            if cid is None:
                problems.append(Problem("$.case_id", _MISSING, _needs(case_col), row=n))
                bad_rows.add(n)
                continue
            case = cases.get(cid)
            if case is None:
                case = cases[cid] = _Case(cid)
            case.rows.append(n)

            vid = values.get(victim_col)
            if vid is not None:
                vid = vid.strip() or None
            if vid is None:
                problems.append(
                    Problem("$.victims[].victim_id", _MISSING, _needs(victim_col), row=n)
                )
                row_bad = True
                victim = _Victim(-1)  # a scratch victim so the row's other problems are found too
            else:
                found = case.victims.get(vid)
                if found is None:
                    found = case.victims[vid] = _Victim(len(case.victims))
                victim = found
            pid = values.get(perp_col) if perp_col is not None else None
            if pid is not None:
                pid = pid.strip() or None
            perp: dict[str, Any] = {}
            if pid is not None:
                known = case.perps.get(pid)
                if known is None:
                    known = case.perps[pid] = perp
                perp = known
            doc: dict[str, Any] = {} if has_docs else _NO_DICT
            targets = (case.re, case.ev, victim.fields, victim.idf, doc, perp)
            for path, setter in setters:
                try:
                    setter(values, targets)
                except _Bad as bad:
                    p = path
                    if victim.index >= 0:
                        p = p.replace("$.victims[]", f"$.victims[{victim.index}]", 1)
                    if pid is not None:
                        index = list(case.perps).index(pid)
                        p = p.replace("$.perpetrators[]", f"$.perpetrators[{index}]", 1)
                    problems.append(Problem(p, bad.code, bad.expected, row=n))
                    row_bad = True
            if has_perp_fields and pid is None and perp:
                problems.append(
                    Problem(
                        "$.perpetrators[].perpetrator_id",
                        _MISSING,
                        f"{_needs(perp_col or '')} when a perpetrator column has one",
                        row=n,
                    )
                )
                row_bad = True
            if doc:
                number = doc.get("number")
                if number is not None:
                    docs = victim.idf.setdefault("documents", [])
                    if all(d["number"] != number for d in docs):
                        docs.append(new_document(doc))  # unmapped fields: schema defaults
            if date_order and not case.dates_bad:
                for slot, first, second, path, expected in date_order:
                    start, end = targets[slot].get(first), targets[slot].get(second)
                    if start is not None and end is not None and end < start:
                        problems.append(Problem(path, ReasonCode.OUT_OF_RANGE, expected, row=n))
                        case.dates_bad = row_bad = True
            if row_bad:
                case.bad = True
                bad_rows.add(n)

        records: list[MappedRecord] = []
        for case in cases.values():
            if case.bad:
                for n in case.rows:
                    if n not in bad_rows:
                        problems.append(
                            Problem("$", ReasonCode.INVALID_RECORD, SIBLING_WITHHELD, row=n)
                        )
                continue
            records.append(MappedRecord(case.case_id, tuple(case.rows), self._record(case)))
        problems.sort(key=_row_of)
        return MappedBatch(records, problems)

    def _record(self, case: _Case) -> Record:
        templates = self._templates
        victim, identifiers, perpetrator = (
            templates[VI].fill,
            templates[ID].fill,
            templates[PE].fill,
        )
        victims = []
        for vid, v in case.victims.items():
            fields = victim(v.fields)
            fields["victim_id"] = vid
            if v.idf:
                fields["identifiers"] = identifiers(v.idf)
            victims.append(fields)
        perps = []
        for pid, p in case.perps.items():
            fields = perpetrator(p)
            fields["perpetrator_id"] = pid
            perps.append(fields)
        re_ = templates[RE].fill(case.re)
        re_["source_id"] = self.source_id
        re_["organisation_type"] = self.organisation_type
        return {
            "case_id": case.case_id,
            "reporting_entity": re_,
            "event": templates[EV].fill(case.ev),
            "victims": victims,
            "perpetrators": perps,
        }


# --- validation helpers --------------------------------------------------------------------------

Fail = Callable[[str, str], MappingError]


def _target(path: Any, fail: Fail, where: str) -> Target:
    if not isinstance(path, str) or path not in TARGETS:
        hint = " (set by case_column / victim_column / perpetrator_column / top level)"
        raise fail(where, "not an ICS-TIP target path" + (hint if path in _NOT_TARGETS else ""))
    return TARGETS[path]


def _field_spec(target: Target, entry: Any, fail: Fail, where: str) -> FieldSpec:
    if isinstance(entry, str):  # shorthand: "$.x": column_name
        entry = {"column": entry}
    if not isinstance(entry, dict):
        raise fail(where, "expected {column: ..., ...} or a column name")
    unknown = sorted(str(k) for k in entry if k not in _FIELD_KEYS)
    if unknown:
        raise fail(where, f"unknown key(s) {', '.join(unknown)}; allowed: {_list(_FIELD_KEYS)}")
    column = entry.get("column")
    if not isinstance(column, str) or not column:
        raise fail(where, "column is required (text)")
    typ = entry.get("type")
    if typ is not None and typ != target.kind:
        raise fail(where, f"type {typ!r} does not fit the target, which holds {target.kind!r}")
    fmt = entry.get("format")
    if fmt is not None:
        if target.kind != "date" or not isinstance(fmt, str):
            raise fail(where, "format is for date targets only, as strptime text like %d/%m/%Y")
        try:
            datetime.strptime(_example(fmt), fmt)
        except ValueError:
            raise fail(where, f"format {fmt!r} cannot read back its own dates") from None
    split = entry.get("split")
    if split is not None and (not target.array or not isinstance(split, str) or not split):
        raise fail(where, "split is for list targets only, as a non-empty separator")
    missing = entry.get("missing") or []
    if isinstance(missing, str):
        missing = [missing]
    if not isinstance(missing, list) or not all(isinstance(m, str) for m in missing):
        raise fail(where, "missing is a list of cell values that mean 'not recorded'")
    codes = entry.get("codes")
    table: dict[str, CodeValue] | None = None
    if codes is not None:
        if target.kind not in ("code", "str"):
            raise fail(where, "codes are for code and text targets")
        if not isinstance(codes, dict) or not codes:
            raise fail(where, "codes must map the agency's values to ICS-TIP codes")
        table = {}
        for key, value in codes.items():
            key_text = str(key).strip()
            if not key_text:
                raise fail(where, "an empty agency value cannot be a code (empty cells are null)")
            table[key_text] = _code_value(target, value, fail, f"{where}.codes.{key_text}")
    return FieldSpec(target, column, table, split, fmt, frozenset(m.strip() for m in missing))


def _code_value(target: Target, value: Any, fail: Fail, where: str) -> CodeValue:
    if value is None:
        return None
    if isinstance(value, list):
        if not target.array:
            raise fail(where, "a list of codes needs a list target")
        return [_one_code(target, v, fail, where) for v in value]
    return _one_code(target, value, fail, where)


def _one_code(target: Target, value: Any, fail: Fail, where: str) -> str:
    if not isinstance(value, str):
        raise fail(where, "expected text")
    if target.kind == "code" and value not in target.symbols:
        raise fail(where, f"{value!r} is not an ICS-TIP {target.enum_name} code")
    return value


def _constant(target: Target, value: Any, fail: Fail, where: str) -> Any:
    if target.array:
        items = value if isinstance(value, list) else [value]
        return [_constant_item(target, v, fail, where) for v in items]
    return _constant_item(target, value, fail, where)


def _constant_item(target: Target, value: Any, fail: Fail, where: str) -> Any:
    if value is None:
        raise fail(where, "a constant must have a value (omit it for the schema default)")
    if target.kind == "code":
        return _one_code(target, value, fail, where)
    if target.kind == "int":
        try:
            number = int(str(value))
        except ValueError:
            raise fail(where, "expected a whole number") from None
        lo, hi = target.bounds
        if not lo <= number <= hi:
            raise fail(where, f"expected a whole number from {lo} to {hi}")
        return number
    if target.kind == "date":
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise fail(where, "expected an ISO date like 2024-01-31") from None
    if not isinstance(value, str):
        raise fail(where, "expected text")
    return value


def _list(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


# --- compiled setters ----------------------------------------------------------------------------


class _Bad(Exception):
    """A cell that does not convert: what was expected (never the cell)."""

    __slots__ = ("code", "expected")

    def __init__(self, code: ReasonCode, expected: str) -> None:
        self.code = code
        self.expected = expected


_MISSING = ReasonCode.MISSING_VALUE
_NO_DICT: dict[str, Any] = {}
Targets = tuple[dict[str, Any], ...]
Setter = Callable[[Any, Targets], None]
Convert = Callable[[str], Any]


class _Victim:
    __slots__ = ("fields", "idf", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.fields: dict[str, Any] = {}
        self.idf: dict[str, Any] = {}


class _Case:
    __slots__ = ("bad", "case_id", "dates_bad", "ev", "perps", "re", "rows", "victims")

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        self.rows: list[int] = []
        self.bad = False
        self.dates_bad = False
        self.re: dict[str, Any] = {}
        self.ev: dict[str, Any] = {}
        self.victims: dict[str, _Victim] = {}
        self.perps: dict[str, dict[str, Any]] = {}


def _needs(column: str) -> str:
    return f"a value in column {column!r}"


def _row_of(p: Problem) -> int:
    return p.row if p.row is not None else 0


class _Template:
    """A record's schema defaults (with constants), copied and overlaid with mapped values."""

    __slots__ = ("arrays", "base")

    def __init__(self, container: int, constants: dict[str, Any]) -> None:
        base: dict[str, Any] = {}
        arrays: list[tuple[str, tuple[Any, ...]]] = []
        for name, default, is_array in _SCHEMA.layout[container]:
            if is_array:
                base[name] = None  # keeps the schema's field order; replaced by a fresh list
                arrays.append((name, tuple(constants.get(name, ()))))
            else:
                base[name] = constants.get(name, default)
        self.base = base
        self.arrays = tuple(arrays)

    def fill(self, built: dict[str, Any]) -> Record:
        out = self.base.copy()
        for name, items in self.arrays:
            out[name] = list(items)
        out.update(built)
        return out


def _compile(mapping: Mapping, today: date) -> tuple[tuple[str, Setter], ...]:
    # once per mapping and day: date setters close over today's bound
    cache = mapping._compiled
    setters = cache.get(today)
    if setters is None:
        cache.clear()
        setters = cache[today] = tuple(
            (spec.target.path, _setter(spec, today)) for spec in mapping.fields
        )
    return setters


def _setter(spec: FieldSpec, today: date) -> Setter:
    """One closure per mapped column: read the cell, convert it, store it (first value wins)."""
    t = spec.target
    col, slot, name = spec.column, t.container, t.name
    if t.array:
        elem = _converter(spec, today)
        sep = spec.split

        def set_list(values: Any, targets: Targets) -> None:
            raw = values.get(col)
            if raw is not None:
                vs: list[Any] = []
                for piece in raw.split(sep) if sep else (raw,):
                    v = elem(piece)
                    if v is None:
                        continue
                    if type(v) is list:
                        vs.extend(x for x in v if x not in vs)
                    elif v not in vs:
                        vs.append(v)
                if vs:
                    d = targets[slot]
                    cur = d.get(name)
                    if cur is None:
                        d[name] = vs
                    else:
                        cur.extend(x for x in vs if x not in cur)

        return set_list

    if spec.codes is not None or t.kind == "code":
        # the commonest column kind, so its lookup is inlined rather than a converter call
        table = _code_table(spec)
        lookup = table.get
        expected = f"column {spec.column!r}: " + _expected_codes(spec.codes, t)
        skip = "Unknown" if t.kind == "code" else None  # an explicit Unknown is the default

        def set_code(values: Any, targets: Targets) -> None:
            raw = values.get(col)
            if raw is not None:
                v = lookup(raw, _ABSENT)
                if v is _ABSENT:
                    v = lookup(raw.strip(), _ABSENT)
                    if v is _ABSENT:
                        raise _Bad(ReasonCode.UNKNOWN_CODE, expected)
                if v is not None and v != skip:
                    d = targets[slot]
                    if name not in d:
                        d[name] = v

        return set_code

    if t.kind == "str":
        missing = spec.missing

        def set_text(values: Any, targets: Targets) -> None:
            raw = values.get(col)
            if raw is not None:
                v = raw.strip()
                if v and v not in missing:
                    d = targets[slot]
                    if name not in d:
                        d[name] = v

        return set_text

    convert = _converter(spec, today)

    def set_one(values: Any, targets: Targets) -> None:
        raw = values.get(col)
        if raw is not None:
            v = convert(raw)
            if v is not None:
                d = targets[slot]
                if name not in d:
                    d[name] = v

    return set_one


_ABSENT = object()


def _code_table(spec: FieldSpec) -> dict[str, Any]:
    t = spec.target
    table: dict[str, Any] = (
        dict(spec.codes) if spec.codes is not None else {s: s for s in t.symbols}
    )
    table[""] = None
    for m in spec.missing:
        table[m] = None
    return table


def _converter(spec: FieldSpec, today: date) -> Convert:
    """Cell text → value (None: not recorded); raises _Bad with what was expected."""
    t = spec.target
    where = f"column {spec.column!r}: "
    missing = spec.missing
    if spec.codes is not None or t.kind == "code":
        table = _code_table(spec)
        expected = where + _expected_codes(spec.codes, t)

        def code(raw: str) -> Any:
            try:
                return table[raw.strip()]
            except KeyError:
                raise _Bad(ReasonCode.UNKNOWN_CODE, expected) from None

        return code
    if t.kind == "int":
        lo, hi = t.bounds
        bad_format = where + "a whole number"
        out_of_range = where + f"a whole number from {lo} to {hi}"

        def integer(raw: str) -> int | None:
            s = raw.strip()
            if not s or s in missing:
                return None
            try:
                v = int(s)
            except ValueError:
                raise _Bad(ReasonCode.BAD_FORMAT, bad_format) from None
            if v < lo or v > hi:
                raise _Bad(ReasonCode.OUT_OF_RANGE, out_of_range)
            return v

        return integer
    if t.kind == "date":
        return _date_converter(spec.format or "%Y-%m-%d", where, missing, today)

    def text(raw: str) -> str | None:
        s = raw.strip()
        return None if not s or s in missing else s

    return text


def _expected_codes(codes: dict[str, CodeValue] | None, t: Target) -> str:
    if codes is None:
        return f"an ICS-TIP {t.enum_name} code"
    keys = sorted(codes)
    if len(keys) > 12:
        return f"one of the {len(keys)} values listed in the mapping's codes"
    return "one of " + ", ".join(keys)


_DATE_PART = re.compile(r"%[dmYb]|%%|%.|[^%]+", re.S)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


def _example(fmt: str) -> str:
    """31 January 2024 in ``fmt``, with English month names whatever the C locale."""
    day = date(2024, 1, 31)
    return day.strftime(fmt.replace("%b", "Jan").replace("%B", "January"))


def _date_converter(fmt: str, where: str, missing: frozenset[str], today: date) -> Convert:
    bad_format = where + f"a date as {fmt} (e.g. {_example(fmt)})"
    out_of_range = where + date_range_text(today)
    # fast path: formats made of %d, %m or %b (English month abbreviation), %Y and literal
    # separators become one regex; strptime is 10x slower
    order: list[str] = []
    pattern = ""
    fast = True
    for part in _DATE_PART.findall(fmt):
        if part in ("%d", "%m"):
            pattern += r"(\d{1,2})"
            order.append(part[1])
        elif part == "%b":
            pattern += r"([A-Za-z]{3})"
            order.append("m")
        elif part == "%Y":
            pattern += r"(\d{4})"
            order.append("Y")
        elif part == "%%":
            pattern += "%"
        elif part.startswith("%"):
            fast = False
            break
        else:
            pattern += re.escape(part)
    if fast and sorted(order) == ["Y", "d", "m"]:
        match = re.compile(pattern, re.ASCII).fullmatch
        ymd = (order.index("Y") + 1, order.index("m") + 1, order.index("d") + 1)
        named_month = "%b" in fmt

        def parse(s: str) -> date:
            m = match(s)
            if m is None:
                raise ValueError
            year, month, day = m.group(*ymd)
            number = _MONTHS.get(month.lower(), 0) if named_month else int(month)
            return date(int(year), number, int(day))

    else:

        def parse(s: str) -> date:
            return datetime.strptime(s, fmt).date()

    def convert(raw: str) -> date | None:
        s = raw.strip()
        if not s or s in missing:
            return None
        try:
            d = parse(s)
        except ValueError:
            raise _Bad(ReasonCode.BAD_FORMAT, bad_format) from None
        if d < EARLIEST_DATE or d > today:  # rules.date_in_range, inlined
            raise _Bad(ReasonCode.OUT_OF_RANGE, out_of_range)
        return d

    return convert
