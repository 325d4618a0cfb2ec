"""Aggregate persons into a stream's complete count table (persons, not records).

One person is in exactly one cell. Form of exploitation: the single known form if one,
``"Multiple"`` if several, ``"Unknown"`` if none is recorded (an ``Unknown`` beside known forms is
ignored). Every cell of the cross-product of categories is present, zeros included, so disclosure
control sees the empty cells too.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from schemas.codec import default_registry
from schemas.codelists import htcds_labels
from trust.release.errors import ReleaseError
from trust.release.streams import AGE_GROUPS, StreamSpec, age_group

UNKNOWN = "Unknown"
MULTIPLE = "Multiple"

FORM_RULE = (
    "Each person is counted once: form is the single form of exploitation recorded for the "
    "person, 'Multiple' if several were recorded, 'Unknown' if none was recorded."
)


# The code lists come from the case record schema's model (schemas.model), by the path of the
# field they count: the release stage never walks the schema's JSON itself.
_CASE_MODEL = default_registry().current("case_record").model

#: ICS-TIP sex/gender codes (HTCDS prs_Gender), ``Unknown`` last.
SEXES: tuple[str, ...] = tuple(
    [c for c in _CASE_MODEL.enum_at("$.victims[].sex").symbols if c != UNKNOWN] + [UNKNOWN]
)
#: Forms of exploitation: the FormOfExploitation codes, then ``Multiple``, then ``Unknown``.
FORM_CODES: tuple[str, ...] = _CASE_MODEL.enum_at("$.event.forms_of_exploitation").symbols
FORMS: tuple[str, ...] = tuple([c for c in FORM_CODES if c != UNKNOWN] + [MULTIPLE, UNKNOWN])


_AGE_LABELS = {
    "0-11": "0-11 years",
    "12-17": "12-17 years",
    "18-24": "18-24 years",
    "25-34": "25-34 years",
    "35-44": "35-44 years",
    "45+": "45 years and over",
    "0-17": "Children (0-17 years)",
    "18+": "Adults (18 years and over)",
    UNKNOWN: "Age not recorded",
}

#: Labels of the categories of each dimension a release can break persons down by.
DIMENSION_LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "sex": {**htcds_labels("prs_Gender"), UNKNOWN: "Sex not recorded"},
        "form": {
            **htcds_labels("vic_TypeOfExploitation"),
            MULTIPLE: "Several forms recorded",
            UNKNOWN: "Form not recorded",
        },
        "age_group": _AGE_LABELS,
        "year": {UNKNOWN: "Year not recorded"},
        "victimisation": {
            "Repeated": "Exploited in two or more different years",
            "Once": "Exploited in one year",
            UNKNOWN: "Year of exploitation not recorded",
        },
    }
)


def labels_for(
    dimensions: Iterable[str], categories: Iterable[Iterable[str]]
) -> dict[str, dict[str, str]]:
    """The labels of the categories a table uses, per dimension (a code without a label is
    its own label)."""
    out: dict[str, dict[str, str]] = {}
    for dim, cats in zip(dimensions, categories, strict=True):
        known = DIMENSION_LABELS.get(dim, {})
        out[dim] = {c: known.get(c, c) for c in cats}
    return out


class ConflictingPerson(ReleaseError):
    """The same person id was passed twice with different facts: the caller must merge first."""

    code = "conflicting_person"


class UnknownCode(ReleaseError):
    """A person's fact is not a code of its list (names the dimension, never the value)."""

    code = "unknown_code"


class UnknownDimension(ReleaseError):
    """A stream names a dimension the aggregator does not know how to derive."""

    code = "unknown_dimension"


@dataclass(frozen=True)
class PersonFacts:
    """What the release stage knows of one (linked) person: only the facts it counts by."""

    person_id: tuple[str, ...]
    sex: str
    age: int | None
    forms: tuple[str, ...]
    year: int | None  # the first known year of exploitation
    years: tuple[int, ...] = ()  # every distinct known year of exploitation, ascending


def form_of(forms: Iterable[str]) -> str:
    """The one form cell of a person (see :data:`FORM_RULE`)."""
    known = set()
    for f in forms:
        if f not in FORM_CODES:
            raise UnknownCode("person form is not a FormOfExploitation code")
        if f != UNKNOWN:
            known.add(f)
    if not known:
        return UNKNOWN
    if len(known) == 1:
        return next(iter(known))
    return MULTIPLE


def _sex(p: PersonFacts) -> str:
    if p.sex not in SEXES:
        raise UnknownCode("person sex is not a Gender code")
    return p.sex


def _year(p: PersonFacts) -> str:
    return UNKNOWN if p.year is None else str(p.year)


REPEATED, ONCE = "Repeated", "Once"
VICTIMISATIONS: tuple[str, ...] = (REPEATED, ONCE, UNKNOWN)


