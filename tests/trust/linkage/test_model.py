"""Fellegi-Sunter parameters: versioned, EM recovers them, frequencies adjust exact agreement."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.linkage.blocking import KeyedHasher
from trust.linkage.comparison import ExactComparison, default_comparisons
from trust.linkage.errors import LinkageError
from trust.linkage.linker import Linker, PairScore
from trust.linkage.model import (
    U_PSEUDO_PAIRS,
    ComparisonParameters,
    MatchModel,
    TermFrequencies,
    default_model,
    distinct_rows,
    em_session,
    explain,
    group_of,
    measure_u,
    within_group,
)
from trust.linkage.record import LinkRecord, RecordTable, prepare
from trust.linkage.settings import LinkageSettings


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


def _random_pairs_with_matches(
    rng: np.random.Generator, n: int, prior: float, m: list[float], u: list[float]
) -> npt.NDArray[np.int8]:
    """Levels (1 agree, 2 disagree) of ``n`` random pairs of which a share ``prior`` match."""
    match = rng.random(n) < prior
    agree = rng.random(n) < np.where(match, m[0], u[0])
    return np.where(agree, 1, 2).astype(np.int8).reshape(n, 1)


def test_u_leaves_out_the_matches_among_the_random_pairs() -> None:
    # a date of birth: matches agree (m 0.99), different persons one pair in ten thousand; a
    # store's random pairs match one in two thousand, so most agreeing pairs are matches
    rng = np.random.default_rng(11)
    comparisons = [ExactComparison("date_of_birth")]
    prior, m, u = 5e-4, [0.99, 0.01], [1e-4, 1 - 1e-4]
    levels = _random_pairs_with_matches(rng, 2_000_000, prior, m, u)
    matches = MatchModel(
        prior,
        (ComparisonParameters("date_of_birth", ("exact", "other"), (0.99, 0.01), (0.5, 0.5)),),
    )
    raw = measure_u(comparisons, levels)["date_of_birth"][0]
    corrected = measure_u(comparisons, levels, matches)["date_of_birth"][0]
    assert raw == pytest.approx(prior * m[0] + u[0], rel=0.1)  # six times too large
    # what is left of the agreeing pairs is chance, shrunk towards the defaults (U_PSEUDO_PAIRS)
    n = len(levels)
    pseudo = U_PSEUDO_PAIRS * 0.02
    assert corrected == pytest.approx((u[0] * n + pseudo) / (n + U_PSEUDO_PAIRS), rel=0.15)
    assert math.log2(m[0] / corrected) - math.log2(m[0] / raw) > 2.0  # bits given back


@given(
    st.integers(min_value=0, max_value=500),
    st.integers(min_value=0, max_value=500),
    st.floats(min_value=0.0, max_value=0.9),
    st.floats(min_value=0.0, max_value=1.0),
)
@settings(max_examples=60, deadline=None)
def test_u_without_the_matches_is_a_distribution_with_no_zero(
    agree: int, disagree: int, prior: float, m_agree: float
) -> None:
    levels = np.array([1] * agree + [2] * disagree + [0] * 3, dtype=np.int8).reshape(-1, 1)
    comparisons = [ExactComparison("sex")]
    m = (m_agree, 1.0 - m_agree)
    matches = MatchModel(
        min(max(prior, 1e-9), 1 - 1e-9),
        (ComparisonParameters("sex", ("exact", "other"), m, (0.5, 0.5)),),
    )
    u = measure_u(comparisons, levels, matches)["sex"]
    assert u.sum() == pytest.approx(1.0)
    assert (u > 0).all()
    nothing_matches = replace(matches, prior=1e-12)
    np.testing.assert_allclose(
        measure_u(comparisons, levels, nothing_matches)["sex"],
        measure_u(comparisons, levels)["sex"],
        rtol=1e-6,
    )


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


def test_a_name_common_within_its_nationality_weighs_less_for_a_pair_of_that_nationality() -> None:
    """Names come from pools per country and sex: "Mei" is rare among all records but common
    among Chinese women, so two Chinese women called Mei agree on less than the overall
    frequency says (and two records of different groups keep the overall frequency)."""
    hasher = KeyedHasher(b"k" * 32)
    people = [("mei", "CN", "F")] * 30 + [("lan", "CN", "F")] * 10
    people += [(f"name{i}", "GB", "F") for i in range(160)]
    table = RecordTable.of(
        [
            prepare(LinkRecord(str(i), given_name=g, nationality=n, sex=s))
            for i, (g, n, s) in enumerate(people)
        ]
    )
    tf = TermFrequencies.of(table, ["given"], hasher)
    overall = tf.adjustment("given", "mei", hasher)
    within = tf.adjustment_within("given", group_of("CN", "F"), "mei", hasher)
    assert within is not None and within < overall
    assert within == pytest.approx(overall + math.log2((30 / 200) / (30 / 40)))
    # a group with too few records counted says nothing of its own
    assert tf.adjustment_within("given", group_of("GB", "M"), "mei", hasher) is None
    assert tf.adjustment_within("given", group_of("CN", ""), "mei", hasher) is None
    # no name or group in clear
    assert all("mei" not in k and "CN" not in k for k in tf.counts[within_group("given")])


def test_a_linker_weighs_a_shared_name_within_the_pair_s_group() -> None:
    hasher = KeyedHasher(b"k" * 32)
    people = [("mei", "CN", "F")] * 30 + [("lan", "CN", "F")] * 10
    people += [(f"name{i}", "GB", "F") for i in range(160)] + [("mei", "GB", "F")]
    records = [
        prepare(LinkRecord(str(i), given_name=g, nationality=n, sex=s))
        for i, (g, n, s) in enumerate(people)
    ]
    table = RecordTable.of(records)
    tf = TermFrequencies.of(table, ["given"], hasher)
    settings = LinkageSettings()
    linker = Linker(settings, MatchModel.seed(settings.comparisons, prior=0.001), hasher, tf)
    same_group = linker.score(records[0], records[1])
    across = linker.score(records[0], records[-1])  # a Chinese and a British Mei

    def adjustment(score: PairScore) -> float:
        return next(t.term_frequency_adjustment for t in score.explanation.terms)

    assert adjustment(same_group) == pytest.approx(
        tf.adjustment_within("given", group_of("CN", "F"), "mei", hasher)
    )
    assert adjustment(across) == pytest.approx(tf.adjustment("given", "mei", hasher))


def test_the_prior_shrinks_as_the_store_outgrows_the_training_data() -> None:
    """A record has about as many matches however many records it is compared with: among
    four times the records, each pair is a quarter as likely to match; never more likely."""
    trained = MatchModel(0.001, model().comparisons, trained_on=1001)
    assert trained.among(500) is trained and trained.among(1001) is trained
    assert trained.among(4001).prior == pytest.approx(0.00025)
    unknown = MatchModel(0.001, model().comparisons)
    assert unknown.among(10**6).prior == 0.001
    with pytest.raises(LinkageError):
        MatchModel(0.001, model().comparisons, trained_on=1)


def test_the_records_a_model_was_trained_on_are_kept() -> None:
    trained = MatchModel(0.001, model().comparisons, trained_on=1234)
    assert MatchModel.from_dict(trained.to_dict()).trained_on == 1234
    shipped = default_model()
    assert shipped.trained_on == 5469  # the shipped model says so in its ``trained_on``


def test_an_explanation_adds_up_and_names_no_value() -> None:
    m = model()
    levels = np.array([1, 6, 1, 2, 0, 0, 0, 0, 0, 1, 3, 0], dtype=np.int8)
    e = explain(m, levels, [0.5] + [0.0] * 11)
    total = e.prior_weight + sum(t.weight + t.term_frequency_adjustment for t in e.terms)
    assert e.match_weight == pytest.approx(total)
    assert e.model_version == m.version
    assert [t.level for t in e.terms][:4] == ["exact", "other", "as_recorded", "agrees_where_known"]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(0, 300),
    columns=st.integers(1, 14),
    top=st.integers(0, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_distinct_rows_are_numpys(rows: int, columns: int, top: int, seed: int) -> None:
    levels = np.random.default_rng(seed).integers(0, top + 1, size=(rows, columns)).astype(np.int8)
    vectors, inverse, counts = distinct_rows(levels)
    want = np.unique(levels, axis=0, return_inverse=True, return_counts=True)
    assert np.array_equal(vectors, want[0])
    assert np.array_equal(inverse, want[1].reshape(-1))
    assert np.array_equal(counts, want[2])
