"""A stream's table with every margin and the total, protected for release.

Primary suppression below k (zeros included), the differencing rule's forced suppressions
(``differencing.md``), secondary suppression across cells and margins — starting from the
pattern of the previous release of the stream to the same consumer, where given — and the
independent LP audit (``secondary.md``). A table the audit refuses raises :class:`AuditFailed`
and is not released. :func:`replay_margins`: the same exact counts as an earlier release give
that release's pattern again, when the rules and the audit allow it (``differencing.md``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trust.release.aggregate import CountTable
from trust.release.disclosure.audit import AuditFailed, AuditReport, assert_protected
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
    #: the suppressed aggregates the carry rule guards in the next release: below k now, or
    #: guarded in the previous release and below 2k now (``differencing.md``)
    guarded: frozenset[AggregateKey] = frozenset()
    #: the pattern is an earlier release's, given again for the same exact counts
    replayed: bool = False


def protect_margins(
    counts: CountTable,
    k: int,
    *,
    earlier: History | None = None,
    hierarchies: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = STANDARD_HIERARCHIES,
    previous: Collection[AggregateKey] | None = None,
    carry_below: int | None = None,
    guarded: Collection[AggregateKey] | None = None,
) -> ProtectedMargins:
    """Every cell, margin and the total of ``counts`` under primary suppression at ``k``, the
    differencing rule against ``earlier`` (exact values published before to the same consumer),
    secondary suppression and the LP audit.

    ``previous``: the aggregates the previous release of this stream to the same consumer
    suppressed. Secondary suppression starts from them (:func:`carried_pattern`): those whose
    value is now below ``carry_below`` (every one when None), so a value hidden before stays
    hidden while small, and the heuristic starts near its last answer. ``guarded``: what the
    previous release's carry rule guards (:attr:`ProtectedMargins.guarded` of the result says
    what this one's does).

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
        table,
        sensitive,
        k,
        start=start,
        audit_start=start is not None and carry_below is None,
        reuse=True,  # the same question again (another consumer, the same history): its answer
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
        report=_without_tables(report),
        seconds=time.perf_counter() - t0,
        carried=0 if start is None else int((start & ~sensitive).sum()),
        guarded=guarded_after(table, pattern.suppressed, k, guarded or ()),
    )


def replay_margins(
    counts: CountTable,
    k: int,
    hidden: Collection[AggregateKey],
    *,
    earlier: History | None = None,
    guarded: Collection[AggregateKey] | None = None,
    hierarchies: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = STANDARD_HIERARCHIES,
) -> ProtectedMargins | None:
    """The table of ``counts`` with exactly the aggregates ``hidden`` suppressed — the pattern
    of an earlier release to the same consumer made from the same exact counts — or None when
    that pattern may not be given again:

    - it would publish a value below k or one the differencing rule forbids now (``earlier``);
    - it would publish a value the previous release of the stream hid and the carry rule guards
      (``guarded``) while that value is below 2k;
    - it names an aggregate the table lacks, or the LP audit refuses it now.

    The published values are then exactly the earlier release's (``differencing.md``: the
    replay rule). The audit is run again with the values below k as the sensitive ones: an
    aggregate the differencing rule would force now and the pattern hides keeps the interval it
    had in the earlier release (the same table, the same pattern), which is all any exact value
    published since could be combined with then too.
    """
    t0 = time.perf_counter()
    check_k(k)
    table = from_count_table(counts, hierarchies)
    pattern = carried_pattern(table, hidden)
    if int(pattern.sum()) != len(set(hidden)):
        return None  # the earlier pattern names aggregates this table does not have
    primary = primary_mask(table, k)
    forced = differencing_mask(table, earlier or {}, k) & ~primary
    sensitive = np.asarray(primary | forced, dtype=bool)
    if (sensitive & ~pattern).any():
        return None
    if (carried_pattern(table, guarded or (), 2 * k) & ~pattern).any():
        return None
    try:
        report = assert_protected(table, pattern, k, sensitive=primary)
    except AuditFailed:
        return None
    steps = (PRIMARY_METHOD, DIFFERENCING_METHOD, SECONDARY_METHOD)
    return ProtectedMargins(
        table=_suppressed_table(counts, table, pattern, k, steps),
        primary=int(primary.sum()),
        forced=int(forced.sum()),
        secondary=int((pattern & ~sensitive).sum()),
        report=_without_tables(report),
        seconds=time.perf_counter() - t0,
        guarded=guarded_after(table, pattern, k, guarded or ()),
        replayed=True,
    )


def _without_tables(report: AuditReport) -> AuditReport:
    """The report without the tables its inner bounds rest on (several MiB on the four-way
    table; the audit remembers them itself for the next audit of the same pattern)."""
    return dataclasses.replace(report, tables=np.zeros((0, 0)))


def guarded_after(
    table: HierarchicalTable,
    suppressed: BoolArray,
    k: int,
    guarded: Collection[AggregateKey],
) -> frozenset[AggregateKey]:
    """The suppressed aggregates of ``table`` the carry rule guards in the next release: those
    below k, and those ``guarded`` before whose value is still below 2k."""
    keep = (
        suppressed
        & ~table.structural
        & ((table.values < k) | carried_pattern(table, guarded, 2 * k))
    )
    return frozenset(table.breakdown(int(i)) for i in np.flatnonzero(keep))


def carried_pattern(
    table: HierarchicalTable, previous: Collection[AggregateKey], below: int | None = None
) -> BoolArray:
    """The aggregates of ``table`` named in ``previous`` (dimensions, categories) whose value is
    below ``below`` (all when None); structural zeros and keys the table lacks are left out."""
    out = np.zeros(table.size, dtype=bool)
    index = table.by_breakdown
    for key in set(previous):
        i = index.get(key)
        if i is not None:
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
