"""Agency export rows → ICS-TIP case records, through a YAML mapping file (see ``mapping.md``).

The mapping file is validated once, against the case record schema itself, and compiled into a list
of small setter closures; mapping a row is then one dictionary lookup and one conversion per mapped
column. Problems name the row, the ICS-TIP path and what was expected — never the cell's value.

Before rows are mapped, :meth:`Mapping.bind` checks the mapping against the export's header: a
mapped column the export lacks makes the mapping invalid (:class:`MissingColumnError`), so a typo
can never publish every victim with an ``Unknown`` field.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from producers.age_bands import MISSING_BANDS, AgeBand, AgeBandError, parse_age_band
from producers.codes import CodeListError, loose, named_codes
from producers.readers import FORMATS, CellDate, InputOptions, Row
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

__all__ = [
    "AGE_RANGE",
    "FALSY",
    "ORGANISATION_TYPE",
    "ROW_HASH",
    "TARGETS",
    "TRUTHY",
    "DryRun",
    "FieldSpec",
    "MappedBatch",
    "MappedRecord",
    "MappedStream",
    "Mapping",
    "MappingError",
    "MissingColumnError",
    "SourceMismatchError",
]

Record = dict[str, Any]

SIBLING_WITHHELD = "withheld: another row of this case is invalid"
#: Cell values a wide yes/no column counts as yes / no unless the mapping says otherwise
#: (compared case-insensitively).
TRUTHY = frozenset({"1", "1.0", "true", "yes", "y", "x"})
FALSY = frozenset({"0", "0.0", "false", "no", "n"})
#: The ``ids`` value for exports without an id column: ids are hashes of the row's content.
ROW_HASH = "row_hash"


class MappingError(Exception):
    """The mapping file itself is wrong. ``code`` is always ``BAD_MAPPING``."""

    code: ReasonCode = ReasonCode.BAD_MAPPING

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingColumnError(MappingError):
    """Columns the mapping reads that the export's header lacks (a typo, a renamed column).

    ``missing`` maps each such column to the closest header names (possibly none); ``where``
    to the mapping key that names it. Column names only, never a cell.
    """

    def __init__(self, missing: dict[str, tuple[str, ...]], where: dict[str, str]) -> None:
        parts = []
        for column, close in missing.items():
            hint = f" (closest: {', '.join(repr(c) for c in close)})" if close else ""
            parts.append(f"{where[column]}: column {column!r} is not in the export's header{hint}")
        super().__init__("; ".join(parts))
        self.missing = missing
        self.where = where


class SourceMismatchError(MappingError):
    """The mapping names a ``source_id`` other than the source publishing with it."""


@dataclass(frozen=True, slots=True)
class MappedRecord:
    """One case record built from the rows (numbers) that share its case id."""

    case_id: str
    rows: tuple[int, ...]
    record: Record


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a dry run saw, per target path: rows that gave it a value, and the values of coded
    fields that no code matched (a ``default:`` one included), by frequency."""

    filled: Counter[str]
    unmapped: dict[str, Counter[str]]


@dataclass(frozen=True, slots=True)
class MappedBatch:
    """The records of every case whose rows were all valid, and the problems of the rest.

    ``defaulted`` counts, per target path, the values no code matched that became the field's
    ``default:`` code (reported, not withheld). ``dry_run`` is set by ``map_rows(dry_run=True)``.
    """

    records: list[MappedRecord]
    problems: list[Problem]
    defaulted: dict[str, int] = field(default_factory=dict)
    dry_run: DryRun | None = None


class MappedStream:
    """The records of an export's valid cases as they close (see :meth:`Mapping.map_stream`);
    ``problems`` and ``defaulted`` grow as it is read. Read once."""

    def __init__(
        self, records: Iterator[MappedRecord], problems: list[Problem], defaulted: Counter[str]
    ) -> None:
        self._records = records
        self.problems = problems
        self._defaulted = defaulted

    @property
    def defaulted(self) -> dict[str, int]:
        return dict(self._defaulted)

    def __iter__(self) -> Iterator[MappedRecord]:
        yield from self._records
        self.problems.sort(key=_row_of)


# --- the targets, read from the case record schema's model ---------------------------------------

