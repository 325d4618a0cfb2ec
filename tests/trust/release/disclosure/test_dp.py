"""Differential privacy: OpenDP's mechanisms at the declared cost, every value not exact."""

from __future__ import annotations

import pytest

from trust.release.aggregate import table_from_counts
from trust.release.disclosure.dp import InvalidPrivacyParameters, PrivacyCost, add_noise, dp_table
from trust.release.streams import VICTIMS_BY_SEX_AGE_FORM, VICTIMS_BY_YEAR_AGE_GROUP


def test_laplace_noise_costs_what_opendp_says() -> None:
    out = add_noise([100] * 50, 4, "laplace", PrivacyCost(0.5))
    assert out.scale == pytest.approx(8.0) and out.cost.epsilon <= 0.5
    assert len(out.values) == 50 and len(set(out.values)) > 1  # noise, and integers
    assert all(isinstance(v, int) for v in out.values)


def test_gaussian_noise_needs_a_delta_and_meets_it() -> None:
    with pytest.raises(InvalidPrivacyParameters):
        add_noise([1, 2], 3, "gaussian", PrivacyCost(1.0))
    out = add_noise([1, 2], 3, "gaussian", PrivacyCost(1.0, 1e-6))
    assert out.cost.epsilon <= 1.0 and out.cost.delta <= 1e-6


def test_a_dp_table_with_margins_counts_a_person_in_every_aggregate_above_them() -> None:
    spec = VICTIMS_BY_YEAR_AGE_GROUP
    counts = table_from_counts(spec, {("2023", "0-11"): 40, ("2023", "25-34"): 60})
    out = dp_table(counts, 10, "laplace", PrivacyCost(1.0), margins=True)
    # a child is in their cell, 0-17, the year, their group, 0-17 and the total: 2 x 3 = 6
    assert out.parameters["sensitivity"] == "6" and out.exact is False
    assert all(a.value is None or a.value >= 10 for a in out.aggregates)
    assert {a.dimensions for a in out.aggregates} == {
        (),
        ("year",),
        ("age_group",),
        spec.dimensions,
    }
    assert out.hierarchies["age_group"]["0-17"] == ("0-11", "12-17", "0-17 band unknown")


def test_a_dp_table_without_margins_has_cells_and_total() -> None:
    spec = VICTIMS_BY_SEX_AGE_FORM
    counts = table_from_counts(spec, {("2023", "Feminine", "18-24", "Unknown"): 30})
    out = dp_table(counts, 10, "laplace", PrivacyCost(1.0), margins=False)
    assert out.parameters["sensitivity"] == "2" and out.aggregates == ()
    assert len(out.cells) == len(list(counts.cell_keys()))
    assert all(c.suppressed == (c.count is None) for c in out.cells)
