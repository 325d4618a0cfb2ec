"""Does a model have a finite, identifiable estimate on these data? Checked before fitting.

Two separate conditions (Fienberg & Rinaldo 2012, as used by Chan, Silverman & Vincent 2021):

* **Existence.** Once the ``-∞`` terms' cells are removed, the (extended) maximum-likelihood
  estimate exists exactly when some strictly positive table has the same sufficient statistics
  (the margins ``A'y`` of the design ``A``) as the observed one. That is a linear programme:
  maximise ``s`` subject to ``A'x = A'y``, ``x_i ≥ s``, ``x ≥ 0``; the estimate exists iff the
  optimum is positive. If every remaining cell is positive, ``x = y`` already shows it, so the
  programme is skipped.
* **Identifiability.** The reduced design must have full column rank, or the intercept (and so
  the hidden count) is not determined.

Existence depends only on which cells are zero, so :class:`ExistenceCache` remembers answers per
(support pattern, model) for the bootstrap, where the same patterns recur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from trust.estimate.errors import ReasonCode
from trust.estimate.models import Design, FloatArray, Model, Table, reduced_design

LP_TOLERANCE = 1e-7


@dataclass(frozen=True, slots=True)
class Existence:
    """Whether a model can be fitted: both conditions, and why not when it cannot."""

    exists: bool
    identifiable: bool

    @property
    def ok(self) -> bool:
        return self.exists and self.identifiable

    @property
    def code(self) -> ReasonCode | None:
        if not self.exists:
            return ReasonCode.MLE_DOES_NOT_EXIST
        return None if self.identifiable else ReasonCode.NOT_IDENTIFIABLE

    @property
    def reason(self) -> str | None:
        if not self.exists:
            return (
                "the maximum-likelihood estimate does not exist: no positive table has the "
                "observed margins, so the fit runs off to infinity"
            )
        if not self.identifiable:
            return "the model's parameters are not identifiable from the cells left to fit"
        return None


def lp_exists(design: Design, y: FloatArray) -> bool:
    """The Fienberg and Rinaldo linear programme on the reduced design (True if the MLE exists)."""
    if np.all(y > 0):
        return True
    a = design.x.T  # parameters by cells
    npar, ncell = a.shape
    c = np.zeros(ncell + 1)
    c[-1] = -1.0  # maximise s
    a_eq = np.hstack([a, np.zeros((npar, 1))])
    a_ub = np.hstack([-np.eye(ncell), np.ones((ncell, 1))])  # s - x_i ≤ 0
    scale = max(1.0, float(y.sum()))
    res = linprog(
        c,
        A_ub=a_ub,
        b_ub=np.zeros(ncell),
        A_eq=a_eq,
        b_eq=(a @ y) / scale,  # scaled to total 1 so one tolerance fits every table size
        bounds=(0, None),
        method="highs",
    )
    return bool(res.status == 0 and -res.fun > LP_TOLERANCE)


def identifiable(design: Design) -> bool:
    return bool(np.linalg.matrix_rank(design.x) == design.x.shape[1])


def check(table: Table, counts: FloatArray, model: Model) -> Existence:
    """Both conditions for ``model`` on ``counts``."""
    design = reduced_design(table, counts, model)
    return Existence(lp_exists(design, counts[design.kept]), identifiable(design))


class ExistenceCache:
    """:func:`check` remembered per (which cells are zero, model): the answer depends on nothing
    else. One cache serves one table size."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._answers: dict[tuple[bytes, Model], Existence] = {}
        self.lp_runs = 0

    def check(self, counts: FloatArray, model: Model) -> Existence:
        key = ((counts > 0).tobytes(), model)
        got = self._answers.get(key)
        if got is None:
            self.lp_runs += 1
            got = check(self.table, counts, model)
            self._answers[key] = got
        return got


def disjoint(table: Table, counts: FloatArray) -> bool:
    """No person is on two lists: every observed history is on exactly one list."""
    return bool(counts[table.bits.sum(axis=1) > 1].sum() == 0)
