"""Intervals: the profile likelihood for a fixed model, and a bootstrap that repeats the selection."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gammaln

from trust.estimate.histories import CaptureHistories, from_rows
from trust.estimate.intervals import bca, profile_interval, quantile_type8
from trust.estimate.models import Fit, FloatArray, Model, Table, fit
from trust.estimate.selection import Criterion, SelectionRule, selector

Published = Callable[[str], CaptureHistories]


def test_the_profile_interval_of_two_lists_matches_its_closed_form() -> None:
    a_only, b_only, both = 60, 45, 15
    h = from_rows("AB", [((1, 0), a_only), ((0, 1), b_only), ((1, 1), both)])
    n, n_a, n_b = h.observed, a_only + both, b_only + both

    def loglik(total: float) -> float:  # independent lists: p_A = n_A/N, p_B = n_B/N
        pa, pb = n_a / total, n_b / total
        return float(
            gammaln(total + 1)
            - gammaln(total - n + 1)
            + n_a * math.log(pa)
            + (total - n_a) * math.log(1 - pa)
            + n_b * math.log(pb)
            + (total - n_b) * math.log(1 - pb)
        )

    grid = np.linspace(n + 0.01, 2000, 20000)
    values = np.array([loglik(x) for x in grid])
    best = grid[int(np.argmax(values))]
    cut = values.max() - 3.841458820694124 / 2
    low = brentq(lambda x: loglik(x) - cut, n + 0.01, best)
    high = brentq(lambda x: loglik(x) - cut, best, 2000)
    table, counts = Table(2), np.asarray(h.counts, float)
    iv = profile_interval(table, counts, fit(table, counts, Model()))
    assert iv.low == pytest.approx(low, abs=0.05)
    assert iv.high == pytest.approx(high, abs=0.05)
    assert iv.method == "profile"


def test_type_8_quantiles_are_rs() -> None:
    # R: quantile(1:10, c(0.1, 0.5, 0.9), type = 8) -> 1.366667 5.500000 9.633333
    got = quantile_type8(np.arange(1.0, 11.0), np.array([0.1, 0.5, 0.9]))
    assert got == pytest.approx([1.366667, 5.5, 9.633333], abs=1e-6)


def test_the_bootstrap_repeats_the_selection_in_every_replicate(published: Published) -> None:
    h = published("korea")
    table, counts = Table(3), np.asarray(h.counts, float)
    choose = selector(table, SelectionRule(Criterion.PVALUE))
    calls: list[FloatArray] = []

    def spy(c: FloatArray) -> Fit | None:
        calls.append(c)
        return choose(c)

    point = choose(counts)
    assert point is not None
    got = bca(counts, point.total, spy, replicates=60, seed=3)
    positive_cells = int(np.count_nonzero(counts))
    assert len(calls) == 60 + positive_cells  # every replicate, then the jackknife
    assert sum(got.models.values()) == 60 - got.failed
    assert len(got.models) > 1  # the replicates chose different models
    resampled = calls[:60]
    assert all(c.sum() == counts.sum() for c in resampled)
    assert any(not np.array_equal(c, counts) for c in resampled)
    assert got.interval.low <= point.total <= got.interval.high


def test_the_bootstrap_is_seeded(published: Published) -> None:
    h = published("korea")
    table, counts = Table(3), np.asarray(h.counts, float)
    choose = selector(table, SelectionRule(Criterion.PVALUE))
    point = 268.7778
    first = bca(counts, point, choose, replicates=40, seed=7).interval
    again = bca(counts, point, choose, replicates=40, seed=7).interval
    other = bca(counts, point, choose, replicates=40, seed=8).interval
    # equal up to the last bits IRLS changes when it starts from a previous fit
    assert (again.low, again.high) == pytest.approx((first.low, first.high), rel=1e-9)
    assert (other.low, other.high) != pytest.approx((first.low, first.high), rel=1e-6)


def test_korea_bca_interval_is_near_the_published_one(published: Published) -> None:
    # Silverman, Chan & Vincent (2024), table 3, all six models: 95% [128, 349], 80% [135, 288].
    # Their replicates come from R's generator, ours from numpy's, and we use 300 rather than
    # 1,000 to keep the test fast, so only closeness is checked.
    h = published("korea")
    table, counts = Table(3), np.asarray(h.counts, float)
    choose = selector(table, SelectionRule(Criterion.BIC))
    point = choose(counts)
    assert point is not None and point.total == pytest.approx(157.1667, abs=1e-4)
    iv = bca(counts, point.total, choose, replicates=300, seed=1234).interval
    assert iv.low == pytest.approx(128, rel=0.05)
    assert iv.high == pytest.approx(349, rel=0.15)
