"""Comparisons whose levels are graded by one distance keep non-increasing weights (issue 15:
the shipped model weighed "a year apart" below "other year")."""

from __future__ import annotations

import numpy as np
import pytest

from trust.linkage.comparison import default_comparisons
from trust.linkage.model import (
    ORDERED_LEVELS,
    ComparisonParameters,
    MatchModel,
    default_model,
    em_session,
    is_ordered,
    ordered_m,
)

YEAR_LEVELS = ("exact", "one_year_apart", "other")


def test_the_shipped_model_weighs_a_closer_level_at_least_as_much_as_a_further_one() -> None:
    shipped = default_model()
    ordered = [c for c in shipped.comparisons if is_ordered(c.name, c.levels)]
    # every comparison declared ordered is in the shipped model, with the levels declared
    assert sorted(c.name for c in ordered) == sorted(ORDERED_LEVELS)
    for c in ordered:
        w = c.weights()
        assert all(w[i + 1] <= w[i] + 1e-9 for i in range(len(w) - 1)), (c.name, w)
    year = next(c for c in ordered if c.name == "event_year")
    exact, one_apart, other = year.weights()
    assert exact > 0 > one_apart >= other - 1e-9


def test_the_default_comparisons_have_the_declared_levels() -> None:
    """A comparison renamed or given other levels would silently lose its order."""
    declared = {c.name: c.levels for c in default_comparisons() if c.name in ORDERED_LEVELS}
    assert declared == {name: tuple(levels) for name, levels in ORDERED_LEVELS.items()}


def test_ordered_m_keeps_an_ordered_m_and_pools_a_disordered_one() -> None:
    u = np.array([0.149, 0.252, 0.599])
    kept = np.array([0.93, 0.05, 0.02])  # ratios 6.2, 0.20, 0.033: already ordered
    assert ordered_m(kept, u) == pytest.approx(kept)
    disordered = np.array([0.934, 0.012, 0.054])  # "a year apart" below "other"
    fixed = ordered_m(disordered, u)
    assert fixed.sum() == pytest.approx(1.0)
    assert fixed[0] == pytest.approx(0.934)
    ratio = fixed / u
    assert ratio[1] == pytest.approx(ratio[2]) and ratio[1] == pytest.approx(0.066 / 0.851)
    # a violation reaching back to the first level pools all three
    assert ordered_m(np.array([0.1, 0.1, 0.8]), np.array([0.5, 0.3, 0.2])) == pytest.approx(
        [0.5, 0.3, 0.2]
    )


def test_ordered_m_is_the_most_likely_m_that_keeps_the_order() -> None:
    """For expected counts ``m``, no ordered alternative has a higher log-likelihood."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        u = rng.dirichlet(np.ones(4))
        m = rng.dirichlet(np.ones(4))
        best = ordered_m(m, u)
        r = best / u
        assert all(r[i + 1] <= r[i] * (1 + 1e-9) for i in range(3))
        top = float(m @ np.log(best))
        for _ in range(300):
            ratios = np.sort(rng.exponential(size=4))[::-1]
            q = ratios * u / float(ratios @ u)
            assert float(m @ np.log(q)) <= top + 1e-9


def _year_model(names: tuple[str, ...]) -> MatchModel:
    u = (0.15, 0.25, 0.60)
    return MatchModel(
        0.1,
        (
            ComparisonParameters("sex", ("exact", "other"), (0.8, 0.2), (0.1, 0.9)),
            *(ComparisonParameters(n, YEAR_LEVELS, (0.8, 0.1, 0.1), u) for n in names),
        ),
    )


def test_em_keeps_the_levels_of_an_ordered_comparison_ordered() -> None:
    """Matches drawn with "a year apart" rarer, relative to non-matches, than "other": EM alone
    learns the disorder (the control comparison, drawn alike but not declared ordered); the
    ordered comparison pools the two levels into one weight."""
    rng = np.random.default_rng(11)
    n, share = 20_000, 0.3
    match = rng.random(n) < share
    levels = np.zeros((n, 3), dtype=np.int8)
    levels[:, 0] = np.where(rng.random(n) < np.where(match, 0.97, 0.1), 1, 2)
    for c in (1, 2):  # drawn alike, each on its own (conditionally independent)
        levels[:, c] = np.where(
            match,
            rng.choice([1, 2, 3], size=n, p=[0.90, 0.01, 0.09]),
            rng.choice([1, 2, 3], size=n, p=[0.15, 0.25, 0.60]),
        )
    seed = _year_model(("event_year", "year_unordered"))
    fit = em_session(levels, seed, [True, True, True])
    assert fit.converged
    u = np.array(seed.comparisons[1].u)
    ordered, control = fit.m[1], fit.m[2]
    assert ordered is not None and control is not None
    w_control = np.log2(control / u)
    assert w_control[1] < w_control[2] - 1.0  # what the data say without the order
    w = np.log2(ordered / u)
    assert w[0] > 0 and w[1] == pytest.approx(w[2])
    assert ordered[1] + ordered[2] == pytest.approx(control[1] + control[2], abs=0.01)
