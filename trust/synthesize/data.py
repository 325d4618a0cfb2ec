"""A categorical table: each cell is an attribute ``column:value``, an empty cell is missing.

The synthesisers work on integer codes: column ``j`` value code ``c ≥ 1`` stands for
``vocab[j][c - 1]`` and code 0 for a missing cell. A *combination* is a set of attributes from
distinct columns; its count in a table is the number of rows that hold every one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trust.synthesize.errors import InvalidTable

Codes = npt.NDArray[np.int32]
MISSING = 0


@dataclass(frozen=True)
class Table:
    """Rows of categorical attributes, as codes, with the vocabulary that names them."""

    columns: tuple[str, ...]
    vocab: tuple[tuple[str, ...], ...]
    codes: Codes  # shape (rows, columns), 0 = missing

    @classmethod
    def from_rows(cls, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
        """Encode string rows; a cell that is empty after stripping whitespace is missing."""
        names = tuple(columns)
        if not names:
            raise InvalidTable("a table needs at least one column")
        if len(set(names)) != len(names):
            raise InvalidTable("column names must be distinct")
        cells: list[list[str]] = [[] for _ in names]
        for i, row in enumerate(rows, start=1):
            if len(row) != len(names):
                raise InvalidTable(f"row {i} has {len(row)} cells, expected {len(names)}")
            for j, cell in enumerate(row):
                cells[j].append(cell.strip())
        vocab = tuple(tuple(sorted({v for v in col if v})) for col in cells)
        n = len(cells[0])
        codes = np.zeros((n, len(names)), dtype=np.int32)
        for j, col in enumerate(cells):
            index = {v: c for c, v in enumerate(vocab[j], start=1)}
            index[""] = MISSING
            codes[:, j] = np.fromiter((index[v] for v in col), dtype=np.int32, count=n)
        return cls(names, vocab, codes)

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def with_codes(self, codes: Codes) -> Table:
        """Another table over the same columns and vocabulary (a synthetic one)."""
        return Table(self.columns, self.vocab, np.ascontiguousarray(codes, dtype=np.int32))

    def value(self, column: int, code: int) -> str:
        return "" if code == MISSING else self.vocab[column][code - 1]

    def attribute(self, column: int, code: int) -> str:
        """The attribute's name, ``column:value``."""
        return f"{self.columns[column]}:{self.vocab[column][code - 1]}"

    def rows(self) -> Iterator[tuple[str, ...]]:
        """The rows as strings, an empty string for a missing cell."""
        names = [("", *v) for v in self.vocab]
        for row in self.codes.tolist():
            yield tuple(names[j][c] for j, c in enumerate(row))

    def attribute_counts(self) -> list[npt.NDArray[np.int64]]:
        """Per column, the count of each value code (index 0 counts missing cells)."""
        return [
            np.bincount(self.codes[:, j], minlength=len(self.vocab[j]) + 1).astype(np.int64)
            for j in range(self.n_columns)
        ]


def floor_k(count: int, k: int) -> int:
    """``count`` rounded down to a multiple of ``k``."""
    return count - count % k
