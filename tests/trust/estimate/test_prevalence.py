"""The whole estimate: an interval around every number, or no number and the reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trust.estimate import (
    CaptureHistories,
    Criterion,
    EstimateError,
    ReasonCode,
    SelectionRule,
    estimate_population,
    from_rows,
)

Published = Callable[[str], CaptureHistories]

tables = st.integers(2, 4).flatmap(
    lambda t: st.lists(st.integers(0, 40), min_size=2**t - 1, max_size=2**t - 1).map(
        lambda cells: CaptureHistories(tuple("ABCD"[:t]), tuple(cells))
    )
)
rules = st.sampled_from(
    [SelectionRule(), SelectionRule(Criterion.PVALUE), SelectionRule(Criterion.AIC)]
)


def _ordered(e: object) -> None:
    from trust.estimate.prevalence import PopulationEstimate

    assert isinstance(e, PopulationEstimate)
    if not e.exists:
        assert e.estimate is None and e.ci_low is None and e.ci_high is None
        assert e.reason and e.reason_code
        return
    assert e.estimate is not None and e.ci_low is not None
    assert e.observed <= e.ci_low <= e.estimate
    assert e.ci_high is None or e.estimate <= e.ci_high


@settings(max_examples=40, deadline=None)
@given(tables, rules)
@example(  # once found no change of sign for the profile interval's root search
    CaptureHistories(tuple("ABC"), (2, 2, 1, 3, 1, 1, 11)),
    SelectionRule(criterion=Criterion.BIC, max_order=2, screen=4),
)
def test_observed_low_estimate_high_are_always_in_order(
    h: CaptureHistories, rule: SelectionRule
) -> None:
    _ordered(estimate_population(h, rule))


@settings(max_examples=8, deadline=None)
@given(tables, st.integers(0, 2**16))
def test_bootstrap_intervals_are_in_order_too(h: CaptureHistories, seed: int) -> None:
    e = estimate_population(h, SelectionRule(Criterion.PVALUE), bootstrap=15, seed=seed)
    _ordered(e)
    if e.exists:
        assert e.interval_method == "bootstrap-bca"
        assert e.bootstrap is not None and e.bootstrap.replicates == 15


def test_lists_that_never_overlap_give_no_estimate_and_say_why() -> None:
    h = from_rows("ABC", [((1, 0, 0), 10), ((0, 1, 0), 5), ((0, 0, 1), 7)])
    e = estimate_population(h)
    assert not e.exists
    assert e.reason_code is ReasonCode.LISTS_DISJOINT
    assert e.to_json()["estimate"] is None and "overlap" in e.to_json()["reason"]


def test_a_court_that_only_sees_police_cases_is_merged_into_the_police_list() -> None:
    h = from_rows(
        ["police", "ngo", "nrm", "court"],
        [
            ((1, 0, 0, 0), 40),
            ((0, 1, 0, 0), 30),
            ((0, 0, 1, 0), 20),
            ((1, 1, 0, 0), 10),
            ((1, 0, 1, 0), 12),
            ((0, 1, 1, 0), 6),
            ((1, 0, 0, 1), 9),
            ((1, 1, 0, 1), 3),
            ((1, 0, 1, 1), 4),
        ],
    )
    merged = estimate_population(h)
    assert merged.merged == (("court", "police"),)
    assert merged.modelled_lists == ("police", "ngo", "nrm")
    without_court = estimate_population(h.without("court"))
    assert merged.estimate == pytest.approx(without_court.estimate)
    kept = estimate_population(h, merge_nested=False)
    assert "police:court" not in kept.model  # its estimate would not exist


def test_a_list_holding_everyone_and_too_few_lists_give_no_estimate() -> None:
    everyone = from_rows("AB", [((1, 0), 10), ((1, 1), 5)])
    assert estimate_population(everyone).reason_code is ReasonCode.LIST_HOLDS_EVERYONE
    empty_list = from_rows("ABC", [((1, 0, 0), 10), ((1, 1, 0), 5), ((0, 1, 0), 4)])
    dropped = estimate_population(empty_list)
    assert dropped.exists and dropped.dropped == ("C",)
    assert dropped.estimate == pytest.approx(15 * 9 / 5)
    nobody = CaptureHistories(("A", "B"), (0, 0, 0))
    assert estimate_population(nobody).reason_code is ReasonCode.NO_OBSERVATIONS


def test_a_fixed_model_and_its_refusal(published: Published) -> None:
    h = published("artificial_3")
    fixed = estimate_population(h, model=["A:C"])
    assert fixed.exists and fixed.criterion == "fixed"
    assert fixed.boundary_terms == ("A:C",)  # A and C never meet
    refused = estimate_population(h, model=["A:B"])
    assert not refused.exists and refused.reason_code is ReasonCode.MLE_DOES_NOT_EXIST
    with pytest.raises(EstimateError):
        estimate_population(h, model=["A:Z"])


def test_the_json_has_the_fields_a_release_needs(published: Published) -> None:
    out = estimate_population(published("western"), SelectionRule(Criterion.PVALUE)).to_json()
    for key in (
        "observed",
        "estimate",
        "hidden",
        "ci_low",
        "ci_high",
        "model",
        "criterion",
        "lists",
        "exists",
        "interval_method",
        "seconds",
    ):
        assert key in out
    assert out["model"] == ["A:E"] and out["lists"] == ["A", "B", "C", "D", "E"]
    assert out["estimate"] == pytest.approx(out["observed"] + out["hidden"], abs=0.01)


@pytest.mark.parametrize(("option", "value"), [("level", 1.0), ("bootstrap", -1)])
def test_bad_options_are_errors(published: Published, option: str, value: float) -> None:
    with pytest.raises(EstimateError) as info:
        estimate_population(published("korea"), **{option: value})  # type: ignore[arg-type]
    assert info.value.code is ReasonCode.BAD_OPTION
