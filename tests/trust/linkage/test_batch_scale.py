"""Batch linkage's large-scale paths give what the plain paths give: string metrics once per
distinct pair of values and in batches of pairs, the blocking join by block sizes, and the pairs
clustering is given (only those that can matter)."""

from __future__ import annotations

import itertools
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trust.linkage.comparison as comparison
from trust.linkage.batch import clustering_pairs, link_batch, read_batch_csv
from trust.linkage.blocking import BlockingKey, KeyedHasher, candidate_pairs
from trust.linkage.cluster import ScoredPair, cluster
from trust.linkage.comparison import compare_pairs
from trust.linkage.linker import _shares_codes, train
from trust.linkage.record import RecordTable, prepare
from trust.linkage.settings import LinkageSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the generator is a benchmark's
from benchmarks.linkage_batch_scale import generate, truth_pairs, widened_pool

KEY = b"k" * 32


@pytest.fixture(scope="module")
def records_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale")
    generate(1500, 3, out)
    return out


def test_generator_is_deterministic_and_has_a_truth(records_csv: Path, tmp_path: Path) -> None:
    generate(1500, 3, tmp_path)
    assert (tmp_path / "records.csv").read_bytes() == (records_csv / "records.csv").read_bytes()
    truth, person = truth_pairs(records_csv / "truth.csv")
    assert len(person) == 1500
    assert 300 < len(truth) < 3000  # one to five records a person
    rows = (records_csv / "records.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "id,given_name,surname,date_of_birth,sex,nationality,document_number"
    assert len(rows) == 1501
    assert any(",," in r for r in rows)  # missing values
    assert widened_pool(["Kowalski", "Nowak"])[:2] == ["Kowalski", "Nowak"]


def _all_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.triu_indices(n, 1)
    return a.astype(np.intp), b.astype(np.intp)


def test_compare_by_distinct_values_in_batches_equals_pair_by_pair(
    records_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = read_batch_csv(records_csv / "records.csv")
    table = RecordTable.of([prepare(r) for r in batch.records[:400]])
    left, right = _all_pairs(len(table))
    settings_ = LinkageSettings()
    monkeypatch.setattr(comparison, "DISTINCT_FROM", 10**12)
    monkeypatch.setattr(comparison, "CHUNK_PAIRS", 10**12)
    plain = compare_pairs(settings_.comparisons, table, left, right)
    monkeypatch.setattr(comparison, "DISTINCT_FROM", 1)
    monkeypatch.setattr(comparison, "CHUNK_PAIRS", 9_973)
    fast = compare_pairs(settings_.comparisons, table, left, right)
    assert np.array_equal(plain.levels, fast.levels)
    assert np.array_equal(plain.swapped, fast.swapped)
    assert plain.swapped.any()
    for c, name in enumerate(plain.names):  # the pairs reach every level worth testing
        if name in ("given_name", "surname", "date_of_birth", "document_number"):
            assert len(np.unique(plain.levels[:, c])) >= 4, name


def _reference(
    keys: list[list[BlockingKey]], groups: list[int] | None, max_block: int, cap: int | None
) -> set[tuple[int, int]]:
    """The pairs sharing a usable key, by brute force."""
    members: dict[str, set[int]] = defaultdict(set)
    parent: dict[str, str] = {}
    for i, ks in enumerate(keys):
        for k in ks:
            if cap is None and k.refines:
                continue
            members[k.digest].add(i)
            parent[k.digest] = k.refines
    out = set()
    for digest, block in members.items():
        size = len(block)
        if cap is None:
            usable = size <= max_block
        elif parent[digest]:
            usable = len(members.get(parent[digest], ())) > cap and size <= cap
        else:
            usable = size <= cap
        if not usable:
            continue
        for a, b in itertools.combinations(sorted(block), 2):
            if groups is None or groups[a] != groups[b]:
                out.add((a, b))
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), max_size=4),
        min_size=0,
        max_size=40,
    ),
    st.integers(2, 8),
    st.booleans(),
    st.booleans(),
)
def test_candidate_pairs_equal_brute_force(
    spec: list[list[tuple[int, int]]], limit: int, capped: bool, across: bool
) -> None:
    # key d<k> and its refinements d<k>.<r> (r > 0): the refined keys of one key share a parent
    keys = [
        sorted(
            {
                BlockingKey("rule", f"d{k}")
                if r == 0
                else BlockingKey("rule+f", f"d{k}.{r}", f"d{k}")
                for k, r in ks
            }
            | {BlockingKey("rule", f"d{k}") for k, r in ks if r}
        )
        for ks in spec
    ]
    groups = [i % 2 for i in range(len(keys))] if across else None
    found = candidate_pairs(
        keys,
        groups=groups,
        within_groups=not across,
        max_block_size=limit,
        block_cap=limit if capped else None,
    )
    assert np.all(found.left < found.right)
    got = list(zip(found.left.tolist(), found.right.tolist(), strict=True))
    assert got == sorted(set(got))
    assert set(got) == _reference(keys, groups, limit, limit if capped else None)


