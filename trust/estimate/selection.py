"""Which interactions to model: information criteria or the stepwise p-value rule.

* ``bic`` / ``aic`` with ``exhaustive`` search: every model made of two-list terms is checked
  (existence, identifiability) and fitted; the smallest criterion wins (Silverman, Chan & Vincent
  2024 use BIC this way). Only where the model space allows: at most ``MAX_EXHAUSTIVE`` models.
* ``bic`` / ``aic`` with ``greedy`` search: from main effects, add the term that lowers the
  criterion most, while one does. Each step refits the ``screen`` candidates with the largest
  score statistics (all of them with ``screen=None``); the tests check this keeps the exact
  choice on the published tables. With a ``threshold`` the added term must also be significant
  at that level (the p-value below): AIC with 0.05 is our reading of the Home Office 2014 rule.
* ``pvalue`` (stepwise, Chan, Silverman & Vincent 2021): from main effects, add the two-list term
  with the smallest p-value while it is below ``threshold`` (default 0.02). The p-value of a term
  θ not in the model compares ``n*_θ``, the persons on both lists, with its Poisson distribution
  under the current fit: ``min(P(X ≤ n*), P(X ≥ n*))``, ``X ~ Poisson(Σ fitted cells ⊇ θ)``.

In every search a candidate that fails the existence or identifiability check is never chosen;
candidates are checked in order of preference, so the linear programme runs only for the ones
that would otherwise win. ``BIC = -2 log L + k log n`` with n the observed persons and k counting
the ``-∞`` terms.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.stats import poisson

from trust.estimate.errors import EstimateError, ReasonCode
from trust.estimate.existence import ExistenceCache
from trust.estimate.models import Fit as ModelFit
from trust.estimate.models import (
    FitFailed,
    FloatArray,
    Model,
    Starts,
    Table,
    Term,
    all_pairs,
    fit,
    reduced_design,
)

MAX_EXHAUSTIVE = 1024  # two-list models of 5 lists; 6 lists would be 32,768
AUTO_EXHAUSTIVE = 64  # the default search is exhaustive up to 4 lists
DEFAULT_PVALUE_THRESHOLD = 0.02
GREEDY_SCREEN = 4  # candidates refitted per greedy step, best score statistics first


class Criterion(StrEnum):
    BIC = "bic"
    AIC = "aic"
    PVALUE = "pvalue"


class Search(StrEnum):
    GREEDY = "greedy"
    EXHAUSTIVE = "exhaustive"


@dataclass(frozen=True, slots=True)
class SelectionRule:
    """How a model is chosen. ``search=None``: exhaustive where at most ``AUTO_EXHAUSTIVE``
    models exist (up to 4 lists), greedy beyond; ``pvalue`` is always stepwise (greedy)."""

    criterion: Criterion = Criterion.BIC
    search: Search | None = None
    threshold: float | None = None
    max_order: int = 2
    screen: int | None = GREEDY_SCREEN

    def __post_init__(self) -> None:
        if self.screen is not None and self.screen < 1:
            raise EstimateError(ReasonCode.BAD_OPTION, "screen at least one candidate")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise EstimateError(ReasonCode.BAD_OPTION, "the threshold is a p-value in [0, 1]")
        if self.max_order < 1:
            raise EstimateError(ReasonCode.BAD_OPTION, "max_order must be at least 1")
        if self.criterion is Criterion.PVALUE and self.search is Search.EXHAUSTIVE:
            raise EstimateError(
                ReasonCode.BAD_OPTION, "the p-value rule is stepwise: use the greedy search"
            )

    def search_for(self, t: int) -> Search:
        if self.criterion is Criterion.PVALUE:
            return Search.GREEDY
        if self.search is not None:
            return self.search
        return (
            Search.EXHAUSTIVE
            if model_count(t, self.max_order) <= AUTO_EXHAUSTIVE
            else Search.GREEDY
        )

    @property
    def pvalue_threshold(self) -> float | None:
        if self.criterion is Criterion.PVALUE:
            return DEFAULT_PVALUE_THRESHOLD if self.threshold is None else self.threshold
        return self.threshold


def model_count(t: int, max_order: int = 2) -> int:
    """Models the exhaustive search would visit (two-list terms only: ``2**(t(t-1)/2)``)."""
    return 1 if max_order < 2 else 2 ** (t * (t - 1) // 2)


@dataclass(frozen=True, slots=True, eq=False)
class Selection:
    """The chosen fit, and the admissible models seen with their criterion values (exhaustive:
    all of them, best first; greedy: the path taken)."""

    fit: ModelFit
    ranking: tuple[tuple[Model, float], ...]


def score(f: ModelFit, criterion: Criterion) -> float:
    return f.aic if criterion is Criterion.AIC else f.bic


def term_pvalue(table: Table, counts: FloatArray, current: ModelFit, term: Term) -> float:
    """The Poisson p-value of adding ``term`` to the fitted model (see the module note)."""
    expected = float(current.fitted @ table.column(term)[current.kept])
    observed = table.margin(counts, term)
    if expected <= 0:
        return 1.0
    low = float(poisson.cdf(observed, expected))
    high = float(poisson.sf(observed - 1, expected))
    return min(low, high, 1.0)


def candidates(model: Model, t: int, max_order: int) -> list[Term]:
    """Terms that can be added keeping the model hierarchical, smallest first then by lists."""
    out = [p for p in all_pairs(t) if p not in model.terms] if max_order >= 2 else []
    for k in range(3, max_order + 1):
        for combo in itertools.combinations(range(t), k):
            term = frozenset(combo)
            if term not in model.terms and all(
                frozenset(sub) in model.terms for sub in itertools.combinations(combo, k - 1)
            ):
                out.append(term)
    return out


class Memory:
    """What one search (or a bootstrap's many) can reuse: existence answers and IRLS starts."""

    def __init__(self, table: Table) -> None:
        self.existence = ExistenceCache(table)
        self.starts: Starts = {}

    def ok(self, counts: FloatArray, model: Model) -> bool:
        return self.existence.check(counts, model).ok


def _try_fit(table: Table, counts: FloatArray, model: Model, memory: Memory) -> ModelFit | None:
    try:
        return fit(table, counts, model, memory.starts)
    except FitFailed:
        return None


def select(
    table: Table,
    counts: FloatArray,
    rule: SelectionRule,
    memory: Memory | None = None,
    among: Sequence[Model] | None = None,
) -> Selection | None:
    """The model ``rule`` chooses for ``counts``, or None when no candidate can be fitted.

    ``among`` restricts an exhaustive search to these models (the bootstrap's top models).
    """
    memory = memory or Memory(table)
    search = rule.search_for(table.t)
    if search is Search.EXHAUSTIVE:
        return _exhaustive(table, counts, rule, memory, among)
    return _greedy(table, counts, rule, memory)


def exhaustive_models(t: int, max_order: int) -> list[Model]:
    if max_order > 2:
        raise EstimateError(
            ReasonCode.BAD_OPTION, "the exhaustive search covers two-list interactions only"
        )
    n = model_count(t, max_order)
    if n > MAX_EXHAUSTIVE:
        raise EstimateError(
            ReasonCode.SEARCH_TOO_LARGE,
            f"an exhaustive search of {t} lists would fit {n} models (at most "
            f"{MAX_EXHAUSTIVE}); use the greedy search",
        )
    pairs = all_pairs(t) if max_order >= 2 else []
    return [
        Model(frozenset(sub))
        for r in range(len(pairs) + 1)
        for sub in itertools.combinations(pairs, r)
    ]


def _exhaustive(
    table: Table,
    counts: FloatArray,
    rule: SelectionRule,
    memory: Memory,
    among: Sequence[Model] | None,
) -> Selection | None:
    models = list(among) if among is not None else exhaustive_models(table.t, rule.max_order)
    scored: list[tuple[float, int, ModelFit]] = []
    for i, model in enumerate(models):
        if not memory.ok(counts, model):
            continue
        f = _try_fit(table, counts, model, memory)
        if f is not None:
            scored.append((score(f, rule.criterion), i, f))
    if not scored:
        return None
    scored.sort(key=lambda s: (s[0], s[1]))
    return Selection(scored[0][2], tuple((f.model, v) for v, _, f in scored))


def _greedy(
    table: Table, counts: FloatArray, rule: SelectionRule, memory: Memory
) -> Selection | None:
    current_model = Model()
    if not memory.ok(counts, current_model):
        return _first_admissible_step(table, counts, rule, memory)
    current = _try_fit(table, counts, current_model, memory)
    if current is None:
        return None
    return _climb(table, counts, rule, memory, current)


def _climb(
    table: Table,
    counts: FloatArray,
    rule: SelectionRule,
    memory: Memory,
    current: ModelFit,
) -> Selection:
    threshold = rule.pvalue_threshold
    by_pvalue = rule.criterion is Criterion.PVALUE
    path = [(current.model, _value(current, rule.criterion))]
    while True:
        terms = candidates(current.model, table.t, 2 if by_pvalue else rule.max_order)
        if not terms:
            break
        nxt = (
            _next_by_pvalue(table, counts, memory, current, terms, threshold or 0.0)
            if by_pvalue
            else _next_by_criterion(table, counts, rule, memory, current, terms, threshold)
        )
        if nxt is None:
            break
        current = nxt
        path.append((current.model, _value(current, rule.criterion)))
    return Selection(current, tuple(path))


def _value(f: ModelFit, criterion: Criterion) -> float:
    return f.bic if criterion is Criterion.PVALUE else score(f, criterion)


def _next_by_pvalue(
    table: Table,
    counts: FloatArray,
    memory: Memory,
    current: ModelFit,
    terms: list[Term],
    threshold: float,
) -> ModelFit | None:
    pvalues = [(term_pvalue(table, counts, current, term), i) for i, term in enumerate(terms)]
    for p, i in sorted(pvalues):
        if p >= threshold:
            return None
        model = current.model.plus(terms[i])
        if memory.ok(counts, model):
            f = _try_fit(table, counts, model, memory)
            if f is not None:
                return f
    return None


def score_statistics(
    table: Table, counts: FloatArray, current: ModelFit, terms: list[Term]
) -> FloatArray:
    """Rao's score statistic for adding each term to the fitted model (one matrix product for
    all of them): ``U²/V`` with ``U = z'(y - μ)`` and ``V`` the variance of ``U`` once the
    model's own parameters are allowed for. It approximates each term's likelihood-ratio gain."""
    design = reduced_design(table, counts, current.model)
    x, mu = design.x, current.fitted
    y = counts[design.kept]
    z = np.column_stack([table.column(t)[design.kept] for t in terms])
    xw = x * mu[:, None]
    inverse = np.linalg.pinv(x.T @ xw)
    zwx = z.T @ xw
    variance = (z * mu[:, None]).T @ z
    v = np.diag(variance) - np.einsum("ij,jk,ik->i", zwx, inverse, zwx)
    u = z.T @ (y - mu)
    return np.asarray(u**2 / np.maximum(v, 1e-12), dtype=np.float64)


def _next_by_criterion(
    table: Table,
    counts: FloatArray,
    rule: SelectionRule,
    memory: Memory,
    current: ModelFit,
    terms: list[Term],
    threshold: float | None,
) -> ModelFit | None:
    """The best admissible candidate by the criterion if it improves on the current model.

    With ``rule.screen`` only that many candidates are refitted: those with the largest score
    statistics, which rank the likelihood-ratio gains almost exactly; the criterion then decides
    among them. ``screen=None`` refits every candidate (an exact greedy step).
    """
    now = score(current, rule.criterion)
    order = list(range(len(terms)))
    if threshold is not None:
        order = [i for i in order if term_pvalue(table, counts, current, terms[i]) < threshold]
    if rule.screen is not None and len(order) > rule.screen:
        stats = score_statistics(table, counts, current, [terms[i] for i in order])
        ranked = sorted(zip(order, stats, strict=True), key=lambda p: (-p[1], p[0]))
        order = sorted(i for i, _ in ranked[: rule.screen])
    tried: list[tuple[float, int, ModelFit]] = []
    for i in order:
        f = _try_fit(table, counts, current.model.plus(terms[i]), memory)
        if f is not None and math.isfinite(score(f, rule.criterion)):
            tried.append((score(f, rule.criterion), i, f))
    for value, _, f in sorted(tried, key=lambda s: (s[0], s[1])):
        if value >= now:
            return None
        if memory.ok(counts, f.model):
            return f
    return None


def _first_admissible_step(
    table: Table, counts: FloatArray, rule: SelectionRule, memory: Memory
) -> Selection | None:
    """Main effects alone have no estimate (e.g. two lists that never overlap): a model with
    ``-∞`` terms may still have one, so start from the best admissible single-term model."""
    start: list[tuple[float, int, ModelFit]] = []
    for i, term in enumerate(candidates(Model(), table.t, rule.max_order)):
        model = Model(frozenset({term}))
        if memory.ok(counts, model):
            f = _try_fit(table, counts, model, memory)
            if f is not None:
                start.append((_value(f, rule.criterion), i, f))
    if not start:
        return None
    start.sort(key=lambda s: (s[0], s[1]))
    return _climb(table, counts, rule, memory, start[0][2])


Selector = Callable[[FloatArray], ModelFit | None]


def selector(table: Table, rule: SelectionRule, among: Sequence[Model] | None = None) -> Selector:
    """``counts -> chosen fit`` sharing one :class:`Memory` across calls (for resampling)."""
    memory = Memory(table)

    def choose(counts: FloatArray) -> ModelFit | None:
        chosen = select(table, counts, rule, memory, among)
        return None if chosen is None else chosen.fit

    return choose


def as_counts(values: Sequence[int] | FloatArray) -> FloatArray:
    return np.asarray(values, dtype=np.float64)
