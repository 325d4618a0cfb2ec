"""Batch linkage's blocking join on key codes (no digests) pairs the records the join on keyed
digests pairs, and a training session's sample of its pairs is a uniform, repeatable subset."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trust.linkage.batch as batch_module
import trust.linkage.linker as linker_module
from trust.linkage.batch import link_batch, read_batch_csv, score_in_parts
from trust.linkage.blocking import (
    BlockCodes,
    BlockingRule,
    KeyedHasher,
    Refinement,
    block_codes,
    blocking_keys,
    candidate_pairs,
    candidate_pairs_of,
    default_refinements,
    default_rules,
)
from trust.linkage.linker import _shares_codes, train
from trust.linkage.record import LinkRecord, PreparedRecord, prepare
from trust.linkage.settings import LinkageSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the generator is a benchmark's
from benchmarks.linkage_batch_scale import generate

HASHER = KeyedHasher(b"k" * 32)

records = st.builds(
    LinkRecord,
    id=st.just(""),
    given_name=st.sampled_from(["", "Anna", "Hanna", "Olga Maria", "Li", "Mohammed"]),
    surname=st.sampled_from(["", "Kowalska", "Kovalska", "Nguyen", "Al-Hassan"]),
    date_of_birth=st.sampled_from(["", "1990", "1990-03", "1990-03-08", "1991-08-03"]),
    sex=st.sampled_from(["", "F", "M"]),
    nationality=st.sampled_from(["", "UA", "PL"]),
    document_number=st.sampled_from(["", "AB1", "AB12345", "XY99999"]),
    postcode=st.sampled_from(["", "00950"]),
    address=st.sampled_from(["", "ul Dluga 5", "Main street 1"]),
    event_year=st.sampled_from(["", "2023", "2024"]),
)


def _prepared(drawn: Sequence[LinkRecord]) -> list[PreparedRecord]:
    out = []
    for i, r in enumerate(drawn):
        fields = {f: getattr(r, f) for f in r.__dataclass_fields__}
        out.append(prepare(LinkRecord(**{**fields, "id": f"r{i}"})))
    return out


def _same(
    prepared: list[PreparedRecord],
    rules: Sequence[BlockingRule],
    refinements: Sequence[Refinement],
    groups: list[int] | None,
    within: bool,
    limit: int,
    cap: int | None,
) -> None:
    keys = [blocking_keys(r, rules, HASHER, refinements) for r in prepared]
    expected = candidate_pairs(
        keys, groups=groups, within_groups=within, max_block_size=limit, block_cap=cap
    )
    got, chance = candidate_pairs_of(
        block_codes(prepared, rules, refinements),
        len(prepared),
        groups=None if groups is None else np.asarray(groups, dtype=np.intp),
        within_groups=within,
        max_block_size=limit,
        block_cap=cap,
    )
    assert chance == 1.0
    assert got.left.tolist() == expected.left.tolist()
    assert got.right.tolist() == expected.right.tolist()
    assert got.oversized_blocks == expected.oversized_blocks


@settings(max_examples=150, deadline=None)
@given(
    st.lists(records, max_size=40),
    st.integers(2, 12),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_the_join_on_codes_pairs_what_the_join_on_digests_pairs(
    drawn: list[LinkRecord], limit: int, capped: bool, refined: bool, across: bool
) -> None:
    prepared = _prepared(drawn)
    groups = [i % 3 for i in range(len(prepared))]
    _same(
        prepared,
        default_rules(),
        default_refinements() if refined else (),
        groups if across else None,
        not across,
        limit,
        limit if capped else None,
    )


@dataclass(frozen=True, slots=True)
class _Ragged:
    """A refinement whose parts differ in length: the rule's parts joined to them could meet
    another split of one sequence (``("a", "b") + ("c",)`` and ``("a",) + ("b", "c")``)."""

    name: str = "ragged"

    def applies_to(self, rule: str) -> bool:
        return True

    def parts(self, record: PreparedRecord) -> tuple[str, ...] | None:
        return ("PL",) if record.sex == "F" else ("F", "PL") if record.sex else None


@dataclass(frozen=True, slots=True)
class _Ragged2:
    """A rule whose parts differ in length too."""

    name: str = "ragged_rule"

    def parts(self, record: PreparedRecord) -> list[tuple[str, ...]]:
        if record.sex == "M":
            return [("x",)]
        return [("x", "F")] if record.nationality else []


@settings(max_examples=60, deadline=None)
@given(st.lists(records, max_size=30), st.integers(2, 6))
def test_refinements_of_several_lengths_are_coded_as_their_digests(
    drawn: list[LinkRecord], cap: int
) -> None:
    prepared = _prepared(drawn)
    _same(prepared, (_Ragged2(),), (_Ragged(),), None, True, 1000, cap)


def test_ragged_parts_that_join_alike_share_one_code() -> None:
    # a: ("x",) + ("F", "PL"); b: ("x", "F") + ("PL",): one digest, so one code
    a = prepare(LinkRecord("a", sex="M"))
    b = prepare(LinkRecord("b", sex="F", nationality="UA"))
    ka, kb = (blocking_keys(r, (_Ragged2(),), HASHER, (_Ragged(),)) for r in (a, b))
    assert {k.digest for k in ka if k.refines} == {k.digest for k in kb if k.refines}
    codes = block_codes([a, b], (_Ragged2(),), (_Ragged(),))
    refined = codes.parent >= 0
    assert codes.record[refined].tolist() == [0, 1]
    assert len(set(codes.key[refined].tolist())) == 1
    assert len(set(codes.parent[refined].tolist())) == 2  # from two different keys


def _codes(spec: list[tuple[int, int]]) -> BlockCodes:
    rec = np.array([r for r, _ in spec], dtype=np.int64)
    key = np.array([k for _, k in spec], dtype=np.int64)
    return BlockCodes(rec, key, np.full(len(spec), -1, dtype=np.int64), 4)


def test_a_sample_of_the_pairs_is_a_repeatable_uniform_subset() -> None:
    n = 3000
    rng = np.random.default_rng(5)
    codes = _codes([(i, int(k)) for i, k in enumerate(rng.integers(0, 4, n))])
    everything, chance = candidate_pairs_of(codes, n, max_block_size=n)
    assert chance == 1.0
    total = len(everything.left)  # about 4 * 750**2 / 2
    limit = total // 10
    first, chance = candidate_pairs_of(
        codes, n, max_block_size=n, sample=(limit, np.random.default_rng(1))
    )
    again, _ = candidate_pairs_of(
        codes, n, max_block_size=n, sample=(limit, np.random.default_rng(1))
    )
    assert chance == limit / total
    assert first.left.tolist() == again.left.tolist()
    assert first.right.tolist() == again.right.tolist()
    all_codes = set((everything.left * n + everything.right).tolist())
    sample_codes = (first.left * n + first.right).tolist()
    assert set(sample_codes) <= all_codes and len(set(sample_codes)) == len(sample_codes)
    assert abs(len(sample_codes) - limit) < 5 * np.sqrt(limit)
    # uniform: each block keeps about its share of the pairs
    block = codes.key[np.argsort(codes.record)]
    kept = np.bincount(block[first.left], minlength=4) / len(first.left)
    share = np.bincount(block[everything.left], minlength=4) / total
    assert np.abs(kept - share).max() < 0.01
    # a limit above the pairs keeps them all
    whole, chance = candidate_pairs_of(
        codes, n, max_block_size=n, sample=(total, np.random.default_rng(1))
    )
    assert chance == 1.0 and whole.left.tolist() == everything.left.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(records, min_size=1, max_size=25), st.data())
def test_shared_codes_are_shared_digests(drawn: list[LinkRecord], data: st.DataObject) -> None:
    prepared = _prepared(drawn)
    rules = default_rules()
    keys = [frozenset(k.digest for k in blocking_keys(r, rules, HASHER)) for r in prepared]
    index = st.integers(0, len(prepared) - 1)
    pairs = data.draw(st.lists(st.tuples(index, index), max_size=30))
    left = np.array([a for a, _ in pairs], dtype=np.intp)
    right = np.array([b for _, b in pairs], dtype=np.intp)
    codes = block_codes(prepared, rules)
    got = _shares_codes(*codes.per_record(len(prepared)), left, right)
    assert got.tolist() == [float(bool(keys[a] & keys[b])) for a, b in pairs]


def test_scoring_in_parts_gives_each_pair_its_own_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(800, 4, tmp_path)
    batch = read_batch_csv(tmp_path / "records.csv")
    settings_ = LinkageSettings(batch_block_cap=20)
    prepared = [prepare(r) for r in batch.records]
    trained = train(settings_, prepared, KeyedHasher(b"k" * 32), groups=[0] * len(prepared))
    whole = trained.linker.score_vectors(trained.table, trained.vectors).probability
    assert len(whole) > 1000 and (whole > 0.9).any()
    monkeypatch.setattr(batch_module, "SCORE_PAIRS", 997)
    parts = score_in_parts(trained.linker, trained.table, trained.vectors)
    assert parts.tolist() == whole.tolist()
    result = link_batch([batch], dedupe=True, settings=settings_, key=b"k" * 32)
    monkeypatch.setattr(batch_module, "SCORE_PAIRS", 1 << 22)
    again = link_batch([batch], dedupe=True, settings=settings_, key=b"k" * 32)
    assert again.clustering == result.clustering and again.clustering.pairs


def test_training_on_a_sample_of_the_sessions_pairs_learns_about_the_same_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(3000, 6, tmp_path)
    batch = read_batch_csv(tmp_path / "records.csv")
    prepared = [prepare(r) for r in batch.records]
    settings_ = LinkageSettings(batch_block_cap=30)
    hasher = KeyedHasher(b"k" * 32)
    whole = train(settings_, prepared, hasher)
    sizes = [s[1] for s in whole.estimation.sessions]
    monkeypatch.setattr(linker_module, "TRAINING_PAIRS", min(sizes) // 4)
    sampled = train(settings_, prepared, hasher)
    again = train(settings_, prepared, hasher)
    assert sampled.estimation == again.estimation  # the sample is drawn from the settings' seed
    for (_, all_pairs, _, _), (_, some, _, _) in zip(
        whole.estimation.sessions, sampled.estimation.sessions, strict=True
    ):
        assert some < all_pairs / 3
    # the prior counts each sampled pair for the pairs it stands for
    a, b = whole.estimation.model, sampled.estimation.model
    assert 0.7 < b.prior / a.prior < 1.4
    for ca, cb in zip(a.comparisons, b.comparisons, strict=True):
        assert np.abs(np.array(ca.m) - np.array(cb.m)).max() < 0.08, ca.name
    # the candidate pairs are the same (only the model's estimate is sampled)
    assert np.array_equal(whole.vectors.left, sampled.vectors.left)
