"""Counting attribute combinations without enumerating every subset of every record.

Two tools, each suited to one access pattern:

- :class:`RowSets` answers "how many rows hold this combination?" for combinations built one
  attribute at a time (the classic mode's sampling): each attribute's rows are a bitset (a Python
  ``int``), a combination's rows are the AND of its attributes' bitsets, and its count is the
  popcount. Counts are memoised by combination, so records that share a prefix share the work.
- :func:`group_rows` counts, for one set of columns at once, every combination over those columns
  (one vectorised sort), which the default mode, the companion aggregate and the utility report
  use column set by column set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trust.synthesize.data import Codes, Table

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_KEY_LIMIT = 2**62


@dataclass(frozen=True)
class Groups:
    """The combinations over one column set: each holding row's group, and each group's count.

    ``group[i]`` is row ``i``'s group (-1 when the row misses one of the columns); ``count[g]`` is
    the (weighted) number of rows in group ``g``; ``first[g]`` is a row of group ``g``.
    """

    group: Ints
    count: Ints
    first: Ints

    def support(self) -> Ints:
        """Per row, the count of the row's own combination over the columns (0 when it has none)."""
        out = np.zeros(self.group.shape[0], dtype=np.int64)
        held = self.group >= 0
        out[held] = self.count[self.group[held]]
        return out


def group_rows(codes: Codes, columns: Sequence[int], weights: Ints | None = None) -> Groups:
    """Group the rows of ``codes`` by their values in ``columns`` (rows missing one: group -1)."""
    n = codes.shape[0]
    cols = list(columns)
    sub = codes[:, cols]
    held = np.all(sub > 0, axis=1) if cols else np.ones(n, dtype=bool)
    idx = np.flatnonzero(held)
    group = np.full(n, -1, dtype=np.int64)
    if idx.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Groups(group, empty, empty)
    sub = sub[idx].astype(np.int64)
    radix = (sub.max(axis=0) + 1) if cols else np.zeros(0, dtype=np.int64)
    if float(np.prod(radix.astype(np.float64))) < _KEY_LIMIT:
        key = np.zeros(idx.size, dtype=np.int64)
        for j in range(len(cols)):
            key = key * radix[j] + sub[:, j]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    else:  # too many values to pack into one integer: group the rows themselves
        _, first, inverse = np.unique(sub, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    w = None if weights is None else weights[idx]
    count = np.bincount(inverse, weights=w).astype(np.int64)
    group[idx] = inverse
    return Groups(group, count, idx[first].astype(np.int64))


class RowSets:
    """Per attribute, the set of rows that hold it, as a bitset; combination counts memoised.

    Attributes are numbered globally: column ``j`` value code ``c`` is ``offset[j] + c``.
    """

    def __init__(self, table: Table) -> None:
        codes = table.codes
        n = table.n_rows
        self.offset: list[int] = []
        self.column: list[int] = []
        self._bits: list[int] = []
        for j in range(table.n_columns):
            self.offset.append(len(self._bits) - 1)  # code c ≥ 1 → id offset + c
            for c in range(1, len(table.vocab[j]) + 1):
                held = np.packbits(codes[:, j] == c, bitorder="little")
                self._bits.append(int.from_bytes(held.tobytes(), "little"))
                self.column.append(j)
        self.all_rows = (1 << n) - 1
        self._counts: dict[tuple[int, ...], int] = {}

    def attribute_id(self, column: int, code: int) -> int:
        return self.offset[column] + code

    def code_of(self, attribute: int) -> int:
        return attribute - self.offset[self.column[attribute]]

    def rows(self, attribute: int) -> int:
        return self._bits[attribute]

    def count_with(self, combination: tuple[int, ...], rows: int, attribute: int) -> int:
        """Rows holding ``combination`` + ``attribute``; ``rows`` are ``combination``'s rows.

        ``combination`` must be sorted and must not contain ``attribute``.
        """
        key = tuple(sorted((*combination, attribute)))
        found = self._counts.get(key)
        if found is None:
            found = (rows & self._bits[attribute]).bit_count()
            self._counts[key] = found
        return found


def distinct_rows(codes: Codes) -> tuple[Codes, Ints, Ints]:
    """The distinct rows of ``codes`` (a missing cell is a value here), each row's index among
    them, and how many rows each one stands for."""
    patterns, inverse, count = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return (
        np.ascontiguousarray(patterns, dtype=np.int32),
        inverse.reshape(-1).astype(np.int64),
        count.astype(np.int64),
    )


def column_sets(n_columns: int, max_length: int) -> list[tuple[int, ...]]:
    """Every set of 1 … ``max_length`` columns, shortest first, each in column order."""
    from itertools import combinations

    return [
        cols
        for length in range(1, min(max_length, n_columns) + 1)
        for cols in combinations(range(n_columns), length)
    ]


@dataclass(frozen=True)
class SubCombinations:
    """Every sub-combination of every distinct record, counted in the whole table.

    For distinct record ``p`` and column mask ``M`` (bit ``j`` = column ``j``): ``support[p, M]``
    is the number of rows holding ``p``'s values on the columns of ``M`` (0 when ``p`` misses one
    of them) and ``key[p, M]`` a number naming that combination, equal across records exactly
    when the combinations are equal (-1 when ``p`` misses a column). ``2**columns`` masks per
    record: meant for narrow tables (see :data:`MAX_LATTICE_COLUMNS`).
    """

    patterns: Codes
    inverse: Ints
    multiplicity: Ints
    support: Ints
    key: Ints
    present: Ints  # per distinct record, the mask of its non-missing columns


MAX_LATTICE_COLUMNS = 8


def sub_combinations(table: Table) -> SubCombinations:
    """Count every sub-combination of every distinct record: one grouping per column mask."""
    m = table.n_columns
    patterns, inverse, multiplicity = distinct_rows(table.codes)
    d = patterns.shape[0]
    size = 1 << m
    support = np.zeros((d, size), dtype=np.int64)
    key = np.full((d, size), -1, dtype=np.int64)
    support[:, 0] = table.n_rows
    key[:, 0] = 0
    for mask in range(1, size):
        cols = [j for j in range(m) if mask >> j & 1]
        groups = group_rows(patterns, cols, weights=multiplicity)
        support[:, mask] = groups.support()
        key[:, mask] = np.where(groups.group >= 0, groups.group * size + mask, -1)
    present = ((patterns > 0).astype(np.int64) << np.arange(m, dtype=np.int64)).sum(axis=1)
    return SubCombinations(patterns, inverse, multiplicity, support, key, present)
