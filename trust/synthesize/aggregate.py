"""The companion aggregate: every combination up to the reporting length, counted and rounded.

Published beside the synthetic data (as the CTDC's dashboards do), so analysts can read reported
counts next to the synthetic estimates: for every combination of 1 … ``length`` attributes held by
at least ``k`` sensitive rows, its count rounded down to a multiple of ``k``. Combinations held by
fewer than ``k`` rows round down to 0 and are left out, so a listed combination is always held by
at least ``k`` people (what the independent checker, :func:`trust.synthesize.check.check_aggregate`,
verifies on its own counting path), and an absent one by fewer than ``k`` or by none — never a 0
for a small but present one.

This is what ``tiptrust synthesize --aggregate-out`` writes for a data holder's own CSV. Read
together, these counts can show a combination of fewer than ``k`` rows non-empty (a parent minus
its listed children), so the ``synthetic_microdata`` release does not publish them: its companion
is cut from a protected table (:mod:`trust.synthesize.companion`, ``METHOD.md``). A release
carries its companion in its metadata as :func:`encode_aggregate`'s JSON (the signed metadata, so
it is signed with the records): one ``[columns, values, count]`` triple per combination, columns
in the table's order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trust.synthesize.combinations import column_sets, group_rows
from trust.synthesize.data import Table
from trust.synthesize.errors import InvalidReportingLength, InvalidResolution


@dataclass(frozen=True)
class AggregateCount:
    """One reported combination: its columns (in the table's order), their values, and its
    count rounded down to a multiple of k."""

    columns: tuple[str, ...]
    values: tuple[str, ...]
    count: int

    @property
    def combination(self) -> str:
        """``column:value;column:value`` in column order (the command line's CSV column)."""
        return ";".join(f"{c}:{v}" for c, v in zip(self.columns, self.values, strict=True))


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
        names = tuple(table.columns[j] for j in cols)
        for g, row in zip(kept[order].tolist(), values[order].tolist(), strict=True):
            count = int(groups.count[g])
            out.append(
                AggregateCount(
                    names,
                    tuple(table.value(j, c) for j, c in zip(cols, row, strict=True)),
                    count - count % k,
                )
            )
    return out


def encode_aggregate(counts: Sequence[AggregateCount]) -> str:
    """The aggregate as compact JSON, ``[[columns, values, count], …]`` in its order: what a
    release's metadata carries (a metadata value is a string)."""
    return json.dumps(
        [[list(a.columns), list(a.values), a.count] for a in counts],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_aggregate(text: str) -> list[AggregateCount]:
    """The aggregate back from :func:`encode_aggregate`'s JSON."""
    return [AggregateCount(tuple(c), tuple(v), int(n)) for c, v, n in json.loads(text)]
