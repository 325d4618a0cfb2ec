"""Differencing safety across releases to one consumer (method note: ``differencing.md``).

An aggregate — a cell, a margin or the total, named by the dimensions it is broken down by and
its categories in them — is published exactly only if its value differs by 0 or by at least k
from **every** earlier exact publication of the same aggregate to the same consumer (in any
stream: the same dimensions and categories count the same persons). Otherwise it is suppressed
in this release, as if it were below k, and secondary suppression protects it like any
sensitive value (its feasible interval must cover at least ``[x - k, x + k]``, which holds every
earlier value within k of it).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from trust.release.aggregate import CountTable
from trust.release.categories import REST
from trust.release.disclosure.suppression import SuppressedCell, SuppressedTable, check_k
from trust.release.disclosure.table import BoolArray, HierarchicalTable
from trust.release.history import (  # defined without numpy
    AggregateKey,
    Membership,
)

#: Every exact value published earlier, per aggregate.
History = Mapping[AggregateKey, Collection[float]]

DIFFERENCING_METHOD = (
    "differencing safety: a value is published exactly only if it differs by 0 or by at least k "
    "from every earlier exact publication of the same aggregate to this consumer"
)


def rebased_rest(
    earlier: History,
    rest: Mapping[AggregateKey, Collection[tuple[float, Membership]]],
    counts: CountTable,
    fixed: Mapping[str, Collection[str]],
) -> dict[AggregateKey, Collection[float]]:
    """``earlier`` with every earlier exact value of an aggregate holding ``Rest`` restated for
    what ``Rest`` holds in ``counts`` (``differencing.md``, sticky categories).

    A code published on its own now and held in ``Rest`` when a value was published (an
    *entrant*) makes the old ``Rest`` the sum of today's ``Rest`` and the entrant: an old value
    ``r`` becomes ``r`` minus the entrants' counts now (in the same row), the value today's
    ``Rest`` would need for the old sum to be unchanged. The differencing rule then compares
    today's ``Rest`` with that — a change of the old sum by 1 .. k-1 hides today's ``Rest`` —
    and with the values as published (the rule by key is kept as it is).
    ``rest``: the values with the categories their releases published
    (:meth:`~trust.release.history.PublishedHistory.rest_values`); ``fixed``: the fixed
    categories (``Multiple``, ``Rest``, ``Unknown``) of each most-frequent dimension. Codes that
    left the stream's categories since (none: categories are sticky) are not restated.
    """
    out: dict[AggregateKey, Collection[float]] = dict(earlier)
    categories = dict(zip(counts.dimensions, counts.categories, strict=True))
    position = {d: i for i, d in enumerate(counts.dimensions)}
    for (dims, key), values in rest.items():
        if not set(dims) <= set(categories):
            continue  # an aggregate of another table
        restated: set[float] = set()
        for value, held in values:
            published = dict(held)
            options = []
            for d, c in zip(dims, key, strict=True):
                if c == REST and d in published:  # Rest then, and the codes that left it since
                    entrants = (
                        e
                        for e in categories[d]
                        if e not in published[d] and e not in fixed.get(d, ())
                    )
                    options.append((REST, *entrants))
                else:
                    options.append((c,))
            shift = 0
            for combo in itertools.product(*options):
                if combo != key:
                    shift += _value(counts, position, dims, combo)
            restated.add(value - shift)
        # the values as published stay too: the rule by key is never weakened
        out[(dims, key)] = restated | set(earlier.get((dims, key), ()))
    return out


def _value(
    counts: CountTable, position: Mapping[str, int], dims: tuple[str, ...], key: tuple[str, ...]
) -> int:
    """The exact value of the aggregate (``dims``, ``key``) in ``counts`` (a sum of cells)."""
    at = [(position[d], c) for d, c in zip(dims, key, strict=True)]
    return sum(n for cell, n in counts.counts.items() if all(cell[i] == c for i, c in at))


def too_close(value: float, earlier: Iterable[float], k: int) -> bool:
    """True when ``value`` differs from an earlier exact value by 1 .. k-1 (it may not be
    published exactly: the difference would reveal a change smaller than k)."""
    return any(0 < abs(value - v) < k for v in earlier)


def differencing_mask(table: HierarchicalTable, earlier: History, k: int) -> BoolArray:
    """Every aggregate of ``table`` whose value is :func:`too_close` to an earlier exact
    publication (structural zeros never are: their 0 is public knowledge)."""
    check_k(k)
    out = np.zeros(table.size, dtype=bool)
    if not earlier:
        return out
    values = table.values
    index = table.by_breakdown
    pairs: Iterable[tuple[int | None, Collection[float] | None]]
    if len(earlier) < len(index):  # look up the shorter side
        pairs = ((index.get(key), before) for key, before in earlier.items())
    else:
        pairs = ((i, earlier.get(key)) for key, i in index.items())
    for i, before in pairs:
        if i is not None and before and too_close(int(values[i]), before, k):
            out[i] = True
    return np.asarray(out & ~table.structural, dtype=bool)


@dataclass(frozen=True)
class DifferencingStep:
    """The rule for tables published without margins (cells and total, primary suppression
    only): a published cell or total too close to an earlier exact value is suppressed.

    Such tables have no secondary suppression, so a suppressed cell may still follow from the
    total and the other cells; only tables with margins are audited (``secondary.md``).
    """

    earlier: History
    k: int

    @property
    def method(self) -> str:
        return DIFFERENCING_METHOD

    def apply(self, table: SuppressedTable) -> SuppressedTable:
        dims = table.dimensions
        cells = tuple(
            SuppressedCell(c.key, None, True)
            if c.count is not None
            and too_close(c.count, self.earlier.get((dims, c.key), ()), self.k)
            else c
            for c in table.cells
        )
        hide_total = table.total is not None and too_close(
            table.total, self.earlier.get(((), ()), ()), self.k
        )
        return dataclasses.replace(
            table,
            cells=cells,
            total=None if hide_total else table.total,
            total_suppressed=table.total_suppressed or hide_total,
        )
