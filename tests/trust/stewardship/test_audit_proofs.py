"""RFC 6962 proofs of the audit log: for any tree, every inclusion and consistency proof verifies
(with the trust's verifier and with the standalone script's) and a tampered one does not."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import merkle_tree
from trust.stewardship.audit_proofs import (
    EMPTY_ROOT,
    Frontier,
    consistency_path,
    inclusion_path,
    leaf_hash,
    root_from_inclusion,
    tree_root,
    verify_consistency,
)

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "verify_audit_proof.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_audit_proof", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STANDALONE = _script()


def _leaves(n: int, seed: int) -> list[bytes]:
    return [leaf_hash(f"{seed}:{i}".encode()) for i in range(n)]


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def test_known_answers() -> None:
    # RFC 6962 conventions: the empty tree is SHA-256(""); one leaf is its own root
    assert tree_root([]) == EMPTY_ROOT == STANDALONE.merkle_root([])
    leaf = leaf_hash(b"")
    assert leaf.hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert tree_root([leaf]) == leaf


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 130), seed=st.integers(0, 2**16), pick=st.integers(0, 2**16))
def test_every_inclusion_proof_verifies_and_a_tampered_one_does_not(
    n: int, seed: int, pick: int
) -> None:
    leaves = _leaves(n, seed)
    root = tree_root(leaves)
    assert root == merkle_tree(leaves)[0] == STANDALONE.merkle_root(leaves)
    index = pick % n
    path = inclusion_path(leaves, index)
    assert root_from_inclusion(leaves[index], index, n, path) == root
    assert STANDALONE.root_from_inclusion(leaves[index], index, n, path) == root
    if n > 1:
        assert root_from_inclusion(leaves[index], (index + 1) % n, n, path) != root
        assert root_from_inclusion(_flip(leaves[index]), index, n, path) != root
        bad = list(path)
        bad[pick % len(bad)] = _flip(bad[pick % len(bad)])
        assert root_from_inclusion(leaves[index], index, n, bad) != root
        assert STANDALONE.root_from_inclusion(leaves[index], index, n, bad) != root
        assert root_from_inclusion(leaves[index], index, n, path[:-1]) != root
    assert root_from_inclusion(leaves[index], index, n, [*path, root]) is None


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 130), seed=st.integers(0, 2**16), pick=st.integers(0, 2**16))
def test_every_consistency_proof_verifies_and_a_tampered_one_does_not(
    n: int, seed: int, pick: int
) -> None:
    leaves = _leaves(n, seed)
    m = pick % (n + 1)
    old, new = tree_root(leaves[:m]), tree_root(leaves)
    proof = consistency_path(leaves, m)
    for check in (verify_consistency, STANDALONE.consistent):
        assert check(m, n, old, new, proof)
        if 0 < m < n:
            assert not check(m, n, _flip(old), new, proof)
            assert not check(m, n, old, _flip(new), proof)
            bad = list(proof)
            bad[pick % len(bad)] = _flip(bad[pick % len(bad)])
            assert not check(m, n, old, new, bad)
            assert not check(m, n, old, new, proof[:-1])
            # a different first tree (one leaf changed) is not a prefix of this one
            changed = list(leaves)
            changed[pick % m] = _flip(changed[pick % m])
            assert not check(m, n, tree_root(changed[:m]), new, proof)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_the_frontier_grows_the_same_root_batch_by_batch(sizes: list[int], seed: int) -> None:
    leaves = _leaves(sum(sizes), seed)
    frontier, done = Frontier(), 0
    for size in sizes:
        frontier.extend(leaves[done : done + size])
        done += size
        assert frontier.root() == tree_root(leaves[:done])
        # what a checkpoint stores is enough to carry on
        frontier = Frontier(frontier.size, list(frontier.nodes))


def test_malformed_requests_are_refused() -> None:
    leaves = _leaves(5, 1)
    with pytest.raises(ValueError):
        inclusion_path(leaves, 5)
    with pytest.raises(ValueError):
        consistency_path(leaves, 6)
    with pytest.raises(ValueError):
        Frontier(3, [os.urandom(32)])
    assert root_from_inclusion(leaves[0], 5, 5, []) is None
    assert not verify_consistency(6, 5, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(3, 5, EMPTY_ROOT, EMPTY_ROOT, [])
