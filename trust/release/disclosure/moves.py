"""Feasible moves of a table under a suppression pattern: the LPs secondary suppression runs.

Secondary suppression (``secondary.py``, method note ``secondary.md``) must show, for every side
of every suppressed aggregate (its upper side: it can reach its value plus the protection level;
its lower side: it can go down far enough), a table an attacker cannot exclude — or else hide
more. Both questions are LPs over **classes of exchangeable cells**: cells that lie in exactly the
same published aggregates (a published cell is a class of its own, since it lies in itself). An
attacker can move counts freely inside a class, so only class totals ``z`` matter; an aggregate
can reach any value from the total of the classes it contains (``inside``) to the total of those
it touches (``touch``). On the largest standard table that is about 1,100 class totals instead of
2,160 cells, and the LPs are much smaller than the same over cells.

- :class:`Witnesses` keeps, per aggregate, the largest and smallest value any table found so far
  gives it. Each such table was feasible for the attacker when found, and stays so: suppression
  only grows (an aggregate is published again only when pinned, which changes no feasible set).
- :class:`ProofLP` maximises (or minimises) one aggregate with everything published held fixed:
  its optimum is a witness for every aggregate at once (the same class LP as the audit's).
- :class:`WideningLP` finds the cheapest change of the class totals that moves one aggregate far
  enough: cost per unit of change of every aggregate still published, nothing for suppressed ones.
  Suppressing every published aggregate it changes makes the moved table feasible: a witness.

Both keep one HiGHS model for a round of the heuristic (:class:`~.lp.WarmLP`): a solve changes
costs (and one target row) and starts from the last basis. When an aggregate gets suppressed
during the round, its row in the proof LP is freed and its cost in the widening LP drops to 0;
the classes stay those of the round's start (finer than the current pattern's: every table they
allow is still feasible, they only allow fewer).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from trust.release.disclosure.lp import SolverFailed, WarmLP
from trust.release.disclosure.table import BoolArray, HierarchicalTable
from trust.release.errors import ReleaseError

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]


class MoveFailed(ReleaseError):
    """A proof or widening LP ended without an optimum (a solver failure)."""

    code = "feasible_move_failed"


@dataclass(frozen=True, eq=False)
class CellClasses:
    """The non-structural cells of ``table`` grouped by the published aggregates they lie in.

    ``published``: the published, non-structural aggregates (at the round's start); ``touch`` and
    ``inside`` (aggregates x classes, 0/1): the classes each aggregate touches / contains whole;
    ``z0``: the true class totals. Every published aggregate contains its classes whole, so its
    value is ``touch[published] @ z``.
    """

    published: IndexArray
    touch: sp.csr_matrix
    inside: sp.csr_matrix
    z0: FloatArray
    #: cells x classes, 0/1: the class of every non-structural cell (a structural cell's row is
    #: empty); cells in the order of ``np.flatnonzero(table.is_cell)``
    member: sp.csr_matrix | None = None

    def table(self, z: FloatArray) -> FloatArray:
        """A table (cells) with class totals ``z``: each total spread evenly over its cells (every
        cell of a class lies in the same published aggregates, so they keep their values)."""
        if self.member is None:
            raise ValueError("classes made without their cells")
        z = np.maximum(np.asarray(z, dtype=np.float64), 0.0)
        return np.asarray(self.member @ (z / self._sizes), dtype=np.float64)

    @cached_property
    def _sizes(self) -> FloatArray:
        assert self.member is not None
        return np.maximum(np.asarray(self.member.sum(axis=0), dtype=np.float64).ravel(), 1.0)

    @classmethod
    def of(
        cls, table: HierarchicalTable, incidence: sp.csr_matrix, suppressed: BoolArray
    ) -> CellClasses:
        """The classes under pattern ``suppressed``; ``incidence``: aggregates x cells, 0/1."""
        cells = np.flatnonzero(table.is_cell)
        open_cells = np.flatnonzero(~table.structural[cells])
        published = np.flatnonzero(~suppressed & ~table.structural).astype(np.int64)
        by_cell = sp.csc_matrix(incidence[published])
        seen: dict[bytes, int] = {}
        labels = np.empty(open_cells.size, dtype=np.int64)
        for n, j in enumerate(open_cells):
            sig = by_cell.indices[by_cell.indptr[j] : by_cell.indptr[j + 1]].tobytes()
            labels[n] = seen.setdefault(sig, len(seen))
        member = sp.csr_matrix(
            (np.ones(open_cells.size), (open_cells, labels)), shape=(cells.size, len(seen))
        )
        z0 = np.asarray(member.T @ table.values[cells].astype(np.float64)).ravel()
        count = sp.csr_matrix(incidence @ member)
        size = np.asarray(member.sum(axis=0)).ravel()
        touch = count.copy()
        touch.data[:] = 1.0
        inside = count.copy()
        inside.data = (inside.data >= size[inside.indices]).astype(np.float64)
        inside.eliminate_zeros()
        return cls(published, touch, inside, z0, member)

    @property
    def size(self) -> int:
        """Number of classes."""
        return int(self.z0.size)

    def classes_of(self, aggregate: int, *, up: bool) -> IndexArray:
        """The classes ``aggregate`` touches (``up``) or contains whole: the columns of its row
        of ``touch`` or ``inside``, read from the CSR arrays (a proof LP asks for one row at a
        time, about a thousand times a release: slicing the sparse matrix for it cost about a
        tenth of the proof LP itself)."""
        m = self.touch if up else self.inside
        return np.asarray(m.indices[m.indptr[aggregate] : m.indptr[aggregate + 1]], np.int64)

    @cached_property
    def _both(self) -> sp.csr_matrix:
        # touch over inside, one matrix: a witness's high and low in one product
        return sp.csr_matrix(sp.vstack([self.touch, self.inside], format="csr"))

    def reach(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Every aggregate's touch and inside total under class totals ``z``."""
        both = np.asarray(self._both @ z, dtype=np.float64)
        n = self.touch.shape[0]
        return both[:n], both[n:]


class Witnesses:
    """The largest (``high``) and smallest (``low``) value each aggregate takes in some table the
    attacker cannot exclude; starts at the true values."""

    def __init__(self, values: FloatArray) -> None:
        self.high = np.asarray(values, dtype=np.float64).copy()
        self.low = self.high.copy()
        #: the tables (cells) behind ``high`` and ``low``: per aggregate, the index in
        #: ``_tables`` of the one that gave it (-1: the true table or :meth:`add_bounds`)
        self._tables: list[FloatArray] = []
        self._src_high = np.full(self.high.size, -1, dtype=np.int64)
        self._src_low = np.full(self.high.size, -1, dtype=np.int64)

    def add(self, classes: CellClasses, z: FloatArray) -> None:
        """Class totals ``z`` (feasible): every aggregate ranges from its inside total to its
        touch total."""
        z = np.maximum(z, 0.0)
        high, low = classes.reach(z)
        up, down = high > self.high, low < self.low
        if classes.member is not None and (up.any() or down.any()):
            self._tables.append(classes.table(z))
            self._src_high[up] = self._src_low[down] = len(self._tables) - 1
        self.high = np.maximum(self.high, high)
        self.low = np.minimum(self.low, low)

    def tables(self) -> FloatArray:
        """The tables (cells x tables) that give some aggregate its ``high`` or ``low``: what
        the audit that ends secondary suppression is given as hints (it checks each)."""
        used = np.unique(np.concatenate([self._src_high, self._src_low]))
        used = used[used >= 0]
        if not used.size:
            return np.zeros((0, 0))
        return np.column_stack([self._tables[int(c)] for c in used])

    def add_bounds(self, index: IndexArray, low: FloatArray, high: FloatArray) -> None:
        """Values found elsewhere (an audit's inner bounds: each attained by a feasible table)."""
        self.high[index] = np.maximum(self.high[index], high)
        self.low[index] = np.minimum(self.low[index], low)


class ProofLP:
    """The attacker's LP over class totals (published aggregates fixed, ``0 <= z <= cap``): the
    extreme of one aggregate, a witness for all. ``cap`` stands for unbounded."""

    def __init__(self, classes: CellClasses, values: FloatArray) -> None:
        self.classes = classes
        a = sp.csr_matrix(classes.touch[classes.published])
        b = np.asarray(values, dtype=np.float64)[classes.published]
        self.cap = 4.0 * (float(b.sum()) + float(classes.z0.sum())) + 1e6
        self.rows = a.shape[0]
        self.solves = 0
        self._lp: WarmLP | None = None
        if self.rows:
            n = classes.size
            self._lp = WarmLP(a, b, b, np.zeros(n), np.full(n, self.cap), primal=True)

    def release(self, positions: IndexArray) -> None:
        """Free the rows of published aggregates (positions in ``classes.published``) that have
        been suppressed since the model was made (a published cell's row frees its class)."""
        if self._lp is not None and positions.size:
            self._lp.free_rows(positions)

    def extreme(self, aggregate: int, *, up: bool) -> FloatArray:
        """Class totals at which ``aggregate`` is largest (``up``: its touch total) or smallest
        (its inside total)."""
        self.solves += 1
        cost = np.zeros(self.classes.size)
        cost[self.classes.classes_of(aggregate, up=up)] = -1.0 if up else 1.0
        if self._lp is None:  # nothing published holds a class: each at its bound
            return np.where(cost < 0, self.cap, 0.0)
        self._lp.set_costs(cost)
        try:
            sol = self._lp.solve()
        except SolverFailed as exc:
            raise MoveFailed(f"the proof LP failed ({exc})") from exc
        if sol.x is None:
            raise MoveFailed(f"the proof LP failed ({sol.status})")
        return np.clip(sol.x, 0.0, self.cap)


class WideningLP:
    """The cheapest change ``d`` of the class totals (``z0 + d >= 0``) that moves one aggregate
    to a bound, paying ``weights`` per unit of change of every aggregate still published.

    Rows: ``touch[published] @ d - p + q = 0`` with ``p, q >= 0`` (the change of each published
    aggregate, split by sign so that one row holds it), cost ``weights`` on ``p`` and ``q``. A
    call adds the target's row, sets the costs of what was suppressed since to 0, solves from
    the last basis and removes the row.
    """

    def __init__(self, classes: CellClasses, weights: FloatArray) -> None:
        self.classes = classes
        self.weights = np.asarray(weights, dtype=np.float64)[classes.published]
        self.a = sp.csr_matrix(classes.touch[classes.published])
        g, n = self.a.shape
        self.n = int(n)
        eye = sp.identity(g, format="csr")
        self.solves = 0
        self._lp = WarmLP(
            sp.hstack([self.a, -eye, eye]),
            np.zeros(g),
            np.zeros(g),
            np.concatenate([-classes.z0, np.zeros(2 * g)]),
            np.full(n + 2 * g, np.inf),
            np.concatenate([np.zeros(n), self.weights, self.weights]),
        )

    def move(
        self, still: BoolArray, aggregate: int, *, up: bool, bound: float, tol: float
    ) -> tuple[BoolArray, FloatArray]:
        """Move ``aggregate``'s touch total up to ``bound`` (``up``) or its inside total down to
        ``bound``, paying only for aggregates ``still`` published (a mask over
        ``classes.published``): which of those it changes, and the moved class totals."""
        cls = self.classes
        row = (cls.touch if up else cls.inside)[aggregate]
        now = float(cls.z0[row.indices].sum())  # 0/1 rows
        lo, hi = (bound - now, np.inf) if up else (-np.inf, bound - now)
        w = np.where(still, self.weights, 0.0)
        self._lp.set_costs(np.concatenate([np.zeros(self.n), w, w]))
        r = self._lp.add_row(row.indices, row.data.astype(np.float64), lo, hi)
        self.solves += 1
        try:
            sol = self._lp.solve()
        except SolverFailed as exc:
            raise MoveFailed(f"the widening LP failed ({exc})") from exc
        finally:
            self._lp.delete_row(r)
        if sol.x is None:
            raise MoveFailed(f"the widening LP found no move ({sol.status})")
        d = sol.x[: self.n]
        changed = still & (np.abs(self.a @ d) > tol)
        return changed, np.maximum(cls.z0 + d, 0.0)
