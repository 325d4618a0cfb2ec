"""The companion aggregate: every combination up to the reporting length, counted and rounded.

Published beside the synthetic data (as the CTDC's dashboards do), so analysts can read reported
counts next to the synthetic estimates: for every combination of 1 … ``length`` attributes held by
at least ``k`` sensitive rows, its count rounded down to a multiple of ``k``. Combinations held by
fewer than ``k`` rows round down to 0 and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trust.synthesize.combinations import column_sets, group_rows
from trust.synthesize.data import Table
from trust.synthesize.errors import InvalidReportingLength, InvalidResolution


@dataclass(frozen=True)
class AggregateCount:
    """One reported combination: ``column:value;column:value`` in column order, and its count."""

    combination: str
    count: int


def companion_aggregate(table: Table, k: int, length: int) -> list[AggregateCount]:
    """Counts of all combinations of up to ``length`` attributes, rounded down to multiples of
    ``k``, shortest first, then in column and value order."""
    if k < 1:
        raise InvalidResolution("k must be at least 1")
    if length < 1:
        raise InvalidReportingLength("the reporting length must be at least 1")
    out: list[AggregateCount] = []
    for cols in column_sets(table.n_columns, length):
        groups = group_rows(table.codes, cols)
        kept = np.flatnonzero(groups.count >= k)
        if kept.size == 0:
            continue
        values = table.codes[groups.first[kept]][:, list(cols)]
        order = np.lexsort(values.T[::-1])
        for g, row in zip(kept[order].tolist(), values[order].tolist(), strict=True):
            name = ";".join(table.attribute(j, c) for j, c in zip(cols, row, strict=True))
            count = int(groups.count[g])
            out.append(AggregateCount(name, count - count % k))
    return out
