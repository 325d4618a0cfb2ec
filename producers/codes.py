"""Agency values → ICS-TIP codes: loose matching and the code lists a mapping can name.

- :func:`loose` is the key under which values are compared by default: Unicode-normalised (NFKC),
  case-folded, with every space and underscore removed, so ``Forced labour``, ``forced_labour``,
  ``FORCED LABOUR`` and ``ForcedLabour`` are one value. ``-99`` stays ``-99`` (hyphens count).
- :func:`named_codes` resolves a code list named in a mapping (``htcds:Gender``, ``ics-tip``) into
  ``agency value -> ICS-TIP code`` for one target.
- :data:`HTCDS_LIST_OF` says which HTCDS v2.0 list labels an ICS-TIP code list (the enum's name).

Nothing here reads an export; nothing here ever puts a cell value into an error.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable, Mapping
from functools import cache

from schemas.codelists import CODELISTS_DIR, htcds_labels

__all__ = [
    "HTCDS_LIST_OF",
    "ICS_TIP",
    "CodeListError",
    "htcds_list_names",
    "loose",
    "named_codes",
]

#: The name of the target's own code list (its ICS-TIP codes, matched as themselves).
ICS_TIP = "ics-tip"
_HTCDS = "htcds:"

#: ICS-TIP enum name → the HTCDS v2.0 field whose labels describe the same codes.
HTCDS_LIST_OF: Mapping[str, str] = {
    "Country": "Country",
    "Gender": "prs_Gender",
    "TraffickingStatus": "vic_TraffickingStatus",
    "IdentifyingOrganisation": "vic_TraffickingStatusDecisionMakingOrg",
    "FormOfExploitation": "vic_TypeOfExploitation",
    "MethodOfRecruitment": "vic_MethodOfRecruitment",
    "MethodOfControl": "vic_MethodsOfControl",
    "TypeOfSexualExploitation": "vic_TypeOfSexExploitation",
    "RelationshipToTrafficker": "vic_RelationshipToTrafficker",
    "RoleInProcess": "per_RoleInProcess",
    "IndustrySection": "vic_ForcedLabourIndustry",
}


class CodeListError(ValueError):
    """A named code list that does not exist or shares no code with its target."""


def loose(value: str) -> str:
    """The comparison key of ``value`` under case-insensitive, space-tolerant matching."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return "".join(folded.split()).replace("_", "")


def htcds_list_names() -> tuple[str, ...]:
    """Every HTCDS v2.0 field with a code list (``prs_Gender``, ``vic_MethodsOfControl`` …)."""
    return _htcds_fields()


@cache
def _htcds_fields() -> tuple[str, ...]:
    with open(CODELISTS_DIR / "htcds_v2.0_codelists.csv", encoding="utf-8", newline="") as f:
        return (*dict.fromkeys(r["field"] for r in csv.DictReader(f)), "Country")


@cache
def _countries() -> Mapping[str, str]:
    """ISO 3166-1 alpha-2 code → English short name (the HTCDS v2.0 country list)."""
    path = CODELISTS_DIR / "htcds_v2.0_countries_iso3166_alpha2.csv"
    with open(path, encoding="utf-8", newline="") as f:
        return {r["alpha2"]: r["name"] for r in csv.DictReader(f)}


def _htcds_field(name: str) -> str:
    """``Gender`` or ``prs_Gender`` → ``prs_Gender``; raises CodeListError if unknown/ambiguous."""
    fields = _htcds_fields()
    if name in fields:
        return name
    found = [f for f in fields if f.split("_", 1)[-1] == name]
    if len(found) == 1:
        return found[0]
    if found:
        raise CodeListError(f"htcds:{name} is ambiguous: use one of {', '.join(found)}")
    raise CodeListError(
        f"htcds:{name} is not an HTCDS v2.0 code list (known: {', '.join(sorted(fields))})"
    )


def named_codes(name: str, symbols: Iterable[str], enum_name: str) -> dict[str, str]:
    """The ``value -> code`` table of the list called ``name``, limited to the target's codes.

    ``ics-tip`` is the target's own codes; ``htcds:<list>`` (``htcds:Gender`` or
    ``htcds:prs_Gender``) adds each HTCDS value name and label of a code the target has (codes the
    target lacks are left out); ``htcds:Country`` is ISO 3166-1 alpha-2 codes and English names. Raises :class:`CodeListError` if the list is unknown or shares no
    code with the target.
    """
    allowed = frozenset(symbols)
    if name == ICS_TIP:
        return {s: s for s in sorted(allowed)}
    if not name.startswith(_HTCDS):
        raise CodeListError(f"unknown code list {name!r}: expected {ICS_TIP} or htcds:<list>")
    field = _htcds_field(name[len(_HTCDS) :])
    table: dict[str, str] = {}
    labels = _countries() if field == "Country" else htcds_labels(field)
    for value_name, label in labels.items():
        if value_name in allowed:
            table[value_name] = value_name
            table.setdefault(label, value_name)
    if not table:
        raise CodeListError(f"{name} has no code of the ICS-TIP {enum_name} list")
    return table
