"""Structural metadata: the case record's fields and the code lists they take, read from the
wire schema itself (``schemas/avro/case_record.avsc``) so the description can never drift from
what sources send.

A field is a leaf of the record (a value or a list of values) named by its path as errors and
agreements name it (``$.victims[].sex``). A code list is an Avro enum; its labels are the HTCDS
v2.0 value labels where HTCDS has a list of the same name (``Gender`` is HTCDS ``prs_Gender``),
so a reader sees "Sexual exploitation" beside ``SexualExploitation``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from schemas.codec import WireSchema, default_registry
from schemas.codelists import CODELISTS_DIR, htcds_labels
from schemas.model import Enum, Field, Fixed, Primitive

CASE_RECORD = "case_record"


@dataclass(frozen=True)
class FieldInfo:
    """One leaf field of the case record."""

    path: str
    type: str  # the value's type: a primitive (with its logical type) or a code list's name
    optional: bool  # may be null
    repeated: bool  # a list of values
    code_list: str | None
    doc: str


@dataclass(frozen=True)
class CodeList:
    """One code list: its codes in schema order, and a label per code where one is known."""

    name: str
    codes: tuple[str, ...]
    labels: Mapping[str, str]
    labelled_by: str | None  # the HTCDS list the labels come from


@dataclass(frozen=True)
class Structure:
    """The case record's structure: its schema's name and fingerprint, fields, code lists."""

    schema: str
    fingerprint: str
    fields: tuple[FieldInfo, ...]
    code_lists: Mapping[str, CodeList]

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "fingerprint": self.fingerprint,
            "fields": [f.__dict__ for f in self.fields],
            "code_lists": {
                name: {
                    "codes": list(c.codes),
                    "labels": dict(c.labels),
                    "labelled_by": c.labelled_by,
                }
                for name, c in self.code_lists.items()
            },
        }


def _type_name(f: Field) -> str:
    e = f.element
    if isinstance(e, Enum):
        return e.name
    if isinstance(e, Primitive):
        return f"{e.kind} ({e.logical_type})" if e.logical_type else e.kind
    if isinstance(e, Fixed):
        return f"fixed {e.size}"
    return type(e).__name__.lower()


@cache
def _htcds_fields() -> tuple[str, ...]:
    with open(CODELISTS_DIR / "htcds_v2.0_codelists.csv", encoding="utf-8", newline="") as f:
        return tuple(sorted({r["field"] for r in csv.DictReader(f)}))


def htcds_list_of(enum_name: str) -> str | None:
    """The HTCDS list named like ``enum_name`` (``Gender`` -> ``prs_Gender``); None when there
    is none or more than one (an ambiguous label is worse than none)."""
    found = [f for f in _htcds_fields() if f.split("_", 1)[-1] == enum_name]
    return found[0] if len(found) == 1 else None


def _code_list(e: Enum) -> CodeList:
    source = htcds_list_of(e.name)
    labels = htcds_labels(source) if source else {}
    return CodeList(
        e.name,
        e.symbols,
        {c: labels[c] for c in e.symbols if c in labels},
        source if labels else None,
    )


def structure(schema: WireSchema | None = None) -> Structure:
    """The structure of the case record schema (the current one unless ``schema`` is given)."""
    schema = schema or default_registry().current(CASE_RECORD)
    fields = []
    lists: dict[str, CodeList] = {}
    for f in schema.model.leaves():
        e = f.element
        if isinstance(e, Enum) and e.name not in lists:
            lists[e.name] = _code_list(e)
        fields.append(
            FieldInfo(
                path=f.path,
                type=_type_name(f),
                optional=f.nullable,
                repeated=f.is_array,
                code_list=e.name if isinstance(e, Enum) else None,
                doc=(f.doc or "").strip(),
            )
        )
    return Structure(schema.name, schema.fingerprint.hex(), tuple(fields), lists)