def test_clustering_only_the_pairs_that_matter_changes_nothing(records_csv: Path) -> None:
    batch = read_batch_csv(records_csv / "records.csv")
    settings_ = LinkageSettings()
    prepared = [prepare(r) for r in batch.records]
    trained = train(settings_, prepared, KeyedHasher(KEY), groups=[0] * len(prepared))
    scored = trained.linker.score_vectors(trained.table, trained.vectors)
    ids = trained.table.ids
    p = np.round(scored.probability, 12)
    left, right = scored.vectors.left, scored.vectors.right
    keep = clustering_pairs(len(ids), left, right, p, settings_.lower, settings_.upper)
    assert 0 < keep.sum() < len(keep) // 2  # most pairs are left out

    def run(mask: np.ndarray) -> object:
        pairs = [
            ScoredPair.of(ids[a], ids[b], q)
            for a, b, q in zip(left[mask], right[mask], p[mask], strict=True)
        ]
        return cluster(
            ids,
            pairs,
            upper=settings_.upper,
            lower=settings_.lower,
            conflict=settings_.conflict,
        )

    everything = run(np.ones(len(keep), dtype=np.bool_))
    assert run(keep) == everything
    result = link_batch([batch], dedupe=True, key=KEY)
    assert result.clustering == everything


def test_clustering_pairs_keep_reviews_and_pairs_within_linked_records() -> None:
    left = np.array([0, 1, 0, 2, 0, 3], dtype=np.intp)
    right = np.array([1, 2, 2, 3, 3, 4], dtype=np.intp)
    p = np.array([0.95, 0.97, 0.1, 0.1, 0.6, 0.4])
    keep = clustering_pairs(5, left, right, p, 0.5, 0.9)
    # links; 0-2 joined through 1; 2-3 in no chain of links; review 0-3; 3-4 neither
    assert keep.tolist() == [True, True, True, False, True, False]
    # no links: only the pairs at or above the lower threshold
    assert clustering_pairs(5, left, right, p, 0.5, 0.99).tolist() == [
        True, True, False, False, True, False,
    ]  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.frozensets(st.sampled_from(["a", "b", "c", "d"]), max_size=3), min_size=1),
    st.data(),
)
def test_shared_codes_equal_set_intersection(
    keys: list[frozenset[str]], data: st.DataObject
) -> None:
    index = st.integers(0, len(keys) - 1)
    pairs = data.draw(st.lists(st.tuples(index, index), max_size=30))
    left = np.array([a for a, _ in pairs], dtype=np.intp)
    right = np.array([b for _, b in pairs], dtype=np.intp)
    expected = [float(bool(keys[a] & keys[b])) for a, b in pairs]
    codes: dict[str, int] = {}
    columns = [codes.setdefault(k, len(codes)) for ks in keys for k in sorted(ks)]
    pointers = np.concatenate(([0], np.cumsum([len(ks) for ks in keys]))).astype(np.int64)
    got = _shares_codes(pointers, np.asarray(columns, dtype=np.int64), left, right)
    assert got.tolist() == expected