def _victimisation(p: PersonFacts) -> str:
    years = set(p.years) or ({p.year} if p.year is not None else set())
    if len(years) >= 2:
        return REPEATED
    return ONCE if years else UNKNOWN


def _years(observed: set[str]) -> tuple[str, ...]:
    """The year categories: every year a counted person has, in order, then Unknown if any."""
    known = sorted(int(y) for y in observed if y != UNKNOWN)
    unknown = [UNKNOWN] if UNKNOWN in observed else []
    return tuple([str(y) for y in known] + unknown)


@dataclass(frozen=True)
class _Dimension:
    cell: Callable[[PersonFacts], str]
    # the categories of a table, from the values its counted persons have in this dimension
    categories: Callable[[set[str]], tuple[str, ...]]


_DIMENSIONS: Mapping[str, _Dimension] = {
    "year": _Dimension(_year, _years),
    "sex": _Dimension(_sex, lambda _: SEXES),
    "age_group": _Dimension(lambda p: age_group(p.age), lambda _: AGE_GROUPS),
    "form": _Dimension(lambda p: form_of(p.forms), lambda _: FORMS),
    "victimisation": _Dimension(_victimisation, lambda _: VICTIMISATIONS),
}


def _dimensions(spec: StreamSpec) -> list[_Dimension]:
    try:
        return [_DIMENSIONS[d] for d in spec.dimensions]
    except KeyError as exc:
        raise UnknownDimension(f"stream {spec.name}: no aggregator for dimension {exc}") from None


def cell_key(person: PersonFacts, spec: StreamSpec) -> tuple[str, ...]:
    """The one cell of ``person`` in ``spec``'s table."""
    return tuple(d.cell(person) for d in _dimensions(spec))


def cell_of(spec: StreamSpec) -> Callable[[PersonFacts], tuple[str, ...]]:
    """:func:`cell_key` for one stream, with its dimensions looked up once (for many persons)."""
    cells = tuple(d.cell for d in _dimensions(spec))
    return lambda person: tuple([cell(person) for cell in cells])


@dataclass(frozen=True)
class CountTable:
    """Counts of persons for every cell of the cross-product of ``categories`` (zeros included).

    ``counts`` is read-only and ordered as :meth:`cell_keys`; ``total`` is the number of distinct
    persons (= the sum of the cells); the period is the min/max known year (None if none).
    ``structural_zeros``: the cell keys the stream declares impossible (their 0 is public
    knowledge, so disclosure control need not protect them).
    """

    stream: str
    dimensions: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    counts: Mapping[tuple[str, ...], int]
    total: int
    period_start: int | None
    period_end: int | None
    structural_zeros: frozenset[tuple[str, ...]] = frozenset()

    def cell_keys(self) -> Iterator[tuple[str, ...]]:
        """Every cell key, in cross-product order (first dimension slowest)."""
        return itertools.product(*self.categories)


def _distinct(persons: Iterable[PersonFacts]) -> list[PersonFacts]:
    seen: dict[tuple[str, ...], PersonFacts] = {}
    for p in persons:
        before = seen.setdefault(p.person_id, p)
        if before is not p and _facts(before) != _facts(p):
            raise ConflictingPerson("a person id was passed twice with different facts")
    return list(seen.values())


def _facts(p: PersonFacts) -> tuple[object, ...]:
    # the order and repetition of forms carry no meaning
    return (p.sex, p.age, frozenset(p.forms), p.year, frozenset(p.years))


def aggregate(persons: Iterable[PersonFacts], spec: StreamSpec) -> CountTable:
    """Count distinct persons into every cell of ``spec``'s dimensions.

    A person id passed twice with identical facts counts once; with different facts it raises
    :class:`ConflictingPerson` (merging a person's records is the caller's job).
    """
    dims = _dimensions(spec)
    people = _distinct(persons)
    return table_from_counts(spec, Counter(tuple(d.cell(p) for d in dims) for p in people))


def table_from_counts(spec: StreamSpec, observed: Mapping[tuple[str, ...], int]) -> CountTable:
    """The complete table of ``spec`` from persons counted per cell (absent cells count 0).

    The same table :func:`aggregate` makes from the persons themselves; the release stage keeps
    these counts as its own projection, so a release check never reads every person. The period
    is the first and last known year among the counted persons (streams count by year).
    """
    dims = _dimensions(spec)
    present = [key for key, n in observed.items() if n > 0]
    categories = tuple(d.categories({key[i] for key in present}) for i, d in enumerate(dims))
    counts = {key: observed.get(key, 0) for key in itertools.product(*categories)}
    if "year" in spec.dimensions:
        at = spec.dimensions.index("year")
        years = [int(key[at]) for key in present if key[at] != UNKNOWN]
    else:
        years = []
    return CountTable(
        stream=spec.name,
        dimensions=spec.dimensions,
        categories=categories,
        counts=MappingProxyType(counts),
        total=sum(n for n in observed.values() if n > 0),
        period_start=min(years) if years else None,
        period_end=max(years) if years else None,
    )
