"""A count table with its hierarchy: every cell, every margin and the total, and how they add up.

A :class:`Dimension` has leaf categories, optional parents (``0-17`` = ``0-11`` + ``12-17``) and its
total :data:`TOTAL`. A :class:`HierarchicalTable` holds one **aggregate** for every combination of
one node per dimension — the cells (every coordinate a leaf), the margins (some coordinates a
parent or the total) and the grand total (every coordinate the total) — computed from the cell
counts, and the **additive constraints** that link them: for every dimension, every parent node
in it and every combination of nodes of the other dimensions, the parent aggregate equals the sum
of its children's. Secondary suppression (``secondary.py``) and the audit (``audit.py``) work on
these constraints and nothing else (method note: ``secondary.md``).

Aggregates are numbered in the row-major order of the node grid (first dimension slowest); node
order within a dimension is: the leaves, then the parents in their declared order, then the total.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from schemas.rules import ADULT_BAND_UNKNOWN, MINOR_BAND_UNKNOWN
from trust.release.aggregate import CountTable
from trust.release.errors import ReleaseError

#: The node of every dimension that stands for "all categories" (a margin over that dimension).
TOTAL = "Total"

#: The age groups' hierarchy of the release streams: children and adults; ``Unknown`` stays a
#: top-level category beside them.
AGE_GROUP_HIERARCHY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("0-17", ("0-11", "12-17", MINOR_BAND_UNKNOWN)),
    ("18+", ("18-24", "25-34", "35-44", "45+", ADULT_BAND_UNKNOWN)),
)

#: The hierarchies the standard streams declare, by dimension name (the others are flat).
STANDARD_HIERARCHIES: Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "age_group": AGE_GROUP_HIERARCHY,
}

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class InvalidTable(ReleaseError):
    """A table or hierarchy that cannot be built: unknown code, cycle, negative or structural
    count, … (the message names the dimension or rule, never a count)."""

    code = "invalid_table"


@dataclass(frozen=True)
class Dimension:
    """One dimension: its leaf ``categories`` (in order) and ``hierarchy`` as (parent, children).

    Children are leaves or other parents; every node has at most one parent; the nodes without
    a parent are the children of :data:`TOTAL`. A parent is not a leaf (it has no count of its
    own): a category such as "a minor of unknown band" is a leaf child of ``0-17``.
    """

    name: str
    categories: tuple[str, ...]
    hierarchy: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        leaves = self.categories
        parents = tuple(p for p, _ in self.hierarchy)
        if not leaves:
            raise InvalidTable(f"dimension {self.name}: no categories")
        nodes = (*leaves, *parents)
        if len(set(nodes)) != len(nodes):
            raise InvalidTable(f"dimension {self.name}: a category or parent is declared twice")
        if TOTAL in nodes:
            raise InvalidTable(f"dimension {self.name}: {TOTAL!r} is reserved for the margin")
        seen: set[str] = set()
        for parent, children in self.hierarchy:
            if not children:
                raise InvalidTable(f"dimension {self.name}: parent {parent!r} has no children")
            for c in children:
                if c not in nodes:
                    raise InvalidTable(f"dimension {self.name}: unknown child {c!r}")
                if c in seen:
                    raise InvalidTable(f"dimension {self.name}: {c!r} has two parents")
                seen.add(c)
        # no cycles: every node reaches the top by following parents
        parent_of = {c: p for p, cs in self.hierarchy for c in cs}
        for node in nodes:
            steps, at = 0, node
            while at in parent_of:
                at, steps = parent_of[at], steps + 1
                if steps > len(nodes):
                    raise InvalidTable(f"dimension {self.name}: the hierarchy has a cycle")

    @property
    def nodes(self) -> tuple[str, ...]:
        """Leaves, parents (declared order), then :data:`TOTAL`."""
        return (*self.categories, *(p for p, _ in self.hierarchy), TOTAL)

    def children(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Every parent node with its children, :data:`TOTAL` last (its children: the top)."""
        child = {c for _, cs in self.hierarchy for c in cs}
        top = tuple(n for n in self.nodes[:-1] if n not in child)
        return (*self.hierarchy, (TOTAL, top))

    def leaves_under(self, node: str) -> tuple[str, ...]:
        """The leaf categories a node adds up (itself if a leaf)."""
        if node in self.categories:
            return (node,)
        kids = dict(self.children())
        if node not in kids:
            raise InvalidTable(f"dimension {self.name}: unknown category {node!r}")
        return tuple(leaf for c in kids[node] for leaf in self.leaves_under(c))

    def summation(self) -> IntArray:
        """The 0/1 matrix (nodes x leaves): which leaves each node adds up."""
        out = np.zeros((len(self.nodes), len(self.categories)), dtype=np.int64)
        index = {c: i for i, c in enumerate(self.categories)}
        for n, node in enumerate(self.nodes):
            for leaf in self.leaves_under(node):
                out[n, index[leaf]] = 1
        return out


