"""The linker an incremental follower calls: keys, one pair's score, decisions — the same
numbers batch linkage gives."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from trust.linkage.blocking import KeyedHasher
from trust.linkage.errors import LinkageError
from trust.linkage.linker import Decision, Linker, train
from trust.linkage.model import MatchModel
from trust.linkage.record import LinkRecord, prepare
from trust.linkage.settings import LinkageSettings

DATA = Path(__file__).parent / "data" / "febrl3_sample.csv"
HASHER = KeyedHasher(b"k" * 32)


@pytest.fixture(scope="module")
def trained() -> tuple[list[LinkRecord], Linker, object]:
    with DATA.open(newline="") as f:
        records = [LinkRecord(**row) for row in csv.DictReader(f)]
    training = train(LinkageSettings(), [prepare(r) for r in records], HASHER)
    return records, training.linker, training


def test_one_pair_scores_as_in_the_batch(trained: tuple[list[LinkRecord], Linker, object]) -> None:
    records, linker, training = trained
    batch = linker.score_vectors(training.table, training.vectors)  # type: ignore[attr-defined]
    for k in np.linspace(0, len(batch.probability) - 1, 25).astype(int):
        a = records[int(batch.vectors.left[k])]
        b = records[int(batch.vectors.right[k])]
        single = linker.score(a, b)
        assert single.probability == pytest.approx(float(batch.probability[k]), rel=1e-9)
        assert single.explanation.match_weight == pytest.approx(single.match_weight)
        assert single.explanation.model_version == linker.model_version


def test_candidates_are_found_by_shared_keys_and_ranked(
    trained: tuple[list[LinkRecord], Linker, object],
) -> None:
    records, linker, _ = trained
    new = next(r for r in records if r.id.endswith("-dup-0"))
    original = new.id.replace("-dup-0", "-org")
    keys = set(linker.candidates_keys(new))
    found = [r for r in records if r.id != new.id and keys & set(linker.candidates_keys(r))]
    assert original in {r.id for r in found}
    scores = linker.score_candidates(new, found)
    assert scores[0].id_r == original and scores[0].decision is Decision.JOIN
    assert [s.probability for s in scores] == sorted((s.probability for s in scores), reverse=True)
    stranger = next(r for r in records if r.id.split("-")[1] != new.id.split("-")[1])
    assert linker.score(new, stranger).decision is Decision.DISTINCT


def test_explanations_carry_levels_and_weights_not_values(
    trained: tuple[list[LinkRecord], Linker, object],
) -> None:
    records, linker, _ = trained
    a, b = records[0], records[1]
    text = repr(linker.score(a, b).explanation)
    for value in (a.given_name, a.surname, b.surname, a.document_number, a.date_of_birth):
        if value:
            assert value not in text


def test_decisions_follow_the_thresholds() -> None:
    settings = LinkageSettings(upper=0.9, lower=0.4)
    linker = Linker(settings, MatchModel.seed(settings.comparisons), HASHER)
    assert [linker.decide(p) for p in (0.95, 0.9, 0.5, 0.4, 0.1)] == [
        Decision.JOIN, Decision.JOIN, Decision.REVIEW, Decision.REVIEW, Decision.DISTINCT,
    ]  # fmt: skip


def test_bad_settings_are_refused_at_construction() -> None:
    with pytest.raises(LinkageError):
        LinkageSettings(upper=0.4, lower=0.5)
    with pytest.raises(LinkageError):
        LinkageSettings(conflict=0.6)


def test_training_measures_u_without_the_matches_among_its_random_pairs() -> None:
    # 400 persons, three records each, every date of birth their own: two records of different
    # persons never agree on it, and about one random pair in 600 is a match (which does)
    rng = np.random.default_rng(5)
    given = ["Ana", "Ben", "Cleo", "Dan", "Eva", "Femi", "Gus", "Hana", "Ivo", "Jana"]
    surnames = ["Ito", "Kaya", "Lund", "Moro", "Nagy", "Orr", "Pike", "Quinn", "Roy", "Sato"]
    records = []
    for p in range(400):
        born = f"{1960 + p // 12:04d}-{p % 12 + 1:02d}-{p % 28 + 1:02d}"
        g, s = rng.choice(given), rng.choice(surnames)
        for r in range(3):
            records.append(
                LinkRecord(f"{p}-{r}", given_name=str(g), surname=str(s), date_of_birth=born)
            )
    model = train(LinkageSettings(), [prepare(r) for r in records], HASHER).linker.model
    (dob,) = [c for c in model.comparisons if c.name == "date_of_birth"]
    matches_share = 3 * 400 * 2 / 2 / (1200 * 1199 / 2)  # matching pairs among all pairs
    # counted over all random pairs, u of an exact date would be about the matches' share
    assert dob.u[0] < matches_share / 5
