"""Intervals for the total: the profile likelihood for one model, the BCa bootstrap for the whole
procedure (model selection included).

**Profile likelihood** (Cormack 1992, as Rcapture computes it). For a candidate number ``n0`` of
persons on no list, the full table (the observed cells plus an all-zero cell holding ``n0``) is
fitted with the same model, and the multinomial log-likelihood of ``N = n + n0`` persons is
``log N! - log n0! + Σ y log(μ̂/N)`` over all cells. The interval is every ``N`` within
``χ²₁(level)/2`` of the maximum. It is conditional on the model: it ignores that the model was
chosen from the same data.

**Bootstrap BCa** (Chan, Silverman & Vincent 2021; Silverman, Chan & Vincent 2024). Replicate
tables are multinomial resamples of the observed persons over the observed histories; each goes
through the *whole* selection again, so the interval reflects the models the data could have
chosen. The bias correction ``z0`` is the normal quantile of the share of replicates below the
estimate; the acceleration comes from the delete-one jackknife over persons, computed once per
distinct history and weighted by its count. Replicates without an estimate are left out and
counted. Endpoints are type-8 quantiles of the replicates (as R's ``quantile(type = 8)``).

Both are reported as ``observed ≤ low ≤ estimate ≤ high``: a bootstrap endpoint on the wrong
side of the point estimate (possible when nearly every replicate falls on one side) is moved to
the estimate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.special import gammaln
from scipy.stats import chi2, norm

from trust.estimate.models import (
    Fit,
    FitFailed,
    FloatArray,
    Model,
    Table,
    glm_fit,
    reduced_design,
)

PROFILE_CAP = 1e4  # an upper limit beyond this many times the estimate (+ observed) is ∞


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float  # math.inf when the data put no upper limit on the total
    level: float
    method: str  # "profile" | "bootstrap-bca"


def _profile_loglik(
    x: FloatArray, y: FloatArray, n0: float, start: FloatArray | None
) -> tuple[float, FloatArray]:
    """The multinomial log-likelihood of ``n + n0`` persons, maximised over the model."""
    xa = np.vstack([x, np.eye(1, x.shape[1])])  # the all-zero history: intercept only
    ya = np.append(y, n0)
    params = glm_fit(xa, ya, start)
    mu = np.exp(xa @ params)
    total = float(ya.sum())
    pos = ya > 0
    ll = gammaln(total + 1) - gammaln(n0 + 1) + float(np.sum(ya[pos] * np.log(mu[pos] / total)))
    return float(ll), params


def profile_interval(table: Table, counts: FloatArray, f: Fit, level: float = 0.95) -> Interval:
    """The profile-likelihood interval for the total under the fitted model ``f``."""
    design = reduced_design(table, counts, f.model)
    x, y = design.x, counts[design.kept]
    observed = float(y.sum())

    def ll(n0: float) -> float:
        # every fit starts from the model's own parameters: a warm start from the previous
        # call would make the profile depend on the order of calls, and the root search could
        # then find no change of sign where there is one
        try:
            value, _ = _profile_loglik(x, y, max(n0, 0.0), f.params)
        except FitFailed:
            return -math.inf  # no finite fit with this many hidden: outside any interval
        return value

    top = max(4 * f.hidden, f.hidden + 10 * math.sqrt(f.hidden + 1) + 10)
    best = minimize_scalar(
        lambda n0: -ll(n0),
        bounds=(0.0, top),
        method="bounded",
        options={"xatol": 1e-3 * (1 + f.hidden)},
    )
    n0_max, ll_max = float(best.x), -float(best.fun)
    cut = ll_max - float(chi2.ppf(level, 1)) / 2

    def below(n0: float) -> float:
        return ll(n0) - cut

    low = observed
    if below(0.0) < 0:
        low = observed + brentq(below, 0.0, n0_max, xtol=1e-3)
    high = math.inf
    step, limit = max(n0_max, 1.0), PROFILE_CAP * (f.hidden + observed + 1)
    upper = n0_max + step
    while upper < limit:
        if below(upper) < 0:
            high = observed + brentq(below, n0_max, upper, xtol=1e-3)
            break
        step *= 2
        upper = n0_max + step
    return _ordered(Interval(low, high, level, "profile"), observed, f.total)


def _ordered(iv: Interval, observed: float, estimate: float) -> Interval:
    low = min(max(iv.low, observed), estimate)
    high = max(iv.high, estimate)
    return Interval(low, high, iv.level, iv.method)


def quantile_type8(values: FloatArray, probs: FloatArray) -> FloatArray:
    """R's ``quantile(type = 8)``: median-unbiased, the BCa endpoints of the R packages."""
    return np.asarray(np.quantile(values, probs, method="median_unbiased"), dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class Bootstrap:
    """A BCa interval and what went into it."""

    interval: Interval
    estimates: FloatArray = field(repr=False)  # one per replicate, NaN where none existed
    failed: int
    models: Counter[Model]  # the model each replicate's selection chose
    bias_correction: float
    acceleration: float


Estimator = Callable[[FloatArray], Fit | None]


def bca(
    counts: FloatArray,
    point: float,
    estimator: Estimator,
    replicates: int,
    seed: int,
    level: float = 0.95,
) -> Bootstrap:
    """BCa interval for ``estimator`` (the whole procedure: selection and fit) at ``counts``.

    ``estimator`` is called once per replicate and once per distinct observed history (the
    jackknife), so each call must repeat the model selection.
    """
    rng = np.random.default_rng(seed)
    n = round(float(counts.sum()))
    probs = counts / counts.sum()
    estimates = np.full(replicates, np.nan)
    models: Counter[Model] = Counter()
    for b in range(replicates):
        resample = rng.multinomial(n, probs).astype(np.float64)
        got = estimator(resample)
        if got is not None:
            estimates[b] = got.total
            models[got.model] += 1
    valid = estimates[np.isfinite(estimates)]
    failed = replicates - len(valid)
    acceleration = jackknife_acceleration(counts, estimator)
    observed = float(n)
    if len(valid) == 0:
        return Bootstrap(
            Interval(observed, math.inf, level, "bootstrap-bca"),
            estimates,
            failed,
            models,
            0.0,
            acceleration,
        )
    share = float(np.mean(valid < point))
    share = min(max(share, 0.5 / len(valid)), 1 - 0.5 / len(valid))
    z0 = float(norm.ppf(share))
    alpha = np.array([(1 - level) / 2, 1 - (1 - level) / 2])
    za = norm.ppf(alpha) + z0
    adjusted = norm.cdf(z0 + za / (1 - acceleration * za))
    low, high = quantile_type8(valid, adjusted)
    iv = _ordered(Interval(float(low), float(high), level, "bootstrap-bca"), observed, point)
    return Bootstrap(iv, estimates, failed, models, z0, acceleration)


def jackknife_acceleration(counts: FloatArray, estimator: Estimator) -> float:
    """Efron's acceleration from leaving out one person, once per distinct observed history."""
    weights, values = [], []
    for j in np.flatnonzero(counts > 0):
        fewer = counts.copy()
        fewer[j] -= 1
        got = estimator(fewer)
        if got is not None and math.isfinite(got.total):
            weights.append(counts[j])
            values.append(got.total)
    if len(values) < 2:
        return 0.0
    w, v = np.array(weights), np.array(values)
    residual = np.sum(w * v) / np.sum(w) - v
    denominator = 6 * np.sum(w * residual**2) ** 1.5
    return float(np.sum(w * residual**3) / denominator) if denominator > 0 else 0.0