@dataclass(frozen=True, eq=False)
class HierarchicalTable:
    """Every aggregate of a count table (cells, margins, total) and their additive constraints.

    ``values[i]`` is aggregate *i*'s count; ``structural[i]`` is True when every cell it adds up
    is a declared structural zero (its value, 0, is public knowledge); ``is_cell[i]`` when every
    coordinate is a leaf. ``constraints`` has one row per additive constraint: +1 on the
    children, -1 on the parent, so ``constraints @ values == 0``. Arrays are read-only.
    """

    stream: str
    dimensions: tuple[Dimension, ...]
    values: IntArray
    structural: BoolArray
    is_cell: BoolArray
    constraints: sp.csr_matrix
    _index: Mapping[tuple[str, ...], int] = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Nodes per dimension."""
        return tuple(len(d.nodes) for d in self.dimensions)

    @property
    def size(self) -> int:
        """Number of aggregates."""
        return int(self.values.size)

    def key(self, i: int) -> tuple[str, ...]:
        """Aggregate ``i``'s node in every dimension (:data:`TOTAL` where not broken down)."""
        return self._keys[i]

    @cached_property
    def _incidence(self) -> sp.csr_matrix:
        out: sp.csr_matrix | None = None
        for d in self.dimensions:
            s = sp.csr_matrix(d.summation())
            out = s if out is None else sp.csr_matrix(sp.kron(out, s, format="csr"))
        assert out is not None
        return out

    @cached_property
    def _keys(self) -> tuple[tuple[str, ...], ...]:
        # every key, made once per table (the release and the audit ask for them all)
        return tuple(self.keys())

    @cached_property
    def _breakdowns(self) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
        # built dimension by dimension in the order of :meth:`keys` (the first dimension varies
        # slowest), each node contributing its dimension and itself unless it is the total:
        # two tuple concatenations per aggregate instead of a filter over every key
        out: list[tuple[tuple[str, ...], tuple[str, ...]]] = [((), ())]
        for d in self.dimensions:
            parts = [((), ()) if n == TOTAL else ((d.name,), (n,)) for n in d.nodes]
            out = [(dims + pd, key + pk) for dims, key in out for pd, pk in parts]
        return tuple(out)

    @cached_property
    def by_breakdown(self) -> Mapping[tuple[tuple[str, ...], tuple[str, ...]], int]:
        """Every aggregate's index by its :meth:`breakdown`."""
        return {b: i for i, b in enumerate(self._breakdowns)}

    def index(self, key: Sequence[str]) -> int:
        """The aggregate at ``key`` (one node per dimension); :class:`InvalidTable` if unknown."""
        try:
            return self._index[tuple(key)]
        except KeyError:
            raise InvalidTable("no aggregate has this key") from None

    def breakdown(self, i: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The dimensions aggregate ``i`` is broken down by and its categories in them, in the
        table's order (a cell has all dimensions, a margin fewer, the grand total none)."""
        return self._breakdowns[i]

    def keys(self) -> Iterator[tuple[str, ...]]:
        """Every aggregate's key, in index order."""
        return itertools.product(*(d.nodes for d in self.dimensions))

    @property
    def grand_total(self) -> int:
        """The index of the grand total (every coordinate :data:`TOTAL`)."""
        return self.size - 1


def build_table(
    dimensions: Sequence[Dimension],
    counts: Mapping[tuple[str, ...], int],
    structural_zeros: Iterable[Sequence[str]] = (),
    stream: str = "table",
) -> HierarchicalTable:
    """The table of every aggregate from cell ``counts`` (absent cells count 0).

    ``structural_zeros`` are aggregate keys (one node per dimension; a parent or :data:`TOTAL`
    stands for every cell below it) that the stream declares impossible; every cell they cover
    must count 0.

    Raises:
        InvalidTable: an unknown code, a negative count, or a count in a structural zero.
    """
    dims = tuple(dimensions)
    if not dims or len({d.name for d in dims}) != len(dims):
        raise InvalidTable("a table needs one or more distinctly named dimensions")
    leaf_shape = tuple(len(d.categories) for d in dims)
    leaf_index = [{c: i for i, c in enumerate(d.categories)} for d in dims]
    cells = np.zeros(leaf_shape, dtype=np.int64)
    for key, n in counts.items():
        if len(key) != len(dims):
            raise InvalidTable("a cell key does not have one category per dimension")
        try:
            at = tuple(ix[c] for ix, c in zip(leaf_index, key, strict=True))
        except KeyError:
            raise InvalidTable("a cell key holds an unknown category") from None
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise InvalidTable("a cell count is not a non-negative integer")
        cells[at] = int(n)
    zero = np.zeros(leaf_shape, dtype=bool)
    for skey in structural_zeros:
        if len(skey) != len(dims):
            raise InvalidTable("a structural zero does not have one node per dimension")
        ranges = [
            [ix[leaf] for leaf in d.leaves_under(node)]
            for d, ix, node in zip(dims, leaf_index, skey, strict=True)
        ]
        zero[np.ix_(*ranges)] = True
    if np.any(cells[zero] != 0):
        raise InvalidTable("a declared structural zero has a non-zero count")

    sums = [d.summation() for d in dims]
    values = _expand(cells, sums)
    open_cells = _expand((~zero).astype(np.int64), sums)
    shape = tuple(len(d.nodes) for d in dims)
    is_cell = np.zeros(shape, dtype=bool)
    is_cell[tuple(slice(0, len(d.categories)) for d in dims)] = True
    out_values = values.ravel()
    out_structural = (open_cells == 0).ravel()
    out_cell = is_cell.ravel()
    for a in (out_values, out_structural, out_cell):
        a.flags.writeable = False
    index = {key: i for i, key in enumerate(itertools.product(*(d.nodes for d in dims)))}
    return HierarchicalTable(
        stream=stream,
        dimensions=dims,
        values=out_values,
        structural=out_structural,
        is_cell=out_cell,
        constraints=_constraints(dims, shape),
        _index=index,
    )


def _expand(cells: npt.NDArray[np.int64], sums: list[IntArray]) -> IntArray:
    out = cells
    for axis, s in enumerate(sums):
        out = np.moveaxis(np.tensordot(s, out, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(out, dtype=np.int64)


def _constraints(dims: tuple[Dimension, ...], shape: tuple[int, ...]) -> sp.csr_matrix:
    flat = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    rows: list[IntArray] = []
    cols: list[IntArray] = []
    vals: list[npt.NDArray[np.float64]] = []
    n_rows = 0
    for axis, d in enumerate(dims):
        at = {n: i for i, n in enumerate(d.nodes)}
        for parent, children in d.children():
            p = np.take(flat, at[parent], axis=axis).ravel()
            r = np.arange(n_rows, n_rows + p.size, dtype=np.int64)
            n_rows += p.size
            rows.append(r)
            cols.append(p)
            vals.append(np.full(p.size, -1.0))
            for c in children:
                rows.append(r)
                cols.append(np.take(flat, at[c], axis=axis).ravel())
                vals.append(np.full(p.size, 1.0))
    matrix = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, int(np.prod(shape))),
    )
    return sp.csr_matrix(matrix)


def standard_dimensions(
    table: CountTable,
    hierarchies: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = STANDARD_HIERARCHIES,
) -> tuple[Dimension, ...]:
    """The dimensions of a release :class:`~trust.release.aggregate.CountTable`, each with its
    hierarchy from ``hierarchies`` (default: the standard streams'). A parent adds up those of
    its declared children that the table has (a category the table lacks counts nobody); a
    parent none of whose children it has is left out."""
    out = []
    for name, cats in zip(table.dimensions, table.categories, strict=True):
        declared = hierarchies.get(name, ())
        known = set(cats)
        hier: list[tuple[str, tuple[str, ...]]] = []
        for parent, children in declared:
            kids = tuple(c for c in children if c in known)
            if kids and parent not in known:
                hier.append((parent, kids))
                known.add(parent)
        out.append(Dimension(name, tuple(cats), tuple(hier)))
    return tuple(out)


def from_count_table(
    table: CountTable,
    hierarchies: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = STANDARD_HIERARCHIES,
    structural_zeros: Iterable[Sequence[str]] = (),
) -> HierarchicalTable:
    """The hierarchical table of a release count table (cells from ``table.counts``).

    The cells the stream declares impossible (``table.structural_zeros``), and ``structural_zeros``
    besides, are structural: so is every margin made only of them (their 0 is public knowledge:
    published, never suppressed or audited).
    """
    return build_table(
        standard_dimensions(table, hierarchies),
        table.counts,
        (*sorted(table.structural_zeros), *structural_zeros),
        stream=table.stream,
    )


def incidence(table: HierarchicalTable) -> sp.csr_matrix:
    """The 0/1 matrix (aggregates x cells): which cells each aggregate adds up.

    Cells are in the order of ``np.flatnonzero(table.is_cell)`` (row-major over the leaves).
    Made once per table (it depends on the dimensions only); do not modify it.
    """
    return table._incidence
