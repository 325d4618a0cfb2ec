"""WarmLP: one HiGHS model re-solved after cost, bound and row changes gives linprog's optima."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from trust.release.disclosure.lp import INFEASIBLE, OPTIMAL, UNBOUNDED, WarmLP, bindings


def _reference(c: np.ndarray, a: np.ndarray, b: np.ndarray, hi: np.ndarray) -> float:
    res = linprog(c, A_eq=a, b_eq=b, bounds=np.column_stack([np.zeros(c.size), hi]))
    assert res.status == 0
    return float(res.fun)


@pytest.mark.parametrize("binding", bindings(), ids=lambda m: m.__name__)
def test_resolves_after_changes_match_a_fresh_solve(binding: Any) -> None:
    rng = np.random.default_rng(3)
    a = (rng.random((6, 12)) < 0.4).astype(float)
    x0 = rng.integers(0, 9, 12).astype(float)
    b = a @ x0  # feasible: x0 satisfies it
    hi = np.full(12, 50.0)
    lp = WarmLP(sp.csr_matrix(a), b, b, np.zeros(12), hi, binding=binding)
    for _ in range(8):  # new costs each time, from the last basis
        c = rng.normal(size=12)
        lp.set_costs(c)
        sol = lp.solve()
        assert sol.status == OPTIMAL and sol.x is not None
        assert np.allclose(a @ sol.x, b, atol=1e-7)
        assert c @ sol.x == pytest.approx(_reference(c, a, b, hi), abs=1e-6)
    # a bound change, then a row added and removed
    hi2 = hi.copy()
    hi2[:3] = x0[:3]  # x0 stays feasible
    lp.set_bounds(np.arange(3), np.zeros(3), hi2[:3])
    sol = lp.solve()
    assert sol.x is not None and c @ sol.x == pytest.approx(_reference(c, a, b, hi2), abs=1e-6)
    row = lp.add_row(np.array([4, 5]), np.array([1.0, 1.0]), 7.0, np.inf)
    sol = lp.solve()
    assert sol.x is not None and sol.x[4] + sol.x[5] >= 7.0 - 1e-7
    lp.delete_row(row)
    sol = lp.solve()
    assert sol.x is not None and c @ sol.x == pytest.approx(_reference(c, a, b, hi2), abs=1e-6)
    assert lp.solves == 11


@pytest.mark.parametrize("binding", bindings(), ids=lambda m: m.__name__)
def test_unbounded_and_infeasible(binding: Any) -> None:
    a = sp.csr_matrix(np.array([[1.0, -1.0]]))
    lp = WarmLP(a, np.zeros(1), np.zeros(1), np.zeros(2), np.full(2, np.inf), binding=binding)
    lp.set_costs(np.array([-1.0, 0.0]))
    assert lp.solve().status == UNBOUNDED  # x0 = x1 grows without end
    lp.set_bounds(np.array([0]), np.array([5.0]), np.array([5.0]))
    lp.set_bounds(np.array([1]), np.array([0.0]), np.array([1.0]))
    assert lp.solve().status == INFEASIBLE
