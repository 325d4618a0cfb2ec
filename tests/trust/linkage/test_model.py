"""Fellegi-Sunter parameters: versioned, EM recovers them, frequencies adjust exact agreement."""

from __future__ import annotations

import numpy as np
import pytest

from trust.linkage.blocking import KeyedHasher
from trust.linkage.comparison import ExactComparison, default_comparisons
from trust.linkage.errors import LinkageError
from trust.linkage.model import (
    ComparisonParameters,
    MatchModel,
    TermFrequencies,
    em_session,
    explain,
)
from trust.linkage.record import LinkRecord, RecordTable, prepare


def model() -> MatchModel:
    return MatchModel.seed(default_comparisons(), prior=0.001)


def test_version_follows_the_parameters() -> None:
    a, b = model(), model()
    assert a.version == b.version and a.version.startswith("fs1-")
    changed = MatchModel(0.002, a.comparisons)
    assert changed.version != a.version


def test_round_trip_and_a_forged_version_is_refused() -> None:
    m = model()
    assert MatchModel.from_dict(m.to_dict()) == m
    forged = {**m.to_dict(), "version": "fs1-0000000000000000"}
    with pytest.raises(LinkageError):
        MatchModel.from_dict(forged)
    with pytest.raises(LinkageError):
        MatchModel.from_dict({"prior": 2})


def test_a_model_for_other_comparisons_does_not_fit() -> None:
    with pytest.raises(LinkageError):
        model().check_fits(default_comparisons()[:3])


def test_em_recovers_m_from_data_drawn_from_a_known_model() -> None:
    rng = np.random.default_rng(7)
    comparisons = [ExactComparison("sex"), ExactComparison("nationality"), ExactComparison("x")]
    true_m, true_u, share, n = [0.95, 0.9, 0.85], [0.1, 0.2, 0.05], 0.3, 20_000
    match = rng.random(n) < share
    levels = np.zeros((n, 3), dtype=np.int8)
    for c in range(3):
        p = np.where(match, true_m[c], true_u[c])
        levels[:, c] = np.where(rng.random(n) < p, 1, 2)
    seed = MatchModel(
        0.1,
        tuple(
            ComparisonParameters(c.name, c.levels, (0.8, 0.2), (u, 1 - u))
            for c, u in zip(comparisons, true_u, strict=True)
        ),
    )
    fit = em_session(levels, seed, [True, True, True])
    assert fit.converged
    assert fit.share == pytest.approx(share, abs=0.02)
    for c in range(3):
        assert fit.m[c] is not None
        assert fit.m[c][0] == pytest.approx(true_m[c], abs=0.02)  # type: ignore[index]


def test_rare_names_weigh_more_than_common_ones() -> None:
    hasher = KeyedHasher(b"k" * 32)
    names = ["Smith"] * 50 + ["Okonkwo"] + [f"Name{i}" for i in range(49)]
    table = RecordTable.of([prepare(LinkRecord(str(i), surname=n)) for i, n in enumerate(names)])
    tf = TermFrequencies.of(table, ["surname"], hasher)
    assert (
        tf.adjustment("surname", "okonkwo", hasher) > 0 > tf.adjustment("surname", "smith", hasher)
    )
    # no name in clear in the table
    assert all("smith" not in key for key in tf.counts["surname"])


def test_an_explanation_adds_up_and_names_no_value() -> None:
    m = model()
    levels = np.array([1, 6, 1, 2, 0, 0, 0, 0, 0, 1, 3, 0], dtype=np.int8)
    e = explain(m, levels, [0.5] + [0.0] * 11)
    total = e.prior_weight + sum(t.weight + t.term_frequency_adjustment for t in e.terms)
    assert e.match_weight == pytest.approx(total)
    assert e.model_version == m.version
    assert [t.level for t in e.terms][:4] == ["exact", "other", "as_recorded", "agrees_where_known"]