# containers a target lives in; a row's setters write into ``targets[container]``
RE, EV, VI, ID, DOC, PE, SID = range(7)
_CONTAINERS: tuple[tuple[int, str], ...] = (
    # container, the path of its record in the case record schema
    (RE, "$.reporting_entity"),
    (EV, "$.event"),
    (VI, "$.victims[]"),
    (ID, "$.victims[].identifiers"),
    (DOC, "$.victims[].identifiers.documents[]"),
    (PE, "$.perpetrators[]"),
    (SID, "$.victims[].identifiers.shared_ids[]"),
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
_NOT_TARGETS = SET_BY_MAPPER | {
    "$.victims[].identifiers",
    "$.victims[].identifiers.documents",
    "$.victims[].identifiers.shared_ids",
}
SHARED_VALUE = "$.victims[].identifiers.shared_ids[].value"
SHARED_SCHEME = "$.victims[].identifiers.shared_ids[].scheme"


@dataclass(frozen=True, slots=True)
class Target:
    """One ICS-TIP field a mapping may fill: where it lives and what it holds."""

    path: str
    container: int
    name: str
    kind: str  # "code" (an enum), "int", "date", "str" or "range" (an age band)
    array: bool
    symbols: frozenset[str]  # the enum's codes; empty unless kind == "code"
    enum_name: str
    bounds: tuple[int, int] = (0, 0)  # inclusive, from schemas.rules; for kind == "int" only
    #: a target that fills several fields of its record from one value (kind "range": the
    #: lower and upper bound); empty for a target that is one field (``name``)
    parts: tuple[str, ...] = ()


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
#: An age band in one column (``18--20``, ``45+``, ``<18``; ``producers/age_bands.py``) into the
#: victim's age range: both bounds from one cell. Mapping it excludes mapping the bounds.
AGE_RANGE = Target(
    "$.victims[].age_range",
    VI,
    "age_range",
    "range",
    False,
    frozenset(),
    "",
    parts=("age_range_lower", "age_range_upper"),
)
_PART_PATHS = {AGE_RANGE.path: ("$.victims[].age_range_lower", "$.victims[].age_range_upper")}
assert all(p in _SCHEMA.targets for paths in _PART_PATHS.values() for p in paths)
TARGETS: dict[str, Target] = {**_SCHEMA.targets, AGE_RANGE.path: AGE_RANGE}
"""Every path a mapping file may fill, e.g. ``$.victims[].sex``; besides the case record's own
fields, the composite :data:`AGE_RANGE`."""

#: The organisation type as a per-row field (``organisation_type: {column: ...}``); not in TARGETS.
ORGANISATION_TYPE = Target(
    "$.reporting_entity.organisation_type",
    RE,
    "organisation_type",
    "code",
    False,
    _SCHEMA.organisation_types,
    "OrganisationType",
)

# --- the mapping file ----------------------------------------------------------------------------

_TOP_KEYS = frozenset(
    {
        "source_id",
        "organisation_type",
        "case_column",
        "victim_column",
        "perpetrator_column",
        "ids",
        "match",
        "constants",
        "fields",
        "description",
        "encoding",
        "delimiter",
        "sheet",
        "format",
    }
)
_FIELD_KEYS = frozenset(
    {
        "column",
        "columns",
        "type",
        "format",
        "codes",
        "split",
        "missing",
        "default",
        "multiple",
        "truthy",
        "falsy",
        "match",
    }
)
_ORG_KEYS = frozenset({"column", "codes", "default", "missing", "match"})
_MATCH = ("loose", "exact")
CodeValue = str | list[str] | None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One entry of ``fields``: fill ``target`` from ``column`` (or from several ``columns``).

    ``flags`` (wide yes/no columns) maps each column to the codes it adds when its cell is in
    ``truthy``. ``loose`` is case-insensitive, space-tolerant matching of codes and ``missing``.
    """

    target: Target
    column: str
    codes: dict[str, CodeValue] | None = None
    split: str | None = None
    format: str | None = None
    missing: frozenset[str] = frozenset()
    columns: tuple[str, ...] = ()
    flags: dict[str, tuple[str, ...]] | None = None
    truthy: frozenset[str] = TRUTHY
    falsy: frozenset[str] = FALSY
    default: str | None = None
    multiple: str | None = None
    loose: bool = True

    @property
    def read_columns(self) -> tuple[str, ...]:
        """Every column this entry reads."""
        return self.columns or (self.column,)


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
    :meth:`bind` then checks it against an export's header and fills in what comes from the
    export's format and the publishing source.
    """

    def __init__(
        self,
        *,
        source_id: str | None,
        organisation_type: str | None,
        case_column: str | None,
        victim_column: str | None,
        perpetrator_column: str | None,
        fields: tuple[FieldSpec, ...],
        constants: dict[str, Any],
        organisation_field: FieldSpec | None = None,
        input_options: InputOptions | None = None,
    ) -> None:
        if (organisation_type is None) == (organisation_field is None):
            raise ValueError("an organisation type, or a field that gives it per row")
        if case_column is None and victim_column is not None:
            raise ValueError("a victim column needs a case column (ids otherwise hash rows)")
        self.source_id = source_id
        self.organisation_type = organisation_type
        self.organisation_field = organisation_field
        self.case_column = case_column
        #: the victim id column; the case column serves as both when the mapping names none
        self.victim_column = victim_column or case_column
        self.perpetrator_column = perpetrator_column
        self.fields = fields
        self.constants = constants
        self.input_options = input_options or InputOptions()
        # per container: the schema defaults with this mapping's constants applied
        per_container: dict[int, dict[str, Any]] = {c: {} for c, _ in _CONTAINERS}
        for path, value in constants.items():
            t = TARGETS[path]
            per_container[t.container][t.name] = value
        self._templates = {c: _Template(c, v) for c, v in per_container.items()}
        self._compiled: dict[date, tuple[tuple[str, Setter], ...]] = {}
        self._has_docs = any(f.target.container == DOC for f in fields)
        self._has_shared = any(f.target.container == SID for f in fields)
        self._has_perp_fields = any(f.target.container == PE for f in fields)
        mapped = {f.target.path for f in fields}
        # rules.DATE_ORDER pairs this mapping fills from columns: (container, first, second,
        # path of the second, what it must be)
        self._date_order = tuple(
            (TARGETS[a].container, TARGETS[a].name, TARGETS[b].name, b, date_order_text(a))
            for a, b in DATE_ORDER
            if a in mapped and b in mapped
        )
        # without an id column, ids hash the mapped cells (sorted by column: stable across exports
        # that add, drop or reorder unmapped columns)
        self._hash_columns = tuple(sorted(self.columns))

    @property
    def ids_from_content(self) -> bool:
        """True when case and victim ids are hashes of each row's mapped cells (``ids: row_hash``)."""
        return self.case_column is None

    def _replace(self, **changes: Any) -> Mapping:
        args: dict[str, Any] = {
            "source_id": self.source_id,
            "organisation_type": self.organisation_type,
            "case_column": self.case_column,
            "victim_column": self.victim_column if self.case_column is not None else None,
            "perpetrator_column": self.perpetrator_column,
            "fields": self.fields,
            "constants": self.constants,
            "organisation_field": self.organisation_field,
            "input_options": self.input_options,
        }
        args.update(changes)
        return Mapping(**args)

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
        source_id = data.get("source_id")
        if source_id is not None and (
            not isinstance(source_id, str) or not is_source_id(source_id)
        ):
            raise fail("source_id", f"expected {SOURCE_ID_PATTERN} (the whole text)")
        match = data.get("match", "loose")
        if match not in _MATCH:
            raise fail("match", "expected loose (the default) or exact")
        is_loose = match == "loose"

        org_raw = data.get("organisation_type")
        org: str | None = None
        org_field: FieldSpec | None = None
        if isinstance(org_raw, dict):
            org_field = _organisation_field(org_raw, is_loose, fail)
        elif isinstance(org_raw, str) and org_raw in _SCHEMA.organisation_types:
            org = org_raw
        else:
            raise fail(
                "organisation_type",
                f"expected one of {_list(_SCHEMA.organisation_types)}, "
                "or {column: ...} to read it from each row",
            )

        ids = data.get("ids")
        case_col = data.get("case_column")
        victim_col = data.get("victim_column")
        if ids is not None:
            if ids != ROW_HASH:
                raise fail("ids", f"expected {ROW_HASH} (ids hash each row's content)")
            if case_col is not None or victim_col is not None:
                raise fail("ids", "row_hash replaces case_column and victim_column")
        else:
            if not isinstance(case_col, str) or not case_col:
                raise fail("case_column", f"required, expected text (or ids: {ROW_HASH})")
            if victim_col is not None and (not isinstance(victim_col, str) or not victim_col):
                raise fail("victim_column", "expected text")
        perp_col = data.get("perpetrator_column")
        if perp_col is not None and (not isinstance(perp_col, str) or not perp_col):
            raise fail("perpetrator_column", "expected text")
        raw_fields = data.get("fields") or {}
        if not isinstance(raw_fields, dict):
            raise fail("fields", "expected a mapping of ICS-TIP paths to field entries")
        raw_constants = data.get("constants") or {}
        if not isinstance(raw_constants, dict):
            raise fail("constants", "expected a mapping of ICS-TIP paths to values")
        options = _input_options(data, fail)

        specs: list[FieldSpec] = []
        for path, entry in raw_fields.items():
            where = f"fields.{path}"
            target = _target(path, fail, where)
            specs.append(_field_spec(target, entry, is_loose, fail, where))
        for composite, part_paths in _PART_PATHS.items():
            both = [p for p in part_paths if p in raw_fields or p in raw_constants]
            if composite in raw_fields and both:
                raise fail(
                    f"fields.{composite}",
                    f"fills {', '.join(part_paths)}: map it or them, not both",
                )
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
            if path == SHARED_VALUE:
                raise fail(where, "a shared identifier's value comes from a column only")
            if target.parts:
                raise fail(where, "set the fields it fills as constants instead")
            constants[path] = _constant(target, value, fail, where)

        return cls(
            source_id=source_id,
            organisation_type=org,
            case_column=case_col,
            victim_column=victim_col,
            perpetrator_column=perp_col,
            fields=tuple(specs),
            constants=constants,
            organisation_field=org_field,
            input_options=options,
        )

    @property
    def columns(self) -> frozenset[str]:
        """Every export column this mapping reads."""
        return frozenset(self._column_keys())

    def _column_keys(self) -> dict[str, str]:
        """Every column this mapping reads → the mapping key that names it (first one)."""
        keys: dict[str, str] = {}
        if self.case_column is not None:
            keys[self.case_column] = "case_column"
            if self.victim_column is not None:
                keys.setdefault(self.victim_column, "victim_column")
        if self.perpetrator_column:
            keys.setdefault(self.perpetrator_column, "perpetrator_column")
        if self.organisation_field is not None:
            keys.setdefault(self.organisation_field.column, "organisation_type")
        for f in self.fields:
            for c in f.read_columns:
                keys.setdefault(c, f"fields.{f.target.path}")
        return keys

    # binding to a source and an export ---------------------------------------------------------

    def for_source(self, source_id: str) -> Mapping:
        """This mapping for ``source_id``: the mapping's own ``source_id``, if it has one, must
        be the same (:class:`SourceMismatchError` otherwise)."""
        if self.source_id is not None and self.source_id != source_id:
            raise SourceMismatchError(
                f"the mapping is for source {self.source_id}, not {source_id}"
            )
        return self if self.source_id == source_id else self._replace(source_id=source_id)

    def bind(
        self,
        header: Sequence[str],
        *,
        list_separator: str | None = None,
        short_names: bool = False,
    ) -> Mapping:
        """This mapping checked against an export's ``header``, ready for its rows.

        Every column the mapping reads must be in the header, or :class:`MissingColumnError`
        names each missing one with the closest header names. ``short_names`` (ODK exports) lets
        a mapped ``field`` match a header's ``group/field`` when exactly one header ends so.
        ``list_separator`` (the format's multi-select separator) becomes the ``split`` of list
        fields without one, and of single-valued fields with a ``multiple:`` rule.
        """
        present = set(header)
        rename: dict[str, str] = {}
        missing: dict[str, tuple[str, ...]] = {}
        keys = self._column_keys()
        for column in keys:
            if column in present:
                continue
            if short_names:
                ends = [h for h in header if h.rsplit("/", 1)[-1] == column]
                if len(ends) == 1:
                    rename[column] = ends[0]
                    continue
            missing[column] = _closest(column, header)
        if missing:
            raise MissingColumnError(missing, {c: keys[c] for c in missing})
        if not rename and list_separator is None:
            return self

        def col(name: str | None) -> str | None:
            return None if name is None else rename.get(name, name)

        def rebind(spec: FieldSpec) -> FieldSpec:
            split = spec.split
            if split is None and (spec.target.array or spec.multiple is not None):
                split = list_separator
            flags = (
                {rename.get(c, c): codes for c, codes in spec.flags.items()}
                if spec.flags is not None
                else None
            )
            return replace(
                spec,
                column=rename.get(spec.column, spec.column),
                columns=tuple(rename.get(c, c) for c in spec.columns),
                flags=flags,
                split=split,
            )

        org_field = self.organisation_field
        return self._replace(
            case_column=col(self.case_column),
            victim_column=col(self.victim_column) if self.case_column is not None else None,
            perpetrator_column=col(self.perpetrator_column),
            fields=tuple(rebind(f) for f in self.fields),
            organisation_field=rebind(org_field) if org_field is not None else None,
        )

    # mapping ---------------------------------------------------------------------------------

    def map_rows(
        self, rows: Iterable[Row], *, today: date | None = None, dry_run: bool = False
    ) -> MappedBatch:
        """Group rows by case into case records; withhold every case that has an invalid row.

        Rows with the same ``case_column`` value (anywhere in the export) form one record; rows
        with the same ``victim_column`` value within a case are one victim (likewise
        perpetrators). Where rows disagree on a single-valued field the first non-empty value
        wins; multi-valued fields are the union in order of appearance. A case with any invalid
        row is not emitted: the invalid row gets its problems, each sibling row one
        ``INVALID_RECORD`` problem. ``today`` bounds dates (no date may be later); it defaults
        to the current date. Problems come sorted by row. ``dry_run`` also collects
        :class:`DryRun` counts (unmatched values of coded fields included) into the batch.

        Raises:
            MappingError: the mapping names no ``source_id`` (see :meth:`for_source`).
        """
        if self.source_id is None:
            raise MappingError("the mapping names no source_id: bind it with for_source()")
        return self._map(rows, today or date.today(), dry_run)

    def case_of(self, values: Any) -> str | None:
        """The case a row's cells belong to (``None``: the row names none): its ``case_column``
        value, trimmed, or without one the hash of its mapped cells — as :meth:`map_rows`
        groups rows."""
        case_col = self.case_column
        if case_col is None:
            return _row_hash(values, self._hash_columns)
        cid = values.get(case_col)
        return (cid.strip() or None) if cid is not None else None

    def map_stream(
        self, rows: Iterable[Row], closes: Callable[[int], bool], *, today: date | None = None
    ) -> MappedStream:
        """:meth:`map_rows` for an export too large to hold: records come out as their cases
        close. ``closes(n)`` says whether data row ``n`` is the last row of its case in the
        export (see :meth:`case_of`); a case is built, checked and emitted at that row and then
        forgotten, so memory holds only the cases still open. A case whose last row was not
        said to close it is emitted at the end. The stream's ``problems`` and ``defaulted``
        grow as it is read (``problems`` sorted by row once it is exhausted).

        Raises:
            MappingError: the mapping names no ``source_id`` (see :meth:`for_source`).
        """
        if self.source_id is None:
            raise MappingError("the mapping names no source_id: bind it with for_source()")
        notes = _Notes(False)
        problems: list[Problem] = []
        records = self._stream(rows, today or date.today(), notes, problems, closes)
        return MappedStream(records, problems, notes.defaulted)

    def _map(self, rows: Iterable[Row], today: date, dry_run: bool) -> MappedBatch:
        notes = _Notes(dry_run)
        problems: list[Problem] = []
        records = list(self._stream(rows, today, notes, problems, None))
        problems.sort(key=_row_of)
        dry = DryRun(notes.filled, notes.unmapped) if dry_run else None
        return MappedBatch(records, problems, dict(notes.defaulted), dry)

    def _stream(
        self,
        rows: Iterable[Row],
        today: date,
        notes: _Notes,
        problems: list[Problem],
        closes: Callable[[int], bool] | None,
    ) -> Iterator[MappedRecord]:
        setters = _compile(self, today)
        case_col, victim_col, perp_col = (
            self.case_column,
            self.victim_column,
            self.perpetrator_column,
        )
        hash_columns = self._hash_columns if case_col is None else ()
        has_docs, has_perp_fields, date_order = (
            self._has_docs,
            self._has_perp_fields,
            self._date_order,
        )
        new_document = self._templates[DOC].fill
        new_shared = self._templates[SID].fill
        has_shared = self._has_shared
        cases: dict[str, _Case] = {}
        for row in rows:
            n = row.number
            values = row.values
            row_bad = False
            cid: str | None
            vid: str | None
            if case_col is None:
                cid = vid = _row_hash(values, hash_columns)
            else:
                cid = values.get(case_col)
                if cid is not None:
                    cid = cid.strip() or None
                if cid is None:
                    problems.append(Problem("$.case_id", _MISSING, _needs(case_col), row=n))
                    continue
                vid = values.get(victim_col) if victim_col is not None else None
                if vid is not None:
                    vid = vid.strip() or None
            case = cases.get(cid)
            if case is None:
                case = cases[cid] = _Case(cid)
            case.rows.append(n)

            if vid is None:
                problems.append(
                    Problem("$.victims[].victim_id", _MISSING, _needs(victim_col or ""), row=n)
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
            shared: dict[str, Any] = {} if has_shared else _NO_DICT
            targets = (case.re, case.ev, victim.fields, victim.idf, doc, perp, shared)
            for path, setter in setters:
                try:
                    setter(values, targets, notes)
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
            if shared and shared.get("value") is not None:
                one = new_shared(shared)  # the scheme may be the mapping's constant
                if not isinstance(one.get("scheme"), str) or not one["scheme"]:
                    problems.append(
                        Problem(
                            SHARED_SCHEME,
                            _MISSING,
                            "a scheme (a column or a constant, e.g. nrm_referral) for the value",
                            row=n,
                        )
                    )
                    row_bad = True
                else:
                    ids = victim.idf.setdefault("shared_ids", [])
                    if one not in ids:
                        ids.append(one)
            if date_order and not case.dates_bad:
                for slot, first, second, path, expected in date_order:
                    start, end = targets[slot].get(first), targets[slot].get(second)
                    if start is not None and end is not None and end < start:
                        problems.append(Problem(path, ReasonCode.OUT_OF_RANGE, expected, row=n))
                        case.dates_bad = row_bad = True
            if row_bad:
                case.bad = True
                case.bad_rows.add(n)
            if closes is not None and closes(n):
                del cases[cid]
                if not case.bad:
                    yield MappedRecord(case.case_id, tuple(case.rows), self._record(case))
                else:
                    _withhold(case, problems)
        for case in cases.values():
            if case.bad:
                _withhold(case, problems)
                continue
            yield MappedRecord(case.case_id, tuple(case.rows), self._record(case))

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
        if self.organisation_type is not None:
            re_["organisation_type"] = self.organisation_type
        return {
            "case_id": case.case_id,
            "reporting_entity": re_,
            "event": templates[EV].fill(case.ev),
            "victims": victims,
            "perpetrators": perps,
        }


def _row_hash(values: Any, columns: tuple[str, ...]) -> str:
    """The id of a row without an id column: a hash of its mapped cells (trimmed; empty = '')."""
    h = hashlib.sha256(b"tiptrust/row-id/v1")
    for c in columns:
        cell = values.get(c)
        h.update(b"\x1e" + c.encode() + b"\x1f" + (cell.strip() if cell else "").encode())
    return "row-" + h.hexdigest()[:24]


def _closest(column: str, header: Sequence[str]) -> tuple[str, ...]:
    """Up to three header names close to ``column``: same name but for case and spaces first."""
    same = [h for h in header if loose(h) == loose(column)]
    if len(same) >= 3 or not header:
        return tuple(same[:3])
    from rapidfuzz import fuzz, process  # only when a column is missing: keeps start-up light

    scored = process.extract(column, list(header), scorer=fuzz.WRatio, limit=5, score_cutoff=70)
    fuzzy = [name for name, _, _ in scored if name not in same]
    return tuple((same + fuzzy)[:3])


# --- validation helpers --------------------------------------------------------------------------

Fail = Callable[[str, str], MappingError]


def _target(path: Any, fail: Fail, where: str) -> Target:
    if not isinstance(path, str) or path not in TARGETS:
        if path in _NOT_TARGETS:
            hint = " (set by case_column / victim_column / perpetrator_column / top level)"
        else:
            import difflib

            close = difflib.get_close_matches(str(path), list(TARGETS), n=3, cutoff=0.6)
            hint = f" (closest: {', '.join(close)})" if close else ""
        raise fail(where, "not an ICS-TIP target path" + hint)
    return TARGETS[path]


def _input_options(data: dict[str, Any], fail: Fail) -> InputOptions:
    for key in ("encoding", "delimiter", "sheet", "format"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise fail(key, "expected text")
    fmt = data.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise fail("format", f"expected one of {', '.join(FORMATS)}")
    from producers.readers import ReaderError

    options = InputOptions(data.get("encoding"), data.get("delimiter"), data.get("sheet"), fmt)
    try:
        return options.checked()
    except ReaderError as e:
        key, _, message = e.message.partition(": ")
        raise fail(key, message) from None


def _organisation_field(entry: dict[str, Any], is_loose: bool, fail: Fail) -> FieldSpec:
    where = "organisation_type"
    unknown = sorted(str(k) for k in entry if k not in _ORG_KEYS)
    if unknown:
        raise fail(where, f"unknown key(s) {', '.join(unknown)}; allowed: {_list(_ORG_KEYS)}")
    return _field_spec(ORGANISATION_TYPE, entry, is_loose, fail, where)


def _field_spec(target: Target, entry: Any, is_loose: bool, fail: Fail, where: str) -> FieldSpec:
    if isinstance(entry, str):  # shorthand: "$.x": column_name
        entry = {"column": entry}
    if not isinstance(entry, dict):
        raise fail(where, "expected {column: ..., ...} or a column name")
    unknown = sorted(str(k) for k in entry if k not in _FIELD_KEYS)
    if unknown:
        raise fail(where, f"unknown key(s) {', '.join(unknown)}; allowed: {_list(_FIELD_KEYS)}")
    match = entry.get("match")
    if match is not None:
        if match not in _MATCH:
            raise fail(where, "match is loose or exact")
        is_loose = match == "loose"
    column, columns, flags = _columns_of(target, entry, fail, where)
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
    multiple = entry.get("multiple")
    if multiple is not None:
        if target.array:
            raise fail(where, "multiple is for single-valued targets (list targets keep them all)")
        if target.kind != "code" or not isinstance(multiple, str):
            raise fail(where, "multiple is for code targets: first, reject or a code")
        if multiple not in ("first", "reject"):
            _one_code(target, multiple, fail, f"{where}.multiple")
    split = entry.get("split")
    if split is not None and (
        not (target.array or multiple is not None) or not isinstance(split, str) or not split
    ):
        raise fail(
            where,
            "split is for list targets (or single-valued ones with multiple:), "
            "as a non-empty separator",
        )
    missing = _text_list(entry.get("missing"), fail, where, "missing")
    truthy = _text_list(entry.get("truthy"), fail, where, "truthy")
    falsy = _text_list(entry.get("falsy"), fail, where, "falsy")
    if (truthy or falsy) and flags is None:
        raise fail(where, "truthy and falsy are for yes/no columns (columns: {column: code})")
    truthy_set = frozenset(_key(v, is_loose) for v in truthy) if truthy else TRUTHY
    falsy_set = frozenset(_key(v, is_loose) for v in falsy) if falsy else FALSY
    if truthy_set & falsy_set:
        raise fail(where, "a value cannot be both truthy and falsy")
    codes = entry.get("codes")
    table: dict[str, CodeValue] | None = None
    if codes is not None:
        if target.kind not in ("code", "str", "range"):
            raise fail(where, "codes are for code, text and age band targets")
        if flags is not None:
            raise fail(where, "yes/no columns name their codes in columns: {column: code}")
        table = _codes_table(target, codes, is_loose, fail, where)
    default = entry.get("default")
    if default is not None:
        if target.kind != "code":
            raise fail(where, "default is for code targets (the code of unlisted values)")
        if flags is not None:
            raise fail(where, "yes/no columns have no default (their values are yes or no)")
        default = _one_code(target, default, fail, f"{where}.default")
    return FieldSpec(
        target,
        column,
        table,
        split,
        fmt,
        frozenset(m.strip() for m in missing),
        columns,
        flags,
        truthy_set,
        falsy_set,
        default,
        multiple,
        is_loose,
    )


def _columns_of(
    target: Target, entry: dict[str, Any], fail: Fail, where: str
) -> tuple[str, tuple[str, ...], dict[str, tuple[str, ...]] | None]:
    """(first column, every column, yes/no columns → codes) of a field entry."""
    column = entry.get("column")
    many = entry.get("columns")
    if many is None:
        if not isinstance(column, str) or not column:
            raise fail(where, "column is required (text)")
        return column, (column,), None
    if column is not None:
        raise fail(where, "column and columns exclude each other")
    if not target.array:
        raise fail(where, "columns is for list targets (several columns into one list)")
    if isinstance(many, list) and many and all(isinstance(c, str) and c for c in many):
        if len(set(many)) != len(many):
            raise fail(where, "columns lists a column twice")
        return many[0], tuple(many), None
    if isinstance(many, dict) and many:
        if target.kind != "code":
            raise fail(where, "yes/no columns are for code targets")
        flags: dict[str, tuple[str, ...]] = {}
        for col, value in many.items():
            if not isinstance(col, str) or not col:
                raise fail(where, "columns: column names are text")
            codes = value if isinstance(value, list) else [value]
            if not codes:
                raise fail(f"{where}.columns.{col}", "expected a code or a list of codes")
            flags[col] = tuple(_one_code(target, c, fail, f"{where}.columns.{col}") for c in codes)
        first = next(iter(flags))
        return first, tuple(flags), flags
    raise fail(
        where,
        "columns is a list of columns, or {column: code} for yes/no columns (1/0, yes/no, true/false)",
    )


def _text_list(value: Any, fail: Fail, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise fail(where, f"{key} is a list of cell values")
    return value


def _key(value: str, is_loose: bool) -> str:
    return loose(value) if is_loose else value.strip()


def _codes_table(
    target: Target, codes: Any, is_loose: bool, fail: Fail, where: str
) -> dict[str, CodeValue]:
    """``codes:`` as a table: a mapping, a named list (``htcds:Gender``, ``ics-tip``), or a list
    of both merged in order (later entries win)."""
    parts = codes if isinstance(codes, list) else [codes]
    if not parts:
        raise fail(where, "codes must map the agency's values to ICS-TIP codes")
    table: dict[str, CodeValue] = {}
    for part in parts:
        if isinstance(part, str):
            if target.kind != "code":
                raise fail(where, "named code lists are for code targets")
            try:
                table.update(named_codes(part, target.symbols, target.enum_name))
            except CodeListError as e:
                raise fail(f"{where}.codes", str(e)) from None
        elif isinstance(part, dict) and part:
            for key, value in part.items():
                key_text = str(key).strip()
                if not key_text:
                    raise fail(
                        where, "an empty agency value cannot be a code (empty cells are null)"
                    )
                table[key_text] = _code_value(target, value, fail, f"{where}.codes.{key_text}")
        else:
            raise fail(
                where,
                "codes must map the agency's values to ICS-TIP codes, or name a code list "
                "(htcds:<list>, ics-tip)",
            )
    if is_loose:
        seen: dict[str, tuple[str, CodeValue]] = {}
        for key_text, value in table.items():
            k = loose(key_text)
            if k in seen and seen[k][1] != value:
                raise fail(
                    f"{where}.codes",
                    f"{seen[k][0]!r} and {key_text!r} differ only in case or spaces but map "
                    "to different codes (set match: exact to tell them apart)",
                )
            seen.setdefault(k, (key_text, value))
    return table


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
    if target.kind == "range":
        try:
            band = parse_age_band(value)
        except AgeBandError as e:
            raise fail(where, f"expected {e.expected}") from None
        if band is None:
            raise fail(where, "a missing age band is listed under missing:, not codes")
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


class _Notes:
    """What one ``map_rows`` call counts besides problems (dry-run counts only if asked)."""

    __slots__ = ("defaulted", "dry", "filled", "unmapped")

    def __init__(self, dry: bool) -> None:
        self.dry = dry
        self.defaulted: Counter[str] = Counter()
        self.filled: Counter[str] = Counter()
        self.unmapped: dict[str, Counter[str]] = {}


_MISSING = ReasonCode.MISSING_VALUE
_NO_DICT: dict[str, Any] = {}
Targets = tuple[dict[str, Any], ...]
Setter = Callable[[Any, Targets, _Notes], None]
#: cell text → value (None: not recorded); raises _Bad with what was expected
Convert = Callable[[str, _Notes], Any]
#: a row's cells → the field's value from this row (None: nothing); raises _Bad
Read = Callable[[Any, _Notes], Any]


class _Victim:
    __slots__ = ("fields", "idf", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.fields: dict[str, Any] = {}
        self.idf: dict[str, Any] = {}


class _Case:
    __slots__ = ("bad", "bad_rows", "case_id", "dates_bad", "ev", "perps", "re", "rows", "victims")

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        self.rows: list[int] = []
        self.bad = False
        self.bad_rows: set[int] = set()
        self.dates_bad = False
        self.re: dict[str, Any] = {}
        self.ev: dict[str, Any] = {}
        self.victims: dict[str, _Victim] = {}
        self.perps: dict[str, dict[str, Any]] = {}


def _withhold(case: _Case, problems: list[Problem]) -> None:
    """A case with an invalid row: each of its other rows gets one ``INVALID_RECORD`` problem."""
    for n in case.rows:
        if n not in case.bad_rows:
            problems.append(Problem("$", ReasonCode.INVALID_RECORD, SIBLING_WITHHELD, row=n))


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
        specs = list(mapping.fields)
        if mapping.organisation_field is not None:
            specs.insert(0, mapping.organisation_field)
        setters = cache[today] = tuple((s.target.path, _setter(s, today)) for s in specs)
    return setters


def _setter(spec: FieldSpec, today: date) -> Setter:
    """One closure per field entry: read the row's cells, convert them, store the value (the
    first value wins for single-valued fields; list fields collect every value once)."""
    t = spec.target
    slot, name, path = t.container, t.name, t.path
    read = _reader(spec, today)

    if t.array:

        def set_list(values: Any, targets: Targets, notes: _Notes) -> None:
            vs = read(values, notes)
            if vs:
                if notes.dry:
                    notes.filled[path] += 1
                d = targets[slot]
                cur = d.get(name)
                if cur is None:
                    d[name] = vs
                else:
                    cur.extend(x for x in vs if x not in cur)

        return set_list

    if t.parts:
        parts = t.parts

        def set_parts(values: Any, targets: Targets, notes: _Notes) -> None:
            v = read(values, notes)  # a tuple, one value per part (None: open)
            if v is not None:
                if notes.dry:
                    notes.filled[path] += 1
                d = targets[slot]
                if all(d.get(part) is None for part in parts):  # the first band wins, whole
                    for part, x in zip(parts, v, strict=True):
                        if x is not None:
                            d[part] = x

        return set_parts

    skip = "Unknown" if t.kind == "code" else None  # an explicit Unknown is the default
    if t is ORGANISATION_TYPE:
        needs = _needs(spec.column)

        def set_org(values: Any, targets: Targets, notes: _Notes) -> None:
            v = read(values, notes)
            if v is None:
                if spec.default is None:
                    raise _Bad(_MISSING, needs)
                v = spec.default
            if notes.dry:
                notes.filled[path] += 1
            targets[slot].setdefault(name, v)

        return set_org

    def set_one(values: Any, targets: Targets, notes: _Notes) -> None:
        v = read(values, notes)
        if v is not None and v != skip:
            if notes.dry:
                notes.filled[path] += 1
            d = targets[slot]
            if name not in d:
                d[name] = v

    return set_one


def _reader(spec: FieldSpec, today: date) -> Read:
    """The field's value from one row's cells (a list for list targets; None: nothing)."""
    t = spec.target
    if spec.flags is not None:
        return _flag_reader(spec)
    convert = _converter(spec, today)
    if t.array:
        columns, sep = spec.read_columns, spec.split

        def read_list(values: Any, notes: _Notes) -> list[Any] | None:
            vs: list[Any] = []
            for col in columns:
                raw = values.get(col)
                if raw is None:
                    continue
                for piece in raw.split(sep) if sep else (raw,):
                    v = convert(piece, notes)
                    if v is None:
                        continue
                    if type(v) is list:
                        vs.extend(x for x in v if x not in vs)
                    elif v not in vs:
                        vs.append(v)
            return vs or None

        return read_list

    col = spec.column
    if spec.multiple is not None:
        sep = spec.split or ";"
        rule = spec.multiple
        several = (
            f"column {col!r}: one value (the cell holds several; "
            "set multiple: first, or a code for several)"
        )

        def read_several(values: Any, notes: _Notes) -> Any:
            raw = values.get(col)
            if raw is None:
                return None
            found: list[Any] = []
            for piece in raw.split(sep):
                v = convert(piece, notes)
                if v is not None and v not in found:
                    found.append(v)
            if len(found) > 1 and "Unknown" in found:
                found.remove("Unknown")  # an Unknown beside a known value adds nothing
            if len(found) <= 1:
                return found[0] if found else None
            if rule == "first":
                return found[0]
            if rule == "reject":
                raise _Bad(ReasonCode.BAD_FORMAT, several)
            return rule

        return read_several

    def read_one(values: Any, notes: _Notes) -> Any:
        raw = values.get(col)
        return None if raw is None else convert(raw, notes)

    return read_one


def _flag_reader(spec: FieldSpec) -> Read:
    """Wide yes/no columns: each truthy cell adds its column's codes."""
    flags = tuple((spec.flags or {}).items())
    truthy, falsy, is_loose = spec.truthy, spec.falsy, spec.loose
    missing = frozenset(_key(m, is_loose) for m in spec.missing)
    answers = ", ".join(sorted(truthy | falsy))

    def read_flags(values: Any, notes: _Notes) -> list[str] | None:
        out: list[str] = []
        for col, codes in flags:
            raw = values.get(col)
            if raw is None:
                continue
            key = loose(raw) if is_loose else raw.strip()
            if key in truthy:
                out.extend(c for c in codes if c not in out)
            elif key and key not in falsy and key not in missing:
                raise _Bad(ReasonCode.BAD_FORMAT, f"column {col!r}: a yes/no value ({answers})")
        return out or None

    return read_flags


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


def _missing_test(spec: FieldSpec) -> Callable[[str], bool]:
    """Whether a stripped, non-empty cell is one of the field's ``missing`` values."""
    exact = spec.missing
    if not exact:
        return lambda s: False
    if not spec.loose:
        return exact.__contains__
    keys = frozenset(loose(m) for m in exact)
    return lambda s: s in exact or loose(s) in keys


def _converter(spec: FieldSpec, today: date) -> Convert:
    """Cell text → value (None: not recorded); raises _Bad with what was expected."""
    t = spec.target
    where = f"column {spec.column!r}: " if len(spec.read_columns) == 1 else "columns "
    if where == "columns ":
        where += ", ".join(repr(c) for c in spec.read_columns) + ": "
    is_missing = _missing_test(spec)
    if t.kind == "range":
        return _band_converter(spec, where, is_missing)
    if spec.codes is not None or t.kind == "code":
        return _code_converter(spec, where)
    if t.kind == "int":
        lo, hi = t.bounds
        bad_format = where + "a whole number"
        out_of_range = where + f"a whole number from {lo} to {hi}"

        def integer(raw: str, notes: _Notes) -> int | None:
            s = raw.strip()
            if not s or is_missing(s):
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
        return _date_converter(spec.format or "%Y-%m-%d", where, is_missing, today)

    def text(raw: str, notes: _Notes) -> str | None:
        s = raw.strip()
        return None if not s or is_missing(s) else s

    return text


def _code_converter(spec: FieldSpec, where: str) -> Convert:
    """Cell text → code: exact, then trimmed, then (loose matching) case- and space-blind."""
    t = spec.target
    table = _code_table(spec)
    lookup = table.get
    folded = {loose(k): v for k, v in table.items()}.get if spec.loose else None
    expected = where + _expected_codes(spec.codes, t)
    default, path = spec.default, t.path
    collect = t.kind == "code"  # only coded fields' values may ever be shown (never identifiers)

    def code(raw: str, notes: _Notes) -> Any:
        v = lookup(raw, _ABSENT)
        if v is _ABSENT:
            s = raw.strip()
            v = lookup(s, _ABSENT)
            if v is _ABSENT and folded is not None:
                v = folded(loose(s), _ABSENT)
            if v is _ABSENT:
                if notes.dry and collect:
                    notes.unmapped.setdefault(path, Counter())[s] += 1
                if default is None:
                    raise _Bad(ReasonCode.UNKNOWN_CODE, expected)
                notes.defaulted[path] += 1
                return default
        return v

    return code


def _band_converter(spec: FieldSpec, where: str, is_missing: Callable[[str], bool]) -> Convert:
    """Cell text → (lower, upper) of an age band: the mapping's ``codes`` first (an agency's
    own labels, e.g. ``Child: "<18"``), else the band as written (:func:`parse_age_band`);
    empty, ``-99`` and the field's ``missing`` values are not recorded."""
    table: dict[str, AgeBand] = {}
    for key, value in (spec.codes or {}).items():
        band = parse_age_band(value) if isinstance(value, str) else None
        if band is not None:  # checked when the mapping was loaded
            table[_key(key, spec.loose)] = band
    is_loose = spec.loose

    def read_band(raw: str, notes: _Notes) -> tuple[int | None, int | None] | None:
        s = raw.strip()
        if s.lower() in MISSING_BANDS or is_missing(s):
            return None
        found = table.get(_key(s, is_loose)) if table else None
        if found is None:
            try:
                found = parse_age_band(s)
            except AgeBandError as e:
                raise _Bad(e.code, where + e.expected) from None
            if found is None:
                return None
        return found.lower, found.upper

    return read_band


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


def _date_converter(
    fmt: str, where: str, is_missing: Callable[[str], bool], today: date
) -> Convert:
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

    def convert(raw: str, notes: _Notes) -> date | None:
        if type(raw) is CellDate:  # a spreadsheet's date cell: its value, whatever the format
            d = raw.value
        else:
            s = raw.strip()
            if not s or is_missing(s):
                return None
            try:
                d = parse(s)
            except ValueError:
                raise _Bad(ReasonCode.BAD_FORMAT, bad_format) from None
        if d < EARLIEST_DATE or d > today:  # rules.date_in_range, inlined
            raise _Bad(ReasonCode.OUT_OF_RANGE, out_of_range)
        return d

    return convert
