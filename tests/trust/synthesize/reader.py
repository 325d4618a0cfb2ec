"""A reader of one synthetic release's companion aggregate, as a linear programme.

Independent of the release path's secondary suppression and audit (it shares only the HiGHS
wrapper): the unknowns are the counts of the table crossing every attribute (every combination
of one category per column, zeros included), non-negative reals; each listed count ``c`` bounds
its combination's sum to ``c … c + k - 1`` (rounded down to a multiple of k). Optionally the
reader also knows what the synthetic records say of single attributes: each value's count
rounded down to a multiple of k (the default mode's single counts), so a value with no record
is held by at most ``k - 1``; and what the count stream of the same table may publish (every
cell of k or more and the total, exactly).

For any combination of 1 … all columns it bounds the true count by two LPs (minimise,
maximise), rounded inwards to integers (true counts are integers). Witnesses — the true table
and every LP solution — settle a side without an LP when one already reaches what is asked.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from trust.release.disclosure.lp import INFEASIBLE, OPTIMAL, UNBOUNDED, WarmLP
from trust.synthesize.aggregate import AggregateCount

Combination = tuple[tuple[str, str], ...]
_EPS = 1e-6


class InconsistentCounts(AssertionError):
    """The listed counts admit no table: the reader's model of them is wrong."""


@dataclass
class Reader:
    """The reader over ``domain`` (the categories of each column, in column order)."""

    columns: tuple[str, ...]
    domain: tuple[tuple[str, ...], ...]
    true_cells: Mapping[tuple[str, ...], int]
    k: int
    solves: int = 0
    _witnesses: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cells = list(itertools.product(*self.domain))
        codes = [{v: i for i, v in enumerate(d)} for d in self.domain]
        self._codes = np.array(
            [[codes[j][v] for j, v in enumerate(cell)] for cell in self.cells], dtype=np.int64
        ).reshape(len(self.cells), len(self.columns))
        self._code_of = codes
        truth = np.array([self.true_cells.get(c, 0) for c in self.cells], dtype=np.float64)
        self.truth = truth
        self._witnesses = [truth]
        self.rows: list[np.ndarray] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        self._lp: WarmLP | None = None

    def mask(self, combination: Combination) -> np.ndarray:
        """Which cells a combination adds up."""
        hit = np.ones(len(self.cells), dtype=bool)
        for c, v in combination:
            j = self.columns.index(c)
            hit &= self._codes[:, j] == self._code_of[j][v]
        return hit.astype(np.float64)

    def know(self, combination: Combination, lo: float, hi: float) -> None:
        self.rows.append(self.mask(combination))
        self.lo.append(lo)
        self.hi.append(hi)
        self._lp = None

    def read_companion(self, counts: Iterable[AggregateCount]) -> None:
        for a in counts:
            self.know(tuple(zip(a.columns, a.values, strict=True)), a.count, a.count + self.k - 1)

    def read_record_singles(self) -> None:
        """What the synthetic records publish of single attributes: floor_k of each count."""
        for j, column in enumerate(self.columns):
            for v in self.domain[j]:
                n = sum(c for cell, c in self.true_cells.items() if cell[j] == v)
                floor = n - n % self.k
                self.know(((column, v),), floor, floor + self.k - 1)

    def read_exact_cells(self) -> None:
        """What the count stream of the same table may publish: every cell of k or more, and
        the total, exactly."""
        for cell, n in self.true_cells.items():
            if n >= self.k:
                self.know(tuple(zip(self.columns, cell, strict=True)), n, n)
        total = float(sum(self.true_cells.values()))
        self.rows.append(np.ones(len(self.cells)))
        self.lo.append(total)
        self.hi.append(total)
        self._lp = None

    def _model(self) -> WarmLP:
        if self._lp is None:
            n = len(self.cells)
            a = sp.csr_matrix(np.array(self.rows)) if self.rows else sp.csr_matrix((0, n))
            self._lp = WarmLP(
                a,
                np.array(self.lo, dtype=np.float64),
                np.array(self.hi, dtype=np.float64),
                np.zeros(n),
                np.full(n, math.inf),
                primal=True,
            )
        return self._lp

    def _optimum(self, cost: np.ndarray) -> float:
        lp = self._model()
        lp.set_costs(cost)
        sol = lp.solve()
        self.solves += 1
        if sol.status == INFEASIBLE:
            raise InconsistentCounts("the listed counts admit no table")
        if sol.status == UNBOUNDED:
            return -math.inf
        assert sol.status == OPTIMAL and sol.x is not None
        self._witnesses.append(np.asarray(sol.x))
        return float(cost @ sol.x)

    def lower(self, combination: Combination) -> int:
        """The least count the reader can prove (0 at once when a witness holds none)."""
        m = self.mask(combination)
        if any(float(m @ w) <= _EPS for w in self._witnesses):
            return 0
        return math.ceil(self._optimum(m) - _EPS)

    def upper(self, combination: Combination, enough: float) -> float:
        """The largest count the reader cannot exclude, or ``enough`` at once when a witness
        reaches it (the caller asks only whether it does)."""
        m = self.mask(combination)
        if any(float(m @ w) >= enough - _EPS for w in self._witnesses):
            return enough
        top = -self._optimum(-m)
        return math.floor(top + _EPS) if math.isfinite(top) else math.inf


def combinations_of(columns: Sequence[str], domain: Sequence[Sequence[str]]) -> list[Combination]:
    """Every combination of one category in each of 1 … all columns."""
    out: list[Combination] = []
    for n in range(1, len(columns) + 1):
        for cols in itertools.combinations(range(len(columns)), n):
            for values in itertools.product(*(domain[j] for j in cols)):
                out.append(tuple((columns[j], v) for j, v in zip(cols, values, strict=True)))
    return out


def true_count(
    columns: Sequence[str], cells: Mapping[tuple[str, ...], int], combination: Combination
) -> int:
    at = [(list(columns).index(c), v) for c, v in combination]
    return sum(n for cell, n in cells.items() if all(cell[j] == v for j, v in at))
