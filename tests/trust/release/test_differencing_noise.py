"""Differencing safety for streams that round or perturb after suppression (``noise.md``,
``differencing.md``), tried by the attacker of ``attacker.py``.

One consumer holds four streams sharing the year margins and the total: ``victims_by_year_sex``
under suppression only (exact values, under the differencing rule) beside three streams whose
values are not exact — year x sex rounded down to multiples of k, year x age group under
cell-key perturbation, year x form under random rounding to multiples of 5. The trust changes
as in ``test_differencing.py`` (additions, retractions, linkage merges), releasing after every
change. At every release check the attacker solves one LP over all four streams' published
values — an exact value fixes its aggregate, a rounded or perturbed one bounds it to the true
counts its method could have published as that value — and reports any aggregate suppressed in
every stream that it bounds to an interval narrower than k; across checks, any aggregate known
exactly (published, or bounded to one integer: a perturbed value whose noise the margins undo)
at two checks that changed by 1 .. k-1. What the methods promise for values that stay inexact —
the same persons give the same value, so the true difference of two releases is not recovered —
is what that second check tests; the report also says how wide the attacker's intervals of
perturbed values and of their changes are.

Differentially private streams (``dp_discrete_laplace``, ``dp_discrete_gaussian``) are left
out: theirs is another guarantee (fresh noise at every release, bounded by the consumer's privacy
budget in the ledger, tested in ``test_noise_stage.py`` and ``test_ledger.py``), and the attacker
refuses them.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.trust.release.attacker import Attacker
from tests.trust.release.scenario import STEP_KINDS, Trust, run
from trust.release.streams import (
    VICTIMS_BY_YEAR_AGE_GROUP,
    VICTIMS_BY_YEAR_FORM,
    VICTIMS_BY_YEAR_SEX,
    StreamSpec,
)
from trust.store.eventstore import EventStore

K = 10

#: Test-only streams: the standard tables under the methods that round or perturb.
MIXED: tuple[StreamSpec, ...] = (
    VICTIMS_BY_YEAR_SEX,
    dataclasses.replace(VICTIMS_BY_YEAR_SEX, name="year_sex_rounded_down", method="round_down"),
    dataclasses.replace(VICTIMS_BY_YEAR_AGE_GROUP, name="year_age_cell_key", method="cell_key"),
    dataclasses.replace(
        VICTIMS_BY_YEAR_FORM, name="year_form_random_rounding", method="random_rounding"
    ),
)


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def test_rounded_and_perturbed_streams_tell_no_change_below_k(store: EventStore) -> None:
    result = run(Trust(store, {s.name: s for s in MIXED}, seed=7))
    assert result.releases >= 50
    assert all(result.steps[kind] >= 5 for kind in STEP_KINDS)
    attacker = Attacker(K)
    for check in result.checks:
        attacker.observe(check)
    assert [str(f) for f in attacker.findings] == []
    report = attacker.report()
    per_stream = report["per_stream"]
    assert {s["method"] for s in per_stream.values()} == {
        "suppression",
        "round_down",
        "cell_key",
        "random_rounding",
    }
    # every method published values the attacker bounded, and saw them change
    assert all(
        s.get("perturbed", 0) > 0 for s in per_stream.values() if s["method"] != "suppression"
    )
    assert report["bounded"]["perturbed_changes"] > 50
