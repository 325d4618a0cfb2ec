"""Blocking keys are keyed hashes; the batch join finds each sharing pair once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.linkage.blocking import (
    BlockingKey,
    KeyedHasher,
    Lookup,
    blocking_keys,
    candidate_pairs,
    default_refinements,
    default_rules,
    rank_candidates,
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


def test_records_without_a_year_of_birth_meet_by_name_key_and_nationality() -> None:
    # no date of birth (an age, or nothing) and a given name spelt another way: only the name
    # part's romanisation key with the nationality brings them together
    a = prepare(LinkRecord("a", "Mohammed", "", "", "M", "SY"))
    b = prepare(LinkRecord("b", "Muhammad", "", "", "M", "SY"))
    c = prepare(LinkRecord("c", "Muhammad", "", "", "M", "IQ"))
    ka, kb, kc = (set(blocking_keys(r, default_rules(), HASHER)) for r in (a, b, c))
    assert {k.rule for k in ka & kb} == {"name_part_nationality"}
    assert not ka & kc
    # a surname alike in both records, given names too far apart for any other rule
    d = prepare(LinkRecord("d", "Olga", "Shevchenko", "", "F", "UA"))
    e = prepare(LinkRecord("e", "Volha", "Shevchenko", "", "F", "UA"))
    kd, ke = (set(blocking_keys(r, default_rules(), HASHER)) for r in (d, e))
    assert {k.rule for k in kd & ke} == {"name_part_nationality"}


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


_NAMES = st.sampled_from(["Ioana", "Ana", "Mei", "Oleksandr", "Aleksandr", ""])
_DATES = st.sampled_from(["1996-04-19", "1996-04-20", "1996", "1980-01-02", ""])


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(_NAMES, _NAMES, _DATES, st.sampled_from(["F", "M", ""]), st.sampled_from(["RO", ""])),
    st.tuples(_NAMES, _NAMES, _DATES, st.sampled_from(["F", "M", ""]), st.sampled_from(["RO", ""])),
    st.sampled_from(["", "2023", "2024"]),
    st.sampled_from(["", "2023", "2024"]),
)
def test_refined_keys_narrow_their_key(
    a: tuple[str, ...], b: tuple[str, ...], year_a: str, year_b: str
) -> None:
    """Each refined key names a key of the same record; two records sharing a refined key share
    the key it refines (a refinement never finds a pair the key itself would not)."""
    ra, rb = (
        prepare(LinkRecord(i, g, s, d, x, n, event_year=y))
        for i, (g, s, d, x, n), y in (("a", a, year_a), ("b", b, year_b))
    )
    ka, kb = (blocking_keys(r, default_rules(), HASHER, default_refinements()) for r in (ra, rb))
    for keys in (ka, kb):
        own = {k.digest for k in keys if not k.refines}
        assert {k.refines for k in keys if k.refines} <= own
        assert set(Lookup.of(keys).digests()) == {k.digest for k in keys}
    shared = {k.digest for k in ka} & {k.digest for k in kb}
    refines = {k.digest: k.refines for k in (*ka, *kb) if k.refines}
    assert all(refines[d] in shared for d in shared if d in refines)
    # without refinements, exactly the rules' own keys
    assert {k for k in ka if not k.refines} == set(blocking_keys(ra, default_rules(), HASHER))


def test_refined_keys_are_digests_and_reveal_nothing() -> None:
    keys = blocking_keys(prepare(PERSON), default_rules(), HASHER, default_refinements())
    refined = [k for k in keys if k.refines]
    assert refined and all(len(k.digest) == 32 for k in refined)
    assert "ioana" not in repr(keys).lower() and "19960419" not in repr(keys)
    # a rule that holds the date of birth is not refined by it again
    assert not any(k.rule == "birth_date_sex+birth_date" for k in keys)


def test_ranking_is_bounded_deterministic_and_puts_shared_identifiers_first() -> None:
    hits = {("s", "c", str(i)): i % 4 + 1 for i in range(50)}
    top = rank_candidates(hits, 10)
    assert len(top) == 10 and all(hits[k] == 4 for k in top)
    assert top == sorted(top) == rank_candidates(dict(reversed(hits.items())), 10)
    low = ("s", "c", "0")  # found under one key only, but it shares an identifier
    assert rank_candidates(hits, 3, first={low})[0] == low


def test_the_batch_join_refines_blocks_over_the_cap() -> None:
    """With ``block_cap``: a key over the cap is joined through its refinements (those within
    the cap); a key within it as before; without it, refined keys are ignored."""
    big = [BlockingKey("r", "big")] * 6
    keys = [
        [big[i], BlockingKey("r+f", f"big/{i % 2}", "big"), BlockingKey("r+g", "big/all", "big")]
        for i in range(6)
    ] + [[BlockingKey("r", "small"), BlockingKey("r+f", "small/x", "small")] for _ in range(2)]
    capped = candidate_pairs(keys, block_cap=4)
    pairs = set(zip(capped.left.tolist(), capped.right.tolist(), strict=True))
    # the big block (6 > 4) gives only the pairs of its refinements within the cap (3 each)
    assert pairs == {(0, 2), (0, 4), (2, 4), (1, 3), (1, 5), (3, 5), (6, 7)}
    assert capped.oversized_blocks == 2  # "big" and its refinement "big/all" (6 records)
    plain = candidate_pairs(keys)
    assert len(plain.left) == 15 + 1  # the big block whole, the small one; no refined keys
    assert candidate_pairs(keys, block_cap=10).left.size == 16
