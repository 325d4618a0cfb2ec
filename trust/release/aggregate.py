"""Aggregate persons into a stream's complete count table (persons, not records).

A stream about perpetrators (``StreamSpec.subject``) counts :class:`PerpetratorFacts` instead,
one per perpetrator record, into cells the same way: role is the single role recorded,
``"Multiple"`` if several, ``"Unknown"`` if none (:data:`ROLE_RULE`).

One person is in exactly one cell. Form of exploitation: the single known form if one,
``"Multiple"`` if several, ``"Unknown"`` if none is recorded (an ``Unknown`` beside known forms is
ignored). A person's value in each dimension becomes the category the stream publishes by the
stream's classification of that dimension (:mod:`trust.release.streams`: rare codes grouped, the
most frequent countries and ``Rest``). Every cell of the cross-product of categories is present,
zeros included, so disclosure control sees the empty cells too; the cells the stream declares
impossible are listed as structural zeros.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from schemas.rules import age_group_of
from trust.release.categories import (
    MOST_FREQUENT,
    UNKNOWN,
    YEARS,
    Classification,
    UnknownCode,
    UnknownDimension,
    counts_by_value,
    structural_zeros,
)
from trust.release.errors import ReleaseError
from trust.release.streams import (
    DIMENSION_LABELS,
    FORM_CODES,
    FORMS,
    MULTIPLE,
    ONCE,
    PERPETRATORS,
    REPEATED,
    ROLE_CODES,
    SEXES,
    StreamSpec,
)

__all__ = [
    "DIMENSION_LABELS",
    "FORMS",
    "FORM_CODES",
    "FORM_RULE",
    "MULTIPLE",
    "ROLE_RULE",
    "SEXES",
    "UNKNOWN",
    "VICTIMISATIONS",
    "ConflictingPerson",
    "CountTable",
    "ImpossibleCount",
    "PerpetratorFacts",
    "PersonFacts",
    "UnknownCode",
    "UnknownDimension",
    "aggregate",
    "cell_key",
    "cell_of",
    "form_of",
    "labels_for",
    "role_of",
    "table_from_counts",
]

FORM_RULE = (
    "Each person is counted once: form is the single form of exploitation recorded for the "
    "person, 'Multiple' if several were recorded, 'Unknown' if none was recorded."
)


ROLE_RULE = (
    "Each perpetrator record is counted once: role is the single role in the trafficking "
    "process recorded for the perpetrator, 'Multiple' if several were recorded, 'Unknown' if "
    "none was recorded."
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


class ImpossibleCount(ReleaseError):
    """Persons were counted in a cell the stream declares impossible: the declaration (or the
    counting) is wrong, and the table is not released (names the stream, never a count)."""

    code = "impossible_count"


@dataclass(frozen=True)
class PersonFacts:
    """What the release stage knows of one (linked) person: only the facts it counts by."""

    person_id: tuple[str, ...]
    sex: str
    age: int | None
    forms: tuple[str, ...]
    year: int | None  # the first known year of exploitation
    years: tuple[int, ...] = ()  # every distinct known year of exploitation, ascending
    citizenships: tuple[str, ...] = ()  # every known citizenship (ISO 3166 alpha-2), sorted
    countries: tuple[str, ...] = ()  # every known country of exploitation, sorted
    # when no exact age is known (``age`` None): the age range the person's records give,
    # majority status included (schemas.rules.age_bounds); None: open on that side
    age_lower: int | None = None
    age_upper: int | None = None

    def age_group(self) -> str:
        """The person's release age group: by the exact age if known, else by the age range
        (:func:`schemas.rules.age_group_of`)."""
        return age_group_of(self.age, self.age_lower, self.age_upper)


@dataclass(frozen=True)
class PerpetratorFacts:
    """What the release stage knows of one perpetrator record: only the facts it counts by.
    ``perpetrator_id`` is the record's (source, case, perpetrator id): never linked across
    sources or cases."""

    perpetrator_id: tuple[str, ...]
    roles: tuple[str, ...]
    year: int | None  # the case's year of exploitation


def role_of(roles: Iterable[str]) -> str:
    """The one role cell of a perpetrator (see :data:`ROLE_RULE`)."""
    known = set()
    for r in roles:
        if r not in ROLE_CODES:
            raise UnknownCode("perpetrator role is not a RoleInProcess code")
        if r != UNKNOWN:
            known.add(r)
    if not known:
        return UNKNOWN
    return next(iter(known)) if len(known) == 1 else MULTIPLE


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


def _year(p: PersonFacts | PerpetratorFacts) -> str:
    return UNKNOWN if p.year is None else str(p.year)


VICTIMISATIONS: tuple[str, ...] = (REPEATED, ONCE, UNKNOWN)


def _victimisation(p: PersonFacts) -> str:
    years = set(p.years) or ({p.year} if p.year is not None else set())
    if len(years) >= 2:
        return REPEATED
    return ONCE if years else UNKNOWN


#: A person's value in each dimension, before the stream's classification.
_VALUES: Mapping[str, Callable[[PersonFacts], str]] = MappingProxyType(
    {
        "year": _year,
        "sex": lambda p: p.sex,
        "age_group": PersonFacts.age_group,
        "form": lambda p: form_of(p.forms),
        "victimisation": _victimisation,
        "citizenship": lambda p: _one_of(p.citizenships),
        "country_of_exploitation": lambda p: _one_of(p.countries),
    }
)


def _one_of(codes: Iterable[str]) -> str:
    """One cell per person, as for forms: the single known code, ``Multiple`` if several,
    ``Unknown`` if none."""
    known = {c for c in codes if c != UNKNOWN}
    if not known:
        return UNKNOWN
    return next(iter(known)) if len(known) == 1 else MULTIPLE


#: A perpetrator record's value in each dimension, before the stream's classification.
_PERPETRATOR_VALUES: Mapping[str, Callable[[PerpetratorFacts], str]] = MappingProxyType(
    {"year": _year, "role": lambda p: role_of(p.roles)}
)

Facts = PersonFacts | PerpetratorFacts
"""What a counted unit is known by: a person (victim streams) or a perpetrator record."""


def _value_of(spec: StreamSpec, dimension: str) -> Callable[[Any], str]:
    values: Mapping[str, Callable[[Any], str]] = (
        _PERPETRATOR_VALUES if spec.subject == PERPETRATORS else _VALUES
    )
    try:
        return values[dimension]
    except KeyError:
        raise UnknownDimension(
            f"stream {spec.name}: no aggregator for dimension {dimension!r}"
        ) from None


def _compose(value: Callable[[Any], str], category: Callable[[str], str]) -> Callable[[Any], str]:
    return lambda p: category(value(p))


def _cells(spec: StreamSpec) -> list[Callable[[Any], str]]:
    return [
        _compose(_value_of(spec, dim), spec.classification(dim).category_of)
        for dim in spec.dimensions
    ]


def cell_key(person: Facts, spec: StreamSpec) -> tuple[str, ...]:
    """The one cell of ``person`` (or perpetrator record) in ``spec``'s table (before a most-frequent dimension's rare
    codes join ``Rest``, which depends on the whole table: :func:`table_from_counts`)."""
    return tuple(cell(person) for cell in _cells(spec))


def cell_of(spec: StreamSpec) -> Callable[[Any], tuple[str, ...]]:
    """:func:`cell_key` for one stream, with its dimensions looked up once (for many persons;
    a stream about perpetrators takes :class:`PerpetratorFacts`)."""
    cells = tuple(_cells(spec))
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
    return (
        p.sex,
        p.age,
        p.age_lower,
        p.age_upper,
        frozenset(p.forms),
        p.year,
        frozenset(p.years),
        frozenset(p.citizenships),
        frozenset(p.countries),
    )


def aggregate(persons: Iterable[PersonFacts], spec: StreamSpec) -> CountTable:
    """Count distinct persons into every cell of ``spec``'s dimensions.

    A person id passed twice with identical facts counts once; with different facts it raises
    :class:`ConflictingPerson` (merging a person's records is the caller's job).
    """
    cell = cell_of(spec)
    people = _distinct(persons)
    return table_from_counts(spec, Counter(cell(p) for p in people))


def table_from_counts(
    spec: StreamSpec,
    observed: Mapping[tuple[str, ...], int],
    sticky: Mapping[str, Collection[str]] | None = None,
    *,
    years: Sequence[int] | None = None,
) -> CountTable:
    """The complete table of ``spec`` from persons counted per cell (absent cells count 0).

    The same table :func:`aggregate` makes from the persons themselves; the release stage keeps
    these counts as its own projection, so a release check never reads every person. Cell keys
    are as :func:`cell_of` makes them. The categories come from the stream's classifications
    (years and most frequent countries from the counted persons; a country outside the most
    frequent joins ``Rest``); the structural zeros from its rules. The period is the first and
    last known year among the counted persons (streams count by year). ``sticky``: per
    most-frequent dimension, the categories the consumer was given before in this stream
    (:meth:`~trust.release.categories.Classification.table_categories`; the release stage
    passes them, so a country published on its own never returns into ``Rest``); given (even
    empty), years follow the same rule: a year is shown once it holds k persons and stays in the
    consumer's later tables, the persons of the years not shown yet are in ``Rest``, and the
    period is that of the years shown. ``years``:
    the year categories, fixed in advance (a differentially private stream's declared range,
    :attr:`~trust.release.streams.StreamSpec.first_year`): each is a row whoever is counted,
    ``Unknown`` is always one, persons counted in any other year are left out, and the period is
    the range's first and last year — nothing of the table's shape then comes from the data.

    Raises:
        UnknownCode: a cell key holds a value that is not a category of its dimension.
        ImpossibleCount: persons are counted in a cell the stream declares impossible.
    """
    classes = spec.classifications()
    present = {key: n for key, n in observed.items() if n > 0}
    fixed_years: tuple[str, ...] = ()
    if years is not None and "year" in spec.dimensions:
        at = spec.dimensions.index("year")
        fixed_years = (*(str(y) for y in sorted(set(years))), UNKNOWN)
        shown = set(fixed_years)
        present = {key: n for key, n in present.items() if key[at] in shown}
    categories = tuple(
        fixed_years
        if fixed_years and c.kind == YEARS
        else c.table_categories(
            counts_by_value(present, i),
            spec.k,
            (sticky or {}).get(c.dimension, ()) if c.kind in (MOST_FREQUENT, YEARS) else (),
            new_at_k=sticky is not None and c.kind == YEARS,
        )
        for i, c in enumerate(classes)
    )
    grouped: Counter[tuple[str, ...]] = Counter()
    for key, n in present.items():
        grouped[_grouped(classes, categories, key)] += n
    zeros = structural_zeros(spec.structural_zeros, spec.dimensions, categories)
    if any(grouped.get(key, 0) for key in zeros):
        raise ImpossibleCount(f"stream {spec.name}: persons counted in a declared structural zero")
    counts = {key: grouped.get(key, 0) for key in itertools.product(*categories)}
    if fixed_years:
        known = [int(y) for y in fixed_years if y != UNKNOWN]
    elif "year" in spec.dimensions and sticky is not None:  # the years shown, not those in Rest
        known = [int(y) for y in categories[spec.dimensions.index("year")] if y.isdigit()]
    elif "year" in spec.dimensions:
        at = spec.dimensions.index("year")
        known = [int(key[at]) for key in present if key[at] != UNKNOWN]
    else:
        known = []
    return CountTable(
        stream=spec.name,
        dimensions=spec.dimensions,
        categories=categories,
        counts=MappingProxyType(counts),
        total=sum(present.values()),
        period_start=min(known) if known else None,
        period_end=max(known) if known else None,
        structural_zeros=zeros,
    )


def _grouped(
    classes: tuple[Classification, ...],
    categories: tuple[tuple[str, ...], ...],
    key: tuple[str, ...],
) -> tuple[str, ...]:
    if len(key) != len(classes):
        raise UnknownCode("a cell key does not have one value per dimension")
    out = tuple(c.group(v, cats) for c, v, cats in zip(classes, key, categories, strict=True))
    for c, v, cats in zip(classes, out, categories, strict=True):
        if v not in cats:
            raise UnknownCode(f"{c.dimension}: a cell's value is not a category of the stream")
    return out
