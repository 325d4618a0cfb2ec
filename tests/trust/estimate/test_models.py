"""Poisson log-linear fits: the closed forms and the figures the R packages print."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.estimate.histories import CaptureHistories, from_rows
from trust.estimate.models import Model, Table, all_pairs, fit, reduced_design

Published = Callable[[str], CaptureHistories]


def _fit(h: CaptureHistories, terms: list[str]) -> tuple[float, float, float, int]:
    f = fit(Table(len(h.lists)), np.asarray(h.counts, float), Model.of(terms, h.lists))
    return f.total, f.bic, f.aic, f.parameters


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300))
def test_two_lists_reduce_to_lincoln_petersen(a_only: int, b_only: int, both: int) -> None:
    h = from_rows("AB", [((1, 0), a_only), ((0, 1), b_only), ((1, 1), both)])
    total, *_ = _fit(h, [])
    lincoln_petersen = (a_only + both) * (b_only + both) / both
    assert total == pytest.approx(lincoln_petersen, rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=7, max_size=7))
def test_all_two_list_terms_on_three_lists_match_the_closed_form(cells: list[int]) -> None:
    # every term but the three-list one: the fit is exact on the 7 observed cells and the
    # hidden count is n100·n010·n001·n111 / (n110·n101·n011)
    h = CaptureHistories(("A", "B", "C"), tuple(cells))
    n = {code: cells[code - 1] for code in range(1, 8)}
    hidden = n[1] * n[2] * n[4] * n[7] / (n[3] * n[5] * n[6])
    total, *_ = _fit(h, ["A:B", "A:C", "B:C"])
    assert total - h.observed == pytest.approx(hidden, rel=1e-6)


def test_korea_bic_table_as_the_package_prints_it(published: Published) -> None:
    # MultipleSystemsEstimation user guide: fit_bic$bic_results$res for Korea
    korea = published("korea")
    expected = {
        ("b:c", "c:d"): (157.1667, 57.14081),
        ("b:c",): (268.7778, 58.96860),
        ("b:d", "c:d"): (123.4630, 91.89711),
        ("c:d",): (126.1944, 138.06368),
        ("b:d",): (126.9394, 155.16018),
        (): (141.9926, 184.14431),
    }
    for terms, (abundance, bic) in expected.items():
        total, got_bic, _, _ = _fit(korea, list(terms))
        assert total == pytest.approx(abundance, abs=1e-4)
        assert got_bic == pytest.approx(bic, abs=1e-5)
    # and the stepwise fit's AIC as glm prints it
    assert _fit(korea, ["b:c"])[2] == pytest.approx(44.90767, abs=1e-5)


def test_a_term_whose_lists_never_meet_is_fitted_at_minus_infinity_and_still_counted(
    published: Published,
) -> None:
    h = published("artificial_3")  # A and C never meet, nor do B and C
    table, counts = Table(3), np.asarray(h.counts, float)
    with_ac = Model.of(["A:C"], h.lists)
    design = reduced_design(table, counts, with_ac)
    assert [sorted(t) for t in design.boundary] == [[0, 2]]
    assert len(design.kept) == 5  # A:C and A:B:C dropped
    f = fit(table, counts, with_ac)
    main = fit(table, counts, Model())
    assert f.parameters == main.parameters + 1
    assert f.bic == pytest.approx(f.parameters * math.log(96) - 2 * f.loglik)
    assert len(all_pairs(3)) == 3


@pytest.mark.parametrize(
    ("name", "terms", "total", "bic", "aic"),
    [
        ("western", ["A:E"], 2483.384, 118.7443, 91.8395),
        ("new_orleans_5", [], 981.4314, 96.27026, 76.91578),
        ("new_orleans", ["D:E"], 1110.488, 145.0885, None),
    ],
)
def test_published_fits_are_reproduced(
    published: Published, name: str, terms: list[str], total: float, bic: float, aic: float | None
) -> None:
    got_total, got_bic, got_aic, _ = _fit(published(name), terms)
    assert got_total == pytest.approx(total, abs=1e-3)
    assert got_bic == pytest.approx(bic, abs=1e-4)
    if aic is not None:
        assert got_aic == pytest.approx(aic, abs=1e-4)
