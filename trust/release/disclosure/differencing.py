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
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from trust.release.disclosure.suppression import SuppressedCell, SuppressedTable, check_k
from trust.release.disclosure.table import BoolArray, HierarchicalTable
from trust.release.history import AggregateKey  # (dimensions, categories): defined without numpy

#: Every exact value published earlier, per aggregate.
History = Mapping[AggregateKey, Collection[float]]

DIFFERENCING_METHOD = (
    "differencing safety: a value is published exactly only if it differs by 0 or by at least k "
    "from every earlier exact publication of the same aggregate to this consumer"
)


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
    for i in range(table.size):
        before = earlier.get(table.breakdown(i))
        if before and too_close(int(values[i]), before, k):
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
