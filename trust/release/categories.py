"""What a stream publishes in one dimension, and the cells it declares impossible.

A :class:`Classification` says how the values a person has in one dimension (a code of a code
list, an age band, a year) become the **categories** a stream publishes:

- **declared** categories (``sex``, ``age_group``, ``form``, …): a fixed, ordered list, each a
  code of the list or a named group of rare codes (``OtherGenderIdentity`` groups the three
  transgender and non-conforming codes), with its label. The members of the categories partition
  the code list exactly (checked when declared), so every person has exactly one category and a
  code added to the list cannot go uncounted;
- **years**: the years the counted persons have, in order, then ``Unknown`` if any;
- **most frequent**: the ``top`` most frequent codes among the counted persons (each with at
  least ``k`` persons), then the declared fixed categories that occur, in their order (e.g.
  ``Multiple``, the residual :data:`REST` for every other known code, ``Unknown``). The
  residual is never the code list's own ``Other``, which means something else. A table made
  for a consumer who already holds releases of the stream also keeps every category published
  to it before (``sticky``): a code once published on its own never returns into ``Rest``, a
  fixed category never disappears (``disclosure/differencing.md``, sticky categories).

A dimension may declare a **hierarchy** of parents over its categories (``0-17`` = ``0-11`` +
``12-17``): a parent is published as the sum of its children, never counted on its own.

An :class:`Impossible` rule names cells that cannot hold a person under the counting rules (e.g.
a person without a year of exploitation is never a repeat victim): their zero is public
knowledge — a **structural zero** — and disclosure control need not protect it. Rules are
declared per stream (:mod:`trust.release.streams`) and expanded to cell keys for
:attr:`~trust.release.aggregate.CountTable.structural_zeros`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from trust.release.errors import ReleaseError

UNKNOWN = "Unknown"
#: The residual category of a "most frequent" dimension (never the code list's ``Other``).
REST = "Rest"
#: Reserved: the node standing for "all categories" in a table's margins.
TOTAL = "Total"

DECLARED = "declared"
YEARS = "years"
MOST_FREQUENT = "most_frequent"
KINDS = (DECLARED, YEARS, MOST_FREQUENT)


class InvalidCategories(ReleaseError):
    """A classification or structural-zero rule that cannot be declared as written (the message
    names the dimension and the rule, never a count)."""

    code = "invalid_categories"


class UnknownCode(ReleaseError):
    """A person's fact is not a code of its list (names the dimension, never the value)."""

    code = "unknown_code"


class UnknownDimension(ReleaseError):
    """A stream names a dimension the aggregator does not know how to derive."""

    code = "unknown_dimension"


@dataclass(frozen=True)
class Category:
    """One published category: its code (the key in releases), its label, and the codes of the
    list it groups (none: the category is the code itself)."""

    code: str
    label: str
    members: tuple[str, ...] = ()

    def codes(self) -> tuple[str, ...]:
        """The values a person may have to be in this category."""
        return self.members or (self.code,)


@dataclass(frozen=True)
class Parent:
    """A parent node of a hierarchy: the sum of its children (categories or other parents)."""

    code: str
    label: str
    children: tuple[str, ...]


