"""Poisson log-linear models on the observable cells, fitted with statsmodels.

Every observable history ω (all ``2**t - 1`` of them, zero counts included) has a Poisson count
with ``log μ_ω = u + Σ_{i∈ω} u_i + Σ_{θ∈M, θ⊆ω} u_θ``: an intercept, one main effect per list and
the interaction terms θ (sets of two or more lists) of the model M. The persons on no list have
``μ_∅ = exp(u)``, so the hidden count is the exponential of the fitted intercept.

A term whose lists never occur together (its observed margin ``n*_θ`` is zero) has the extended
maximum-likelihood estimate ``u_θ = -∞``: every cell containing θ has fitted mean zero, so those
cells are dropped from the fit and θ's column with them, yet θ still counts as a parameter in
AIC and BIC. :func:`reduced_design` builds that design; :func:`fit` fits it.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import statsmodels.api as sm

from trust.estimate.errors import EstimateError, ReasonCode

Term = frozenset[int]  # the indices of the lists an interaction joins (two or more)
FloatArray = npt.NDArray[np.float64]
# IRLS stops when the deviance changes by less than this: far below what moves a BIC
# comparison or an estimate, and an iteration fewer than the default 1e-8 in most fits
DEVIANCE_TOL = 1e-8
IntArray = npt.NDArray[np.int64]


def term_name(term: Term, lists: Sequence[str]) -> str:
    """``"police:nrm"``: the lists of ``term`` in table order, joined by colons."""
    return ":".join(lists[i] for i in sorted(term))


def _term_key(term: Term) -> tuple[int, tuple[int, ...]]:
    return (len(term), tuple(sorted(term)))


@dataclass(frozen=True, slots=True)
class Model:
    """Main effects for every list plus the interaction ``terms``."""

    terms: frozenset[Term] = frozenset()

    @property
    def order(self) -> int:
        """The largest number of lists an interaction joins (1: main effects only)."""
        return max((len(t) for t in self.terms), default=1)

    def ordered(self) -> list[Term]:
        return sorted(self.terms, key=_term_key)

    def names(self, lists: Sequence[str]) -> tuple[str, ...]:
        return tuple(term_name(t, lists) for t in self.ordered())

    def plus(self, term: Term) -> Model:
        return Model(self.terms | {term})

    def is_hierarchical(self) -> bool:
        """Every subset (of two or more lists) of every term is itself a term."""
        return all(
            frozenset(sub) in self.terms
            for t in self.terms
            if len(t) > 2
            for sub in itertools.combinations(sorted(t), len(t) - 1)
        )

    @classmethod
    def of(cls, names: Iterable[str], lists: Sequence[str]) -> Model:
        """The model whose terms are named like ``"police:nrm"``."""
        terms = set()
        for name in names:
            parts = name.split(":")
            if len(parts) < 2 or len(set(parts)) != len(parts):
                raise EstimateError(ReasonCode.BAD_OPTION, "a term joins two or more lists", name)
            for p in parts:
                if p not in lists:
                    raise EstimateError(ReasonCode.UNKNOWN_LIST, "no such list", p)
            terms.add(frozenset(lists.index(p) for p in parts))
        model = cls(frozenset(terms))
        if not model.is_hierarchical():
            raise EstimateError(ReasonCode.BAD_OPTION, "a model must be hierarchical")
        return model


def all_pairs(t: int) -> list[Term]:
    """Every two-list term, in the order (0,1), (0,2), …, (1,2), …"""
    return [frozenset(p) for p in itertools.combinations(range(t), 2)]


class Table:
    """The cells of a ``t``-list table and the design columns over them (built once per t)."""

    def __init__(self, t: int) -> None:
        self.t = t
        codes = np.arange(1, 2**t, dtype=np.int64)
        self.codes: IntArray = codes
        self.bits: FloatArray = ((codes[:, None] >> np.arange(t)) & 1).astype(np.float64)
        self.main: FloatArray = np.column_stack([np.ones(len(codes)), self.bits])
        self._columns: dict[Term, FloatArray] = {}

    def column(self, term: Term) -> FloatArray:
        """1.0 on the cells whose history contains every list of ``term``."""
        col = self._columns.get(term)
        if col is None:
            mask = sum(1 << i for i in term)
            col = ((self.codes & mask) == mask).astype(np.float64)
            self._columns[term] = col
        return col

    def margin(self, counts: FloatArray, term: Term) -> float:
        """``n*_θ``: persons on every list of ``term``, whatever else they are on."""
        return float(counts @ self.column(term))


@dataclass(frozen=True, slots=True, eq=False)
class Design:
    """The design of a model on a table once the ``-∞`` terms' cells are removed."""

    model: Model
    boundary: tuple[Term, ...]  # terms fitted at -∞ (margin zero), in term order
    kept: IntArray  # indices of the cells left in the fit
    x: FloatArray  # intercept, main effects, finite interaction terms, over the kept cells

    @property
    def parameters(self) -> int:
        """Parameters counted in the penalty: all of them, the -∞ ones included."""
        return int(self.x.shape[1]) + len(self.boundary)


