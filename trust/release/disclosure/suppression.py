"""Primary cell suppression at a minimum cell size k, zeros included (method note: suppression.md).

Every cell with a count below k — zero too — is suppressed; every other cell is published
exactly. The total is published when it is at least k. Further steps (rounding, cell-key
perturbation: ``noise.md``) plug in after this one (:func:`apply_step`); a step that perturbs
marks the table not ``exact``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from trust.release.aggregate import CountTable
from trust.release.errors import InvalidThreshold, UnprotectedTable
from trust.release.history import AggregateKey
from trust.release.streams import StreamSpec

PRIMARY_METHOD = "primary suppression of cells below k (zeros included)"


@dataclass(frozen=True)
class SuppressedCell:
    """One cell after disclosure control: ``count`` is None exactly when ``suppressed``."""

    key: tuple[str, ...]
    count: int | None
    suppressed: bool


@dataclass(frozen=True)
class TableAggregate:
    """One published number of a table with margins: the dimensions it is broken down by (the
    stream's order; a cell has all, a margin fewer, the total none), its categories in them, and
    its value (None when suppressed)."""

    dimensions: tuple[str, ...]
    key: tuple[str, ...]
    value: int | None

    @property
    def suppressed(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class SuppressedTable:
    """A count table after disclosure control: safe to publish under ``k`` and ``method``.

    ``cells`` are in the source table's cross-product order; ``steps`` names each step applied.
    ``aggregates``: when the table is published with its margins, every cell, margin and the
    total (``cells`` and ``total`` then repeat the cells' and the total's values), and
    ``hierarchies`` the parents of the hierarchical dimensions (``{dimension: {parent:
    children}}``); empty when only the cells and the total are published. ``exact``: False when
    the published values were rounded or perturbed (none of them is then an exact count);
    ``parameters``: the method's parameters as the release states them (never a secret).
    """

    stream: str
    dimensions: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    cells: tuple[SuppressedCell, ...]
    total: int | None
    total_suppressed: bool
    period_start: int | None
    period_end: int | None
    k: int
    steps: tuple[str, ...]
    aggregates: tuple[TableAggregate, ...] = ()
    hierarchies: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    exact: bool = True
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The disclosure-control method, as stated in the release metadata."""
        return "; ".join(self.steps)

    def published(self) -> Iterator[SuppressedCell]:
        """The cells whose counts are published."""
        return (c for c in self.cells if not c.suppressed)


def check_k(k: int) -> int:
    """``k`` if it is an integer >= 1, else :class:`InvalidThreshold`."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidThreshold("minimum cell size k must be an integer >= 1")
    return k


def primary_suppression(table: CountTable, k: int) -> SuppressedTable:
    """Suppress every cell below ``k`` (zeros included); publish the others exactly.

    Raises:
        InvalidThreshold: ``k`` < 1.
    """
    check_k(k)
    cells = tuple(
        SuppressedCell(key, None, True) if n < k else SuppressedCell(key, n, False)
        for key, n in ((key, table.counts[key]) for key in table.cell_keys())
    )
    total_suppressed = table.total < k
    return SuppressedTable(
        stream=table.stream,
        dimensions=table.dimensions,
        categories=table.categories,
        cells=cells,
        total=None if total_suppressed else table.total,
        total_suppressed=total_suppressed,
        period_start=table.period_start,
        period_end=table.period_end,
        k=k,
        steps=(PRIMARY_METHOD,),
    )


class DisclosureStep(Protocol):
    """A step after primary suppression: it may suppress or perturb more, never reveal more."""

    @property
    def method(self) -> str:
        """How the step is described in the release's method."""
        ...

    def apply(self, table: SuppressedTable) -> SuppressedTable:
        """The table after this step (the policy appends :attr:`method` to its ``steps``)."""
        ...


@dataclass(frozen=True)
class DisclosurePolicy:
    """Disclosure control fixed up front: k and the ordered steps after primary suppression.

    Built before any data is touched, so a bad k fails early (:class:`InvalidThreshold`).
    """

    k: int
    steps: tuple[DisclosureStep, ...] = ()

    def __post_init__(self) -> None:
        check_k(self.k)

    def apply(self, table: CountTable) -> SuppressedTable:
        """Primary suppression at ``k``, then each further step in order."""
        out = primary_suppression(table, self.k)
        for step in self.steps:
            out = apply_step(out, step)
        return out

    @classmethod
    def for_stream(cls, spec: StreamSpec) -> DisclosurePolicy:
        """The policy a stream declares (today: primary suppression at its k)."""
        return cls(spec.k)

    @property
    def method(self) -> str:
        """The method statement of tables this policy produces."""
        return "; ".join([PRIMARY_METHOD, *(s.method for s in self.steps)])


def apply_step(table: SuppressedTable, step: DisclosureStep) -> SuppressedTable:
    """``table`` after ``step``, checked to reveal nothing an earlier step hid, with the step's
    method appended to its ``steps`` (by this function, not the step, so no step can omit it)."""
    out = step.apply(table)
    _check_no_more_revealed(table, out, step.method)
    if table.exact is False and out.exact is not False:
        raise UnprotectedTable(f"disclosure step {step.method!r} marked perturbed values exact")
    return dataclasses.replace(out, steps=(*table.steps, step.method))


def map_published(
    table: SuppressedTable,
    value: Callable[[AggregateKey, int], int],
    parameters: Mapping[str, str],
) -> SuppressedTable:
    """``table`` with every published value ``v`` of every aggregate ``a`` (cells, margins, total)
    replaced by ``value(a, v)``, marked not exact, with ``parameters`` added. A new value below the
    table's k is suppressed (saying less than the value itself would). ``value`` must be a
    function of its arguments: a cell is listed in ``cells`` and in ``aggregates`` and gets the
    same value in both."""
    k = table.k

    def new(a: AggregateKey, v: int | None) -> int | None:
        if v is None:
            return None
        out = value(a, v)
        return out if out >= k else None

    dims = table.dimensions
    cells = tuple(
        SuppressedCell(c.key, n, n is None)
        for c, n in ((c, new((dims, c.key), c.count)) for c in table.cells)
    )
    total = new(((), ()), table.total)
    aggregates = tuple(
        TableAggregate(a.dimensions, a.key, new((a.dimensions, a.key), a.value))
        for a in table.aggregates
    )
    return dataclasses.replace(
        table,
        cells=cells,
        total=total,
        total_suppressed=total is None,
        aggregates=aggregates,
        exact=False,
        parameters={**table.parameters, **parameters},
    )


def _check_no_more_revealed(before: SuppressedTable, after: SuppressedTable, step: str) -> None:
    # A later step may suppress or perturb; un-suppressing a cell would undo primary suppression.
    if [a.key for a in after.cells] != [b.key for b in before.cells]:
        raise UnprotectedTable(f"disclosure step {step!r} changed the table's cells")
    pairs = zip(before.cells, after.cells, strict=True)
    if (
        any(b.suppressed and not a.suppressed for b, a in pairs)
        or after.k < before.k
        or (before.total_suppressed and not after.total_suppressed)
    ):
        raise UnprotectedTable(f"disclosure step {step!r} would reveal what an earlier step hid")