@dataclass(frozen=True)
class Classification:
    """How one dimension's values become the categories a stream publishes (module doc).

    ``categories``: for a declared dimension, every category in order; for the other kinds,
    the fixed categories they may add, in order (``Unknown``; most-frequent kind: :data:`REST`
    and e.g. ``Multiple``). ``code_list``:
    the codes a person may have (declared kind: the categories' members must partition it;
    most-frequent kind: the known codes). ``code_labels``: the labels of the codes themselves
    (most-frequent kind: the code list's labels). ``top``: how many most frequent codes are
    published. ``note`` says in words what a grouping holds.
    """

    dimension: str
    kind: str = DECLARED
    categories: tuple[Category, ...] = ()
    parents: tuple[Parent, ...] = ()
    code_list: tuple[str, ...] = ()
    code_labels: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    top: int = 0
    note: str = ""
    _index: Mapping[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = f"dimension {self.dimension}"
        if self.kind not in KINDS:
            raise InvalidCategories(f"{where}: kind must be one of {', '.join(KINDS)}")
        codes = [c.code for c in self.categories]
        nodes = [*codes, *(p.code for p in self.parents)]
        if len(set(nodes)) != len(nodes) or TOTAL in nodes:
            raise InvalidCategories(f"{where}: categories and parents must be distinct, not Total")
        if self.kind == DECLARED:
            if not self.categories:
                raise InvalidCategories(f"{where}: a declared dimension needs categories")
            members = [m for c in self.categories for m in c.codes()]
            if len(set(members)) != len(members):
                raise InvalidCategories(f"{where}: a code is in two categories")
            if self.code_list and set(members) != set(self.code_list):
                raise InvalidCategories(f"{where}: the categories do not partition the code list")
        if self.kind == MOST_FREQUENT:
            if self.top < 1:
                raise InvalidCategories(f"{where}: 'top' must be at least 1")
            fixed = {c.code for c in self.categories}
            if REST not in fixed or fixed & set(self.code_list) or TOTAL in self.code_list:
                raise InvalidCategories(
                    f"{where}: {REST!r} is declared, and no fixed category is also a code"
                )
        seen: set[str] = set()
        for parent in self.parents:
            for child in parent.children:
                if child not in nodes or child in seen or child == parent.code:
                    raise InvalidCategories(f"{where}: parent {parent.code!r} has a bad child")
                seen.add(child)
        if self.kind == MOST_FREQUENT:
            fixed_values = [c.code for c in self.categories if c.code != REST]
            index = {c: c for c in (*self.code_list, *fixed_values)}
        else:
            index = {m: cat.code for cat in self.categories for m in cat.codes()}
        object.__setattr__(self, "_index", MappingProxyType(index))

    # -- a person's category --------------------------------------------------------------

    def category_of(self, value: str) -> str:
        """The category a person with ``value`` is counted in (declared kind), or ``value``
        itself (the other kinds group at table time: :meth:`table_categories`)."""
        if self.kind != DECLARED:
            if self.kind == MOST_FREQUENT and value not in self._index:
                raise UnknownCode(f"{self.dimension}: a person's value is not a code of its list")
            return value
        try:
            return self._index[value]
        except KeyError:
            raise UnknownCode(
                f"{self.dimension}: a person's value is not a code of its list"
            ) from None

    # -- a table's categories -------------------------------------------------------------

    def table_categories(
        self,
        observed: Mapping[str, int],
        k: int,
        sticky: Collection[str] = (),
        *,
        new_at_k: bool = False,
    ) -> tuple[str, ...]:
        """The categories of a table, given persons per value (``observed``, values as
        :meth:`category_of` returns them) and the stream's ``k``.

        ``sticky`` (most-frequent kind only): categories published before to the same consumer
        in this stream. They stay: each code among them is a category of its own whatever its
        count now (most frequent first with the others, ties in code order), each fixed one
        stays even with nobody in it. Other codes are chosen as :meth:`most_frequent` chooses
        them, beside the sticky ones.

        ``new_at_k`` (years kind; the release stage's tables): a year, or ``Unknown``, is a
        category of its own once at least ``k`` persons are counted in it, and stays while it is
        in ``sticky`` (published before to the same consumer), whoever is left in it; the persons
        of the other years are in :data:`REST` (which stays once published, like a country
        stream's): so neither a year's first appearance nor its disappearance says that a few
        persons were added or removed. Without it, every value with a person is a category.

        Raises:
            UnknownCode: a sticky category is neither a code of the list nor a fixed category.
        """
        present = {v for v, n in observed.items() if n > 0}
        unknown = [UNKNOWN] if UNKNOWN in present else []
        if self.kind == DECLARED:
            return tuple(c.code for c in self.categories)
        if self.kind == YEARS:
            if not new_at_k:
                years = sorted(int(v) for v in present if v != UNKNOWN)
                return (*(str(y) for y in years), *unknown)
            # a year appears once it holds k persons, then stays; the others are in Rest
            if any(v not in (UNKNOWN, REST) and not v.isdigit() for v in sticky):
                raise UnknownCode(f"{self.dimension}: a category published before is no year")
            shown = {v for v, n in observed.items() if n >= k} | set(sticky)
            rest = REST in shown or bool(present - shown)
            years = sorted(int(v) for v in shown if v not in (UNKNOWN, REST))
            return (
                *(str(y) for y in years),
                *([REST] if rest else []),
                *([UNKNOWN] if UNKNOWN in shown else []),
            )
        fixed = [c.code for c in self.categories]
        kept = set(sticky)
        if kept - set(self.code_list) - set(fixed):
            raise UnknownCode(f"{self.dimension}: a category published before is not of its list")
        codes = set(self.most_frequent(observed, k)) | (kept - set(fixed))
        chosen = tuple(sorted(codes, key=lambda v: (-observed.get(v, 0), v)))
        grouped = {self.group(v, chosen) for v in present}
        return (*chosen, *(c for c in fixed if c in grouped or c in kept))

    def most_frequent(self, observed: Mapping[str, int], k: int) -> tuple[str, ...]:
        """The ``top`` most frequent known codes with at least ``k`` persons, most frequent
        first (ties: code order)."""
        fixed = {c.code for c in self.categories}
        ranked = sorted(
            ((n, v) for v, n in observed.items() if v not in fixed and n >= k),
            key=lambda nv: (-nv[0], nv[1]),
        )
        return tuple(v for _, v in ranked[: self.top])

    def group(self, value: str, categories: Sequence[str]) -> str:
        """A counted value's category in a table with ``categories`` (most-frequent kind: a
        code outside them is in :data:`REST`; a fixed category stays itself)."""
        if value in categories:
            return value
        if self.kind == YEARS:  # a year not shown on its own yet (new_at_k)
            return REST if REST in categories else value
        if self.kind != MOST_FREQUENT:
            return value
        if any(value == c.code for c in self.categories):
            return value
        return REST

    # -- what a release says about the dimension ------------------------------------------

    def hierarchy(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The parents with their children, as disclosure control's tables take them."""
        return tuple((p.code, p.children) for p in self.parents)

    def labels(self) -> dict[str, str]:
        """Every label this dimension can publish: categories, parents, and (most-frequent
        kind) the code list's codes."""
        out = dict(self.code_labels) if self.kind == MOST_FREQUENT else {}
        out.update({c.code: c.label for c in self.categories})
        out.update({p.code: p.label for p in self.parents})
        return out


@dataclass(frozen=True)
class Impossible:
    """Cells no person can be in under the counting rules: a **structural zero** rule.

    A cell matches when, for every dimension in ``where``, its category is one of the listed
    ones, and for every dimension in ``other_than``, it is none of the listed ones (a
    dimension the stream does not have makes the rule not apply). ``reason`` says why the
    cells are impossible (release metadata quotes it).
    """

    reason: str
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    other_than: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        if not self.where and not self.other_than:
            raise InvalidCategories("a structural-zero rule must name a dimension")
        if not self.reason.strip():
            raise InvalidCategories("a structural-zero rule must say why the cells are impossible")

    def dimensions(self) -> set[str]:
        return {d for d, _ in (*self.where, *self.other_than)}

    def matches(self, dimensions: Sequence[str], key: Sequence[str]) -> bool:
        at = dict(zip(dimensions, key, strict=True))
        if not self.dimensions() <= set(at):
            return False
        return all(at[d] in cats for d, cats in self.where) and all(
            at[d] not in cats for d, cats in self.other_than
        )


def structural_zeros(
    rules: Iterable[Impossible],
    dimensions: Sequence[str],
    categories: Sequence[Sequence[str]],
) -> frozenset[tuple[str, ...]]:
    """The cell keys of a table (``categories`` per dimension) that a rule declares impossible."""
    applicable = [r for r in rules if r.dimensions() <= set(dimensions)]
    if not applicable:
        return frozenset()
    return frozenset(
        key
        for key in itertools.product(*categories)
        if any(r.matches(dimensions, key) for r in applicable)
    )


def counts_by_value(observed: Mapping[tuple[str, ...], int], at: int) -> Counter[str]:
    """Persons per value of dimension ``at`` in cell counts (for a table's categories)."""
    out: Counter[str] = Counter()
    for key, n in observed.items():
        if n > 0:
            out[key[at]] += n
    return out
