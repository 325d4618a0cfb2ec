"""One linear program kept in HiGHS between solves, so that each solve starts from the last basis.

The audit and the secondary suppression solve hundreds of LPs that differ from each other only
in their costs (another aggregate to maximise) or in a few column bounds (another aggregate to
move). Building a new model for each (``scipy.optimize.linprog``) repeats the set-up and the
simplex from scratch; a :class:`WarmLP` keeps one HiGHS model and changes only what differs, so
HiGHS continues from the previous optimal basis (a handful of simplex iterations instead of
thousands).

HiGHS comes through its own Python binding ``highspy`` when installed, else through the same
binding that SciPy ships inside ``scipy.optimize`` (SciPy's ``linprog(method="highs")`` runs on
it): the calls used here are common to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from trust.release.errors import ReleaseError

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

#: Solve outcomes (HiGHS model status, by meaning).
OPTIMAL = "optimal"
UNBOUNDED = "unbounded"
INFEASIBLE = "infeasible"


class SolverFailed(ReleaseError):
    """HiGHS ended an LP without an optimum, an unboundedness or an infeasibility proof."""

    code = "lp_solver_failed"


def bindings() -> tuple[Any, ...]:
    """The HiGHS bindings installed, preferred first: ``highspy``, then SciPy's copy of it."""
    out: list[Any] = []
    try:
        import highspy

        out.append(highspy)
    except ImportError:
        pass
    from scipy.optimize._highspy import _core  # the binding SciPy's linprog runs on

    out.append(_core)
    return tuple(out)


def _new_highs(module: Any) -> Any:
    return module.Highs() if hasattr(module, "Highs") else module._Highs()


@dataclass(frozen=True)
class Solution:
    """The outcome of one solve: ``status`` (:data:`OPTIMAL`, :data:`UNBOUNDED` or
    :data:`INFEASIBLE`), the column values ``x`` at an optimum (else None) and the simplex
    iterations it took."""

    status: str
    x: FloatArray | None
    iterations: int


class WarmLP:
    """``minimise c·x subject to row_lo <= a x <= row_hi, col_lo <= x <= col_hi`` held in one
    HiGHS model: :meth:`set_costs` and :meth:`set_bounds` change it in place and :meth:`solve`
    starts from the previous basis. ``inf`` stands for no bound. ``binding``: the HiGHS binding
    (default: the first of :func:`bindings`). ``primal``: solve by the primal simplex, the
    better warm start when mostly costs change (the dual simplex, the default, when bounds or
    rows change).
    """

    def __init__(
        self,
        a: sp.spmatrix | sp.sparray,
        row_lo: FloatArray,
        row_hi: FloatArray,
        col_lo: FloatArray,
        col_hi: FloatArray,
        cost: FloatArray | None = None,
        *,
        binding: Any = None,
        primal: bool = False,
    ) -> None:
        self._hs = binding or bindings()[0]
        h = _new_highs(self._hs)
        h.setOptionValue("output_flag", False)
        # small models solved many times: presolve would be redone at every solve and cost more
        # than it saves; one thread keeps runs deterministic
        h.setOptionValue("presolve", "off")
        h.setOptionValue("threads", 1)
        if primal:  # costs change between solves: the last basis stays primal feasible
            h.setOptionValue("simplex_strategy", 4)
        csc = sp.csc_matrix(a, dtype=np.float64)
        csc.sort_indices()
        m, n = csc.shape
        self.n = int(n)
        inf = float(h.getInfinity())
        lp = self._hs.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = int(m)
        lp.col_cost_ = np.zeros(n) if cost is None else np.asarray(cost, dtype=np.float64)
        lp.col_lower_ = _finite(col_lo, inf)
        lp.col_upper_ = _finite(col_hi, inf)
        lp.row_lower_ = _finite(row_lo, inf)
        lp.row_upper_ = _finite(row_hi, inf)
        lp.a_matrix_.format_ = self._hs.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
        lp.a_matrix_.index_ = csc.indices.astype(np.int32)
        lp.a_matrix_.value_ = csc.data
        lp.a_matrix_.num_col_ = self.n
        lp.a_matrix_.num_row_ = int(m)
        if str(h.passModel(lp)) not in ("HighsStatus.kOk", "HighsStatus.kWarning"):
            raise SolverFailed("HiGHS refused the LP model")
        self._h = h
        self._inf = inf
        self._cost = np.array(lp.col_cost_, dtype=np.float64)
        self.solves = 0
        self.iterations = 0

    def set_costs(self, cost: FloatArray) -> None:
        """Replace the cost vector (only the entries that change are passed to HiGHS)."""
        cost = np.asarray(cost, dtype=np.float64)
        changed = np.flatnonzero(cost != self._cost).astype(np.int32)
        if changed.size:
            self._h.changeColsCost(int(changed.size), changed, cost[changed])
            self._cost = cost.copy()

    def set_bounds(self, cols: IndexArray, lo: FloatArray, hi: FloatArray) -> None:
        """Set the bounds of columns ``cols``."""
        cols = np.asarray(cols, dtype=np.int32)
        if cols.size:
            self._h.changeColsBounds(
                int(cols.size), cols, _finite(lo, self._inf), _finite(hi, self._inf)
            )

    def add_row(self, cols: IndexArray, coef: FloatArray, lo: float, hi: float) -> int:
        """Append the row ``lo <= coef · x[cols] <= hi``; its index."""
        cols = np.asarray(cols, dtype=np.int32)
        bounds = _finite(np.array([lo, hi]), self._inf)
        self._h.addRow(
            float(bounds[0]), float(bounds[1]), int(cols.size), cols, np.asarray(coef, np.float64)
        )
        return int(self._h.getNumRow()) - 1

    def free_rows(self, rows: IndexArray) -> None:
        """Drop the bounds of rows ``rows`` (a constraint that no longer holds; the basis stays)."""
        for r in np.asarray(rows, dtype=np.int64):
            self._h.changeRowBounds(int(r), -self._inf, self._inf)

    def delete_row(self, row: int) -> None:
        """Remove row ``row`` (the basis is kept for the rest)."""
        self._h.deleteRows(1, np.array([row], dtype=np.int32))

    def solve(self) -> Solution:
        """Run HiGHS from the current basis."""
        h = self._h
        h.run()
        self.solves += 1
        iterations = int(h.getInfo().simplex_iteration_count)
        self.iterations += iterations
        status = h.getModelStatus()
        ms = self._hs.HighsModelStatus
        if status == ms.kOptimal:
            x = np.asarray(h.getSolution().col_value, dtype=np.float64)
            return Solution(OPTIMAL, x, iterations)
        if status in (ms.kUnbounded, ms.kUnboundedOrInfeasible):
            return Solution(UNBOUNDED, None, iterations)
        if status == ms.kInfeasible:
            return Solution(INFEASIBLE, None, iterations)
        # a stalled warm start: solve once more from scratch before giving up
        h.clearSolver()
        h.run()
        status = h.getModelStatus()
        if status == ms.kOptimal:
            return Solution(OPTIMAL, np.asarray(h.getSolution().col_value), iterations)
        raise SolverFailed(f"the LP solver ended with {h.modelStatusToString(status)}")


def _finite(v: FloatArray, inf: float) -> FloatArray:
    """HiGHS's infinity for ``±inf`` (its own large number)."""
    out = np.asarray(v, dtype=np.float64).copy()
    out[np.isposinf(out)] = inf
    out[np.isneginf(out)] = -inf
    return out
