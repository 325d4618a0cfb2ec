"""Blocking keys are keyed hashes; the batch join finds each sharing pair once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.linkage.blocking import (
    BlockingKey,
    KeyedHasher,
    blocking_keys,
    candidate_pairs,
    default_rules,
)
from trust.linkage.errors import LinkageError
from trust.linkage.record import LinkRecord, prepare

HASHER = KeyedHasher(b"a secret key of 32 bytes........")
PERSON = LinkRecord(
    "r1", "Ioana", "Dumitru", "1996-04-19", "F", "RO", "RO1234567", "12 Strada Mare", "010101"
)


def test_keys_are_digests_never_values() -> None:
    keys = blocking_keys(prepare(PERSON), default_rules(), HASHER)
    assert len(keys) >= 6
    text = repr(keys).lower()
    for clear in ("ioana", "dumitru", "1996", "ro1234567", "d536", "i500", "010101", "mare"):
        assert clear not in text
    assert all(len(k.digest) == 32 and int(k.digest, 16) >= 0 for k in keys)
    assert "a secret key" not in repr(HASHER)


def test_another_key_gives_other_digests_and_rules_do_not_collide() -> None:
    other = KeyedHasher(b"another secret key of 32 bytes..")
    mine = {k.digest for k in blocking_keys(prepare(PERSON), default_rules(), HASHER)}
    theirs = {k.digest for k in blocking_keys(prepare(PERSON), default_rules(), other)}
    assert not mine & theirs
    assert HASHER.digest("a", ("b", "c")) != HASHER.digest("a", ("bc",))
    assert HASHER.digest("a", ("b",)) != HASHER.digest("b", ("b",))


def test_a_short_key_is_refused() -> None:
    with pytest.raises(LinkageError):
        KeyedHasher(b"short")


def test_variants_share_a_key() -> None:
    a = prepare(LinkRecord("a", "Oleksandr", "Kovalenko", "1980-01-02"))
    b = prepare(LinkRecord("b", "Aleksandr", "Kowalenko", "1980-01-02"))
    c = prepare(LinkRecord("c", "Kovalenko", "Oleksandr", ""))  # swapped, no date
    ka, kb, kc = (set(blocking_keys(r, default_rules(), HASHER)) for r in (a, b, c))
    assert ka & kb and ka & kc


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from("abcdef"), max_size=3), min_size=0, max_size=25),
    st.lists(st.integers(0, 2), min_size=25, max_size=25),
    st.booleans(),
)
def test_candidate_pairs_are_exactly_the_sharing_pairs(
    keys: list[list[str]], groups: list[int], within: bool
) -> None:
    groups = groups[: len(keys)]
    blocking = [[BlockingKey("r", k) for k in ks] for ks in keys]
    found = candidate_pairs(blocking, groups=groups, within_groups=within)
    got = list(zip(found.left.tolist(), found.right.tolist(), strict=True))
    assert all(a < b for a, b in got) and len(set(got)) == len(got)
    expected = {
        (a, b)
        for a in range(len(keys))
        for b in range(a + 1, len(keys))
        if set(keys[a]) & set(keys[b]) and (within or groups[a] != groups[b])
    }
    assert set(got) == expected


def test_an_oversized_block_is_left_out_and_counted() -> None:
    blocking = [[BlockingKey("r", "big")] for _ in range(5)] + [[BlockingKey("r", "x")]] * 2
    found = candidate_pairs(blocking, max_block_size=4)
    assert found.oversized_blocks == 1
    assert list(zip(found.left, found.right, strict=True)) == [(np.intp(5), np.intp(6))]
