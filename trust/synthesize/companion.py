"""The companion aggregate of a synthetic-records release, cut from a protected count table.

Rounding every combination's count down to a multiple of k is not enough when all of them are
published together: a reader who subtracts the listed sub-combinations from a listed parent (a
linear programme over the table crossing every attribute) shows some combination held by 1 …
k - 1 persons to be non-empty (``METHOD.md``, "The companion aggregate", measured about 1-2 %
of them). So the counts come from the release path's protection instead: the persons' table
over every attribute of the stream (for ``synthetic_microdata`` exactly the table of the count
stream ``victims_by_sex_age_form``) with every margin goes through
:func:`trust.release.disclosure.margins.protect_margins` — primary suppression below k, secondary
suppression over every margin, and the independent LP audit, which proves that no suppressed
value can be narrowed below k (a small one always down to 0 and up to k or more) from every
value published exactly. The companion aggregate is then a subset of what that table could
publish — the aggregates broken down by 1 … ``length`` attributes, at leaf categories (no 4-way
cell, no grand total, no parent such as ``0-17``) — each value rounded down to a multiple of k
(:func:`trust.release.disclosure.rounding.round_down`, the count streams' round-down method,
applied after suppression as they apply it). Leaving published values out and replacing each by
an interval holding it only widens the set of tables a reader cannot exclude, so every interval
the audit proved stays at least that wide. Suppressed aggregates are left out of the list (not
listed as null): a combination not listed is held by fewer than k persons, or is hidden so that
no small one can be worked out. The audit assumed a reader who holds only that table; the reader
of this release also holds the records' single counts, and perhaps the count stream's cells, so
:mod:`trust.synthesize.beside` withholds the few listed counts that would help them show a small
combination non-empty.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from trust.release.aggregate import CountTable
from trust.release.disclosure.margins import protect_margins
from trust.release.disclosure.rounding import round_down
from trust.release.disclosure.table import STANDARD_HIERARCHIES, TOTAL
from trust.release.history import AggregateKey
from trust.synthesize.aggregate import AggregateCount
from trust.synthesize.beside import companion_beside_records
from trust.synthesize.errors import ColumnMismatch, InvalidReportingLength, InvalidResolution


@dataclass(frozen=True)
class ProtectedCompanion:
    """A companion aggregate and how it was made (``hidden``, ``seconds`` stay in the trust).

    ``counts``: the listed combinations, shortest first, then by the columns' order and values;
    ``hidden``: the combinations of 1 … length attributes the protected table suppressed
    (below k, or secondary), zeros included; ``withheld``: those it published but the companion
    withholds because of what the records say beside it (:mod:`trust.synthesize.beside`);
    ``seconds``: wall time of the whole.
    """

    counts: tuple[AggregateCount, ...]
    hidden: int
    withheld: int
    seconds: float


def never_listed(counts: CountTable, length: int) -> frozenset[AggregateKey]:
    """The aggregates of ``counts``' table with margins that a companion aggregate of reporting
    ``length`` never lists: those broken down by more than ``length`` dimensions (the cells,
    at the stream's length 3), the grand total, and every one at a parent of a hierarchy."""
    nodes = []
    for d, cats in zip(counts.dimensions, counts.categories, strict=True):
        parents = tuple(p for p, _ in STANDARD_HIERARCHIES.get(d, ()))
        nodes.append((*cats, *parents, TOTAL))
    leaves = [set(c) for c in counts.categories]
    out: set[AggregateKey] = set()
    for key in itertools.product(*nodes):
        kept = [(d, v) for d, v in zip(counts.dimensions, key, strict=True) if v != TOTAL]
        at_leaves = all(v == TOTAL or v in leaves[j] for j, v in enumerate(key))
        if not 1 <= len(kept) <= length or not at_leaves:
            out.add((tuple(d for d, _ in kept), tuple(v for _, v in kept)))
    return frozenset(out)


def protected_listing(
    counts: CountTable, columns: Sequence[str], k: int, length: int
) -> tuple[list[AggregateCount], int]:
    """What the protected table of ``counts`` publishes that a companion aggregate lists — its
    combinations of 1 … ``length`` attributes at leaf categories, each rounded down to a
    multiple of ``k``, shortest first, then by the columns' order and values — before anything
    is withheld beside the records; and how many such combinations the table suppressed.

    Raises:
        ColumnMismatch: ``columns`` are not the table's dimensions (in any order).
        AuditFailed, SuppressionFailed: the release path could not protect the table.
    """
    if k < 1:
        raise InvalidResolution("k must be at least 1")
    if length < 1:
        raise InvalidReportingLength("the reporting length must be at least 1")
    if sorted(columns) != sorted(counts.dimensions) or len(set(columns)) != len(columns):
        raise ColumnMismatch("the companion's columns are not the count table's dimensions")
    # what the companion never publishes is hidden from the outset: secondary suppression then
    # protects the small values with those, instead of hiding margins to cover cells that were
    # never going to be published
    protected = protect_margins(counts, k, previous=never_listed(counts, length))
    leaves = {d: set(c) for d, c in zip(counts.dimensions, counts.categories, strict=True)}
    order = {c: j for j, c in enumerate(columns)}
    listed: list[tuple[tuple[int, ...], tuple[str, ...], AggregateCount]] = []
    hidden = 0
    for a in protected.table.aggregates:
        if not 1 <= len(a.dimensions) <= length:
            continue  # the cells and the total (and anything longer than the reporting length)
        if not all(v in leaves[d] for d, v in zip(a.dimensions, a.key, strict=True)):
            continue  # a parent of a hierarchy (0-17, 18+): not a value of a record
        if a.value is None:
            hidden += 1
            continue
        if a.value < k:
            continue  # a structural zero: public knowledge, not a count of persons
        at = sorted(range(len(a.dimensions)), key=lambda i: order[a.dimensions[i]])
        cols = tuple(a.dimensions[i] for i in at)
        values = tuple(a.key[i] for i in at)
        positions = tuple(order[c] for c in cols)
        listed.append((positions, values, AggregateCount(cols, values, round_down(a.value, k))))
    listed.sort(key=lambda x: (len(x[0]), x[0], x[1]))
    return [x[2] for x in listed], hidden


def protected_companion(
    counts: CountTable, columns: Sequence[str], k: int, length: int
) -> ProtectedCompanion:
    """The companion aggregate of ``counts`` (the persons' table over every column, all
    categories, zeros included) at resolution ``k`` and reporting ``length``, each combination's
    columns in the order of ``columns`` (the synthetic table's): :func:`protected_listing`, less
    what it must withhold beside the records (:mod:`trust.synthesize.beside`).

    Raises:
        ColumnMismatch: ``columns`` are not the table's dimensions (in any order).
        AuditFailed, SuppressionFailed: the release path could not protect the table (nothing
            is then published).
    """
    t0 = time.perf_counter()
    listed, hidden = protected_listing(counts, columns, k, length)
    beside = companion_beside_records(counts, listed, k)
    return ProtectedCompanion(
        counts=beside.counts,
        hidden=hidden,
        withheld=beside.withheld,
        seconds=time.perf_counter() - t0,
    )
