"""The whole estimate: informative lists, model selection, the fit and its interval.

:func:`estimate_population` is what the CLI and the ``prevalence_estimate`` release stream
(:mod:`trust.estimate.stream`) call. Its result always says whether an estimate exists; when
none does, the reason is given instead of a number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from trust.estimate.errors import EstimateError, ReasonCode
from trust.estimate.existence import check, disjoint
from trust.estimate.histories import CaptureHistories, informative
from trust.estimate.intervals import bca, profile_interval
from trust.estimate.models import Fit as ModelFit
from trust.estimate.models import FitFailed, FloatArray, Model, Table, fit, term_name
from trust.estimate.selection import (
    Memory,
    Search,
    Selection,
    SelectionRule,
    Selector,
    select,
    selector,
)

# Models the bootstrap repeats the exhaustive search over: the best by the original data's
# criterion, as Silverman, Chan & Vincent (2024) propose (their package's defaults).
BOOTSTRAP_TOP = {2: None, 3: None, 4: 20, 5: 100}


@dataclass(frozen=True, slots=True)
class BootstrapSummary:
    replicates: int
    failed: int  # replicates in which no model had an estimate (left out of the interval)
    distinct_models: int  # how many different models the replicates' selections chose
    top_model_share: float  # share of replicates that chose the most frequent model
    bias_correction: float
    acceleration: float


@dataclass(frozen=True, slots=True)
class PopulationEstimate:
    """An estimate of the total (observed + hidden), or the reason there is none."""

    lists: tuple[str, ...]  # as given
    modelled_lists: tuple[str, ...]  # after dropping empty and merging nested lists
    observed: int
    exists: bool
    estimate: float | None
    hidden: float | None
    ci_low: float | None
    ci_high: float | None  # None also when exists but the data put no upper limit
    level: float
    model: tuple[str, ...]  # interaction terms kept, "A:B"
    boundary_terms: tuple[str, ...]  # of which fitted at -∞ (the two lists never overlap)
    criterion: str
    search: str
    threshold: float | None
    interval_method: str  # "profile" | "bootstrap-bca"
    reason_code: ReasonCode | None
    reason: str | None
    merged: tuple[tuple[str, str], ...]  # (nested list, list it was merged into)
    dropped: tuple[str, ...]  # lists nobody is on
    aic: float | None
    bic: float | None
    bootstrap: BootstrapSummary | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else round(v, 3)

        out: dict[str, Any] = {
            "exists": self.exists,
            "observed": self.observed,
            "estimate": num(self.estimate),
            "hidden": num(self.hidden),
            "ci_low": num(self.ci_low),
            "ci_high": num(self.ci_high),
            "level": self.level,
            "model": list(self.model),
            "boundary_terms": list(self.boundary_terms),
            "criterion": self.criterion,
            "search": self.search,
            "threshold": self.threshold,
            "interval_method": self.interval_method,
            "lists": list(self.lists),
            "modelled_lists": list(self.modelled_lists),
            "merged": [{"list": a, "into": b} for a, b in self.merged],
            "dropped": list(self.dropped),
            "aic": num(self.aic),
            "bic": num(self.bic),
            "bootstrap": None
            if self.bootstrap is None
            else {
                "replicates": self.bootstrap.replicates,
                "failed": self.bootstrap.failed,
                "distinct_models": self.bootstrap.distinct_models,
                "top_model_share": round(self.bootstrap.top_model_share, 4),
                "bias_correction": round(self.bootstrap.bias_correction, 4),
                "acceleration": round(self.bootstrap.acceleration, 5),
            },
            "seconds": round(self.seconds, 4),
        }
        if not self.exists:
            out["reason_code"] = None if self.reason_code is None else str(self.reason_code)
            out["reason"] = self.reason
        return out


def estimate_population(
    histories: CaptureHistories,
    rule: SelectionRule | None = None,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    merge_nested: bool = True,
    model: Sequence[str] | None = None,
) -> PopulationEstimate:
    """Estimate the total from ``histories``.

    ``rule`` chooses the model (default BIC); ``model`` fixes it instead (its interaction terms
    named like ``"police:nrm"`` over the modelled lists; ``[]`` is main effects only).
    ``bootstrap`` > 0 gives a BCa interval from that many replicates, each repeating the
    selection (seeded by ``seed``); otherwise the profile-likelihood interval of the chosen
    model. Lists nobody is on are dropped; lists nested in another are merged into it unless
    ``merge_nested`` is False (see ``METHOD.md``).
    """
    started = time.perf_counter()
    rule = rule or SelectionRule()
    if not 0 < level < 1:
        raise EstimateError(ReasonCode.BAD_OPTION, "the level is a probability in (0, 1)")
    if bootstrap < 0:
        raise EstimateError(ReasonCode.BAD_OPTION, "the number of replicates is ≥ 0")
    if len(histories.lists) < 2:
        raise EstimateError(ReasonCode.TOO_FEW_LISTS, "expected at least two lists")
    result = PopulationEstimate(
        lists=histories.lists,
        modelled_lists=(),
        observed=histories.observed,
        exists=False,
        estimate=None,
        hidden=None,
        ci_low=None,
        ci_high=None,
        level=level,
        model=(),
        boundary_terms=(),
        criterion="fixed" if model is not None else str(rule.criterion),
        search="none",
        threshold=rule.pvalue_threshold if model is None else None,
        interval_method="bootstrap-bca" if bootstrap > 0 else "profile",
        reason_code=None,
        reason=None,
        merged=(),
        dropped=(),
        aic=None,
        bic=None,
        bootstrap=None,
        seconds=0.0,
    )

    def done(**changes: Any) -> PopulationEstimate:
        return replace(result, **changes, seconds=time.perf_counter() - started)

    if histories.observed == 0:
        return done(reason_code=ReasonCode.NO_OBSERVATIONS, reason="nobody is on any list")
    info = informative(histories, merge_nested)
    h = info.histories
    result = replace(result, modelled_lists=h.lists, merged=info.merged, dropped=info.dropped)
    if info.covering is not None:
        return done(
            reason_code=ReasonCode.LIST_HOLDS_EVERYONE,
            reason=f"list {info.covering!r} holds every observed person, so nothing shows whom "
            "it misses",
        )
    if len(h.lists) < 2:
        return done(
            reason_code=ReasonCode.NOT_ENOUGH_LISTS,
            reason="fewer than two informative lists remain once empty and nested lists are "
            "set aside",
        )
    table = Table(len(h.lists))
    counts = np.asarray(h.counts, dtype=np.float64)
    fixed = None if model is None else Model.of(model, h.lists)
    result = replace(result, search="fixed" if fixed else str(rule.search_for(table.t)))
    chosen: Selection | None
    if fixed is not None:
        status = check(table, counts, fixed)
        if not status.ok:
            return done(reason_code=status.code, reason=status.reason)
        got = fixed_estimator(table, fixed)(counts)
        chosen = None if got is None else Selection(got, ())
    else:
        chosen = select(table, counts, rule)
    if chosen is None:
        if disjoint(table, counts):
            return done(
                reason_code=ReasonCode.LISTS_DISJOINT,
                reason="no person is on two lists, so nothing shows how the lists overlap: no "
                "model has a finite estimate",
            )
        return done(
            reason_code=ReasonCode.NO_FINITE_MODEL,
            reason="no candidate model has an estimate that exists and is identifiable on "
            "these data",
        )
    f = chosen.fit
    summary: BootstrapSummary | None = None
    if bootstrap > 0:
        estimator = (
            fixed_estimator(table, fixed)
            if fixed is not None
            else selector(table, rule, _bootstrap_models(table, rule, chosen))
        )
        boot = bca(counts, f.total, estimator, bootstrap, seed, level)
        interval = boot.interval
        common = boot.models.most_common(1)
        summary = BootstrapSummary(
            replicates=bootstrap,
            failed=boot.failed,
            distinct_models=len(boot.models),
            top_model_share=(common[0][1] / bootstrap) if common else 0.0,
            bias_correction=boot.bias_correction,
            acceleration=boot.acceleration,
        )
    else:
        interval = profile_interval(table, counts, f, level)
    return done(
        exists=True,
        estimate=f.total,
        hidden=f.hidden,
        ci_low=interval.low,
        ci_high=interval.high if math.isfinite(interval.high) else None,
        model=f.model.names(h.lists),
        boundary_terms=tuple(term_name(t, h.lists) for t in f.boundary),
        aic=f.aic,
        bic=f.bic,
        bootstrap=summary,
    )


def _bootstrap_models(table: Table, rule: SelectionRule, chosen: Selection) -> list[Model] | None:
    """The exhaustive search's candidates in each replicate: the best on the original data."""
    if rule.search_for(table.t) is not Search.EXHAUSTIVE:
        return None
    top = BOOTSTRAP_TOP.get(table.t, 100)
    ranked = [m for m, _ in chosen.ranking]
    return ranked if top is None else ranked[:top]


def fixed_estimator(table: Table, model: Model) -> Selector:
    """``counts -> fit of model`` (None where it has no estimate), for a fixed-model bootstrap."""
    memory = Memory(table)

    def estimate(counts: FloatArray) -> ModelFit | None:
        if not memory.ok(counts, model):
            return None
        try:
            return fit(table, counts, model, memory.starts)
        except FitFailed:
            return None

    return estimate
