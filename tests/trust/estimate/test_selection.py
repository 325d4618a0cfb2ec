"""Model selection: the stepwise p-value rule and the information criteria, on published data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import poisson

from trust.estimate.errors import EstimateError, ReasonCode
from trust.estimate.histories import CaptureHistories, from_rows
from trust.estimate.models import Model, Table, fit
from trust.estimate.selection import (
    Criterion,
    Search,
    Selection,
    SelectionRule,
    select,
    term_pvalue,
)

Published = Callable[[str], CaptureHistories]


def _select(h: CaptureHistories, rule: SelectionRule) -> Selection:
    got = select(Table(len(h.lists)), np.asarray(h.counts, float), rule)
    assert got is not None
    return got


@pytest.mark.parametrize(
    ("name", "model", "total"),
    [
        # printed by MultipleSystemsEstimation's reproduction of Chan, Silverman & Vincent (2021)
        ("korea", ("b:c",), 268.7778),
        ("new_orleans", ("D:E",), 1110.488),
        ("new_orleans_5", (), 981.4314),
        ("western", ("A:E",), 2483.384),
    ],
)
def test_the_stepwise_rule_picks_the_published_model(
    published: Published, name: str, model: tuple[str, ...], total: float
) -> None:
    h = published(name)
    got = _select(h, SelectionRule(Criterion.PVALUE))
    assert got.fit.model.names(h.lists) == model
    assert got.fit.total == pytest.approx(total, abs=1e-3)


def test_exhaustive_bic_ranks_korea_as_published(published: Published) -> None:
    h = published("korea")
    got = _select(h, SelectionRule(Criterion.BIC, Search.EXHAUSTIVE))
    assert got.fit.model.names(h.lists) == ("b:c", "c:d")
    assert got.fit.total == pytest.approx(157.1667, abs=1e-4)
    ranked = [m.names(h.lists) for m, _ in got.ranking]
    assert ranked == [("b:c", "c:d"), ("b:c",), ("b:d", "c:d"), ("c:d",), ("b:d",), ()]


def test_the_p_value_compares_the_overlap_with_its_poisson_expectation() -> None:
    h = from_rows(
        "ABC",
        [
            ((1, 0, 0), 40),
            ((0, 1, 0), 30),
            ((0, 0, 1), 30),
            ((1, 1, 0), 30),
            ((1, 0, 1), 3),
            ((0, 1, 1), 3),
            ((1, 1, 1), 1),
        ],
    )
    table, counts = Table(3), np.asarray(h.counts, float)
    main = fit(table, counts, Model())
    ab = frozenset({0, 1})
    expected = sum(mu for i, mu in zip(main.kept, main.fitted, strict=True) if (i + 1) & 3 == 3)
    observed = 30 + 1  # on A and B, with or without C
    assert observed > expected
    assert term_pvalue(table, counts, main, ab) == pytest.approx(poisson.sf(observed - 1, expected))
    assert term_pvalue(table, counts, main, ab) < 0.02
    pairs = [frozenset(p) for p in ((0, 1), (0, 2), (1, 2))]
    smallest = min(pairs, key=lambda t: term_pvalue(table, counts, main, t))
    path = _select(h, SelectionRule(Criterion.PVALUE)).ranking
    assert path[0][0] == Model() and path[1][0] == Model(frozenset({smallest}))
    assert _select(h, SelectionRule(Criterion.PVALUE, threshold=0.0)).fit.model == Model()


def test_aic_with_a_threshold_is_the_home_office_rule_and_lands_in_its_published_range(
    published: Published,
) -> None:
    # Home Office (2014): 10,000 to 13,000 potential victims in the UK in 2013
    for name in ("uk", "uk_5"):
        h = published(name)
        got = _select(h, SelectionRule(Criterion.AIC, Search.GREEDY, threshold=0.05))
        assert 10_000 <= got.fit.total <= 13_000
    uk5 = _select(published("uk_5"), SelectionRule(Criterion.PVALUE))
    assert round(uk5.fit.total) == 11_313


def test_greedy_never_beats_exhaustive_on_the_same_criterion(published: Published) -> None:
    for name in ("korea", "artificial_3"):
        h = published(name)
        greedy = _select(h, SelectionRule(Criterion.BIC, Search.GREEDY))
        best = _select(h, SelectionRule(Criterion.BIC, Search.EXHAUSTIVE))
        assert best.fit.bic <= greedy.fit.bic + 1e-9


def test_models_that_cannot_be_fitted_are_never_chosen(published: Published) -> None:
    h = published("artificial_3")
    for rule in (
        SelectionRule(Criterion.BIC, Search.EXHAUSTIVE),
        SelectionRule(Criterion.AIC, Search.GREEDY),
        SelectionRule(Criterion.PVALUE, threshold=1.0),
    ):
        terms = _select(h, rule).fit.model.names(h.lists)
        assert "A:B" not in terms  # with A:B the estimate does not exist


def test_search_options_are_checked() -> None:
    with pytest.raises(EstimateError) as info:
        SelectionRule(Criterion.PVALUE, Search.EXHAUSTIVE)
    assert info.value.code is ReasonCode.BAD_OPTION
    with pytest.raises(EstimateError) as info:
        SelectionRule(threshold=1.5)
    assert info.value.code is ReasonCode.BAD_OPTION
    six = CaptureHistories(tuple("ABCDEF"), tuple([3] * 63))
    with pytest.raises(EstimateError) as info:
        _select(six, SelectionRule(Criterion.BIC, Search.EXHAUSTIVE))
    assert info.value.code is ReasonCode.SEARCH_TOO_LARGE
    assert SelectionRule().search_for(4) is Search.EXHAUSTIVE
    assert SelectionRule().search_for(5) is Search.GREEDY


@pytest.mark.parametrize("name", ["korea", "western", "new_orleans_5", "uk_5"])
def test_screening_by_score_statistic_keeps_the_exact_greedy_choice(
    published: Published, name: str
) -> None:
    h = published(name)
    for criterion in (Criterion.BIC, Criterion.AIC):
        exact = _select(h, SelectionRule(criterion, Search.GREEDY, screen=None))
        screened = _select(h, SelectionRule(criterion, Search.GREEDY))
        assert screened.fit.model == exact.fit.model