def reduced_design(table: Table, counts: FloatArray, model: Model) -> Design:
    """Drop the terms with a zero margin and every cell containing one of them."""
    terms = model.ordered()
    boundary = tuple(t for t in terms if table.margin(counts, t) == 0)
    keep = np.ones(len(table.codes), dtype=bool)
    for t in boundary:
        keep &= table.column(t) == 0
    finite = [table.column(t) for t in terms if t not in boundary]
    x = np.column_stack([table.main, *finite]) if finite else table.main
    kept = np.flatnonzero(keep)
    return Design(model, boundary, kept, x[kept])


@dataclass(frozen=True, slots=True, eq=False)
class Fit:
    """A fitted model: the hidden count, the likelihood and what selection needs."""

    model: Model
    observed: int
    hidden: float
    loglik: float
    parameters: int
    boundary: tuple[Term, ...]
    kept: IntArray = field(repr=False)
    fitted: FloatArray = field(repr=False)  # fitted means on the kept cells
    params: FloatArray = field(repr=False)

    @property
    def total(self) -> float:
        return self.observed + self.hidden

    @property
    def aic(self) -> float:
        return 2 * self.parameters - 2 * self.loglik

    @property
    def bic(self) -> float:
        """``-2 log L + k log n`` with n the number of observed persons (as Rcapture does)."""
        return (
            self.parameters * (math.log(self.observed) if self.observed else 0.0) - 2 * self.loglik
        )


class FitFailed(ArithmeticError):
    """The GLM did not converge to finite values (the data do not support this model)."""


def glm_fit(x: FloatArray, y: FloatArray, start: FloatArray | None = None) -> FloatArray:
    """Poisson GLM coefficients by statsmodels' IRLS; raises FitFailed if not finite.

    Warnings are silenced only inside this call: a model at the edge of existence makes IRLS
    warn on its way to the boundary, and existence is decided by the LP check, not by warnings.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = sm.GLM(y, x, family=sm.families.Poisson()).fit(
                start_params=start, tol=DEVIANCE_TOL
            )
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            raise FitFailed(str(exc)) from None
    params = np.asarray(result.params, dtype=np.float64)
    if not np.all(np.isfinite(params)):
        raise FitFailed("non-finite coefficients")
    return params


def poisson_loglik(y: FloatArray, mu: FloatArray) -> float:
    """``Σ y log μ - μ - log y!`` (``0 log 0 = 0``)."""
    from scipy.special import gammaln

    pos = y > 0
    return float(np.sum(y[pos] * np.log(mu[pos])) - np.sum(mu) - np.sum(gammaln(y + 1)))


Starts = dict[tuple[Model, tuple[Term, ...]], FloatArray]


def fit(table: Table, counts: FloatArray, model: Model, starts: Starts | None = None) -> Fit:
    """Fit ``model`` to ``counts`` (one per cell of ``table``); existence is not checked here
    (see :mod:`trust.estimate.existence`), but a fit that diverges raises FitFailed.

    ``starts`` remembers the last coefficients per (model, -∞ terms) and starts IRLS from them:
    resampled tables are close to each other, so this saves most iterations in the bootstrap.
    """
    design = reduced_design(table, counts, model)
    y = counts[design.kept]
    key = (model, design.boundary)
    start = starts.get(key) if starts is not None else None
    try:
        params = glm_fit(design.x, y, start)
    except FitFailed:
        if start is None:
            raise
        params = glm_fit(design.x, y)
    if starts is not None:
        starts[key] = params
    eta = design.x @ params
    if not np.all(np.isfinite(eta)) or np.max(eta) > 700:
        raise FitFailed("fitted means overflow")
    mu = np.exp(eta)
    hidden = math.exp(params[0]) if params[0] < 700 else math.inf
    if not math.isfinite(hidden):
        raise FitFailed("hidden count overflows")
    return Fit(
        model=model,
        observed=round(float(counts.sum())),
        hidden=hidden,
        loglik=poisson_loglik(y, mu),
        parameters=design.parameters,
        boundary=design.boundary,
        kept=design.kept,
        fitted=mu,
        params=params,
    )
