"""Cell-key perturbation (the ONS / ABS method; method note: ``noise.md``).

Every counted person carries a secret **record key**, an integer in ``[0, 2^32)`` fixed by their
stable person id (``trust.release.cellkeys``). An aggregate's **cell key** is the sum of its
persons' record keys modulo ``2^32`` (:func:`roll_up`): the same persons give the same cell key in
every table, every stream and every release. A **perturbation table** maps (count, cell key) to
the noise added to the count, so the same persons are always published as the same value: a
consumer who receives a value again learns nothing new, and cannot average releases.

The table here (:class:`PerturbationTable`) follows the ONS layout — rows by count, 256 cell-key
columns (``cell key mod 256``) — with noise in ``[-max_noise, max_noise]``, symmetric (so
unbiased), more likely near 0 (triangular weights), and never taking a published count (>= k) below
k. The table is public in principle (it is determined by k and ``max_noise``; its id is in every
release); what protects is that the record keys are secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from trust.release.disclosure.suppression import SuppressedTable, map_published
from trust.release.history import AggregateKey

KEY_MODULUS = 2**32
"""Record and cell keys are integers in ``[0, KEY_MODULUS)``."""

KEY_COLUMNS = 256
"""The perturbation table's cell-key columns (the ONS tables' 0 … 255)."""


def roll_up(
    dimensions: Sequence[str],
    hierarchies: Mapping[str, Mapping[str, Sequence[str]]],
    cells: Mapping[tuple[str, ...], int],
    modulus: int | None = None,
) -> dict[AggregateKey, int]:
    """The sum of ``cells``' values over every aggregate of the table — each cell, each margin
    (parents of ``hierarchies`` included) and the total (``((), ())``) — modulo ``modulus`` if
    given. Only aggregates with at least one cell of ``cells`` are present.

    One dimension at a time: each partial sum is added to every node above it in that dimension
    (its parents, then the margin), so the work follows the number of aggregates, not cells
    times aggregates per cell."""
    acc: dict[tuple[str | None, ...], int] = {cell: n for cell, n in cells.items()}
    for i, d in enumerate(dimensions):
        parent_of = {c: p for p, kids in hierarchies.get(d, {}).items() for c in kids}
        above: dict[str | None, list[str | None]] = {}
        out = dict(acc)
        for key, value in acc.items():
            node = key[i]
            ups = above.get(node)
            if ups is None:
                ups, at = [], node
                while at in parent_of:
                    at = parent_of[at]
                    ups.append(at)
                ups.append(None)  # the margin over this dimension
                above[node] = ups
            for up in ups:
                moved = (*key[:i], up, *key[i + 1 :])
                out[moved] = out.get(moved, 0) + value
        acc = out
    result: dict[AggregateKey, int] = {}
    for key, value in acc.items():
        dims = tuple(d for d, n in zip(dimensions, key, strict=True) if n is not None)
        nodes = tuple(n for n in key if n is not None)
        result[(dims, nodes)] = value % modulus if modulus else value
    return result


def sum_keys(keys: Iterable[int]) -> int:
    """A cell key: the sum of record keys modulo :data:`KEY_MODULUS`."""
    return sum(keys) % KEY_MODULUS


@dataclass(frozen=True)
class PerturbationTable:
    """Noise by (count, cell key) for published counts of at least ``k`` (see the module
    docstring). ``row(c)`` lists, for each of the 256 cell-key columns, the noise added to count
    ``c``; rows from ``k + max_noise`` on are all the same."""

    k: int
    max_noise: int = 2
    _rows: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_noise < 0:
            raise ValueError("a perturbation table needs k >= 1 and max_noise >= 0")

    def row(self, count: int) -> tuple[int, ...]:
        """The noise for ``count`` in each cell-key column (all 0 below k: such counts are never
        published, or are structural zeros whose 0 is public)."""
        if count < self.k:
            return (0,) * KEY_COLUMNS
        m = min(self.max_noise, count - self.k)
        cached = self._rows.get(m)
        if cached is None:
            cached = self._rows[m] = _symmetric_row(m)
        return cached

    def noise(self, count: int, cell_key: int) -> int:
        """The noise added to ``count`` for an aggregate with ``cell_key``."""
        return self.row(count)[cell_key % KEY_COLUMNS]

    @property
    def table_id(self) -> str:
        """A name for the table's content, stated in each release (the table is no secret)."""
        rows = [self.row(c) for c in range(self.k, self.k + self.max_noise + 1)]
        text = repr((self.k, self.max_noise, rows)).encode("ascii")
        return f"ptable-k{self.k}-d{self.max_noise}-{hashlib.sha256(text).hexdigest()[:12]}"


def _symmetric_row(m: int) -> tuple[int, ...]:
    """256 noise values in ``[-m, m]``: as many ``+d`` as ``-d`` (mean exactly 0), each ``d``
    about as often as its triangular weight ``m + 1 - |d|`` says, ``0`` the rest."""
    if m == 0:
        return (0,) * KEY_COLUMNS
    weight = sum(m + 1 - abs(d) for d in range(-m, m + 1))
    slots = {d: KEY_COLUMNS * (m + 1 - d) // weight for d in range(1, m + 1)}
    zero = KEY_COLUMNS - 2 * sum(slots.values())
    row: list[int] = []
    for d in range(-m, 0):
        row += [d] * slots[-d]
    row += [0] * zero
    for d in range(1, m + 1):
        row += [d] * slots[d]
    return tuple(row)


CELL_KEY_METHOD = (
    "cell-key perturbation: noise from perturbation table {table_id} by each value's count and "
    "cell key (the sum of its persons' secret record keys), so the same persons give the same "
    "value in every table and release (values not exact)"
)


@dataclass(frozen=True)
class CellKeyStep:
    """Every published value perturbed by ``ptable`` under its aggregate's cell key."""

    ptable: PerturbationTable
    cell_keys: Mapping[AggregateKey, int]

    @property
    def method(self) -> str:
        return CELL_KEY_METHOD.format(table_id=self.ptable.table_id)

    def apply(self, table: SuppressedTable) -> SuppressedTable:
        if table.k < self.ptable.k:
            raise ValueError("the perturbation table was made for a larger k than the table's")
        return map_published(
            table,
            lambda a, v: v + self.ptable.noise(v, self.cell_keys.get(a, 0)),
            {
                "method_name": "cell_key",
                "perturbation_table": self.ptable.table_id,
                "max_noise": str(self.ptable.max_noise),
            },
        )
