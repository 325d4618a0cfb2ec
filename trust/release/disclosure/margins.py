"""A stream's table with every margin and the total, protected for release.

Primary suppression below k (zeros included), the differencing rule's forced suppressions
(``differencing.md``), secondary suppression across cells and margins — starting from the
pattern of the previous release of the stream to the same consumer, where given — and the
independent LP audit (``secondary.md``). A table the audit refuses raises :class:`AuditFailed`
and is not released.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trust.release.aggregate import CountTable
from trust.release.disclosure.audit import AuditReport, assert_protected
from trust.release.disclosure.differencing import (
    DIFFERENCING_METHOD,
    History,
    differencing_mask,
)
from trust.release.disclosure.secondary import (
    SECONDARY_METHOD,
    primary_mask,
    secondary_suppression,
)
from trust.release.disclosure.suppression import (
    PRIMARY_METHOD,
    SuppressedCell,
    SuppressedTable,
    TableAggregate,
    check_k,
)
from trust.release.disclosure.table import (
    STANDARD_HIERARCHIES,
    TOTAL,
    BoolArray,
    HierarchicalTable,
    from_count_table,
)
from trust.release.history import AggregateKey


@dataclass(frozen=True)
class ProtectedMargins:
    """A table with margins ready to publish, and how it was protected (stays in the trust:
    ``report`` and the counts hold true values)."""

    table: SuppressedTable
    primary: int
    forced: int
    secondary: int
    report: AuditReport
    seconds: float
    #: aggregates hidden from the outset because the previous release hid them
    carried: int = 0


def protect_margins(
    counts: CountTable,
    k: int,
    *,
    earlier: History | None = None,
    hierarchies: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = STANDARD_HIERARCHIES,
    previous: Collection[AggregateKey] | None = None,
    carry_below: int | None = None,
) -> ProtectedMargins:
    """Every cell, margin and the total of ``counts`` under primary suppression at ``k``, the
    differencing rule against ``earlier`` (exact values published before to the same consumer),
    secondary suppression and the LP audit.

    ``previous``: the aggregates the previous release of this stream to the same consumer
    suppressed. Secondary suppression starts from them (:func:`carried_pattern`): those whose
    value is now below ``carry_below`` (every one when None), so a value hidden before stays
    hidden while small, and the heuristic starts near its last answer.

    Raises:
        AuditFailed: the audit finds a suppressed value pinned or narrowed below k.
        SuppressionFailed: secondary suppression found no protected pattern.
    """
    t0 = time.perf_counter()
    check_k(k)
    table = from_count_table(counts, hierarchies)
    primary = primary_mask(table, k)
    forced = differencing_mask(table, earlier or {}, k) & ~primary
    sensitive = np.asarray(primary | forced, dtype=bool)
    start = None if previous is None else carried_pattern(table, previous, carry_below)
    # a whole earlier pattern usually passes as it is: audit it first; a partial one rarely does
    pattern = secondary_suppression(
        table, sensitive, k, start=start, audit_start=start is not None and carry_below is None
    )
    # the release's last check, independent of how the pattern was found (the audit that ended
    # secondary suppression answers it when it is of exactly this pattern)
    report = assert_protected(table, pattern.suppressed, k, pattern.rule, sensitive=pattern.primary)
    steps = (PRIMARY_METHOD, DIFFERENCING_METHOD, SECONDARY_METHOD)
    out = _suppressed_table(counts, table, pattern.suppressed, k, steps)
    return ProtectedMargins(
        table=out,
        primary=int(primary.sum()),
        forced=int(forced.sum()),
        secondary=int(pattern.secondary.sum()),
        report=report,
        seconds=time.perf_counter() - t0,
        carried=0 if start is None else int((start & ~sensitive).sum()),
    )


def carried_pattern(
    table: HierarchicalTable, previous: Collection[AggregateKey], below: int | None = None
) -> BoolArray:
    """The aggregates of ``table`` named in ``previous`` (dimensions, categories) whose value is
    below ``below`` (all when None); structural zeros and keys the table lacks are left out."""
    wanted = set(previous)
    out = np.zeros(table.size, dtype=bool)
    if not wanted:
        return out
    for i in range(table.size):
        if table.breakdown(i) in wanted:
            out[i] = True
    if below is not None:
        out &= table.values < below
    return np.asarray(out & ~table.structural, dtype=bool)


def _suppressed_table(
    counts: CountTable,
    table: HierarchicalTable,
    suppressed: np.ndarray,
    k: int,
    steps: tuple[str, ...],
) -> SuppressedTable:
    def value(i: int) -> int | None:
        return None if suppressed[i] else int(table.values[i])

    aggregates = []
    for i in range(table.size):
        dims, key = table.breakdown(i)
        aggregates.append(TableAggregate(dims, key, value(i)))
    cells = tuple(
        SuppressedCell(key, value(table.index(key)), bool(suppressed[table.index(key)]))
        for key in counts.cell_keys()
    )
    total = table.index(tuple(TOTAL for _ in table.dimensions))
    return SuppressedTable(
        stream=counts.stream,
        dimensions=counts.dimensions,
        categories=counts.categories,
        cells=cells,
        total=value(total),
        total_suppressed=bool(suppressed[total]),
        period_start=counts.period_start,
        period_end=counts.period_end,
        k=k,
        steps=steps,
        aggregates=tuple(aggregates),
        hierarchies={
            d.name: {parent: tuple(children) for parent, children in d.hierarchy}
            for d in table.dimensions
            if d.hierarchy
        },
    )
