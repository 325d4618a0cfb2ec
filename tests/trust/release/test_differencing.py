"""Differencing safety across releases (disclosure/differencing.md), tried by an attacker.

A trust with linkage releases the streams with margins (suppression only: exact values) to one
consumer after every change — persons added one to three at a time, case records retracted,
persons merged by an operator — and the attacker (``attacker.py``) takes every release the
consumer received, one release check at a time: at each it solves one LP over the published
values of all three streams together (they share the year margins and the total) and reports any
suppressed aggregate bounded to an interval narrower than k; across checks, any aggregate known
exactly (published, or pinned) at two of them whose values differ by 1 .. k-1. Every record here
is synthetic: random strings stand in for names. Perturbed and rounded streams:
``test_differencing_noise.py``; the attacker's own tests: ``test_attacker.py``.
"""

from __future__ import annotations

import pytest

from schemas.release import Aggregate, Release
from tests.trust.release.attacker import Attacker
from tests.trust.release.scenario import STEP_KINDS, Trust, received, run
from trust.linkage import review as rv
from trust.release.streams import (
    REPEAT_VICTIMISATION,
    VICTIMS_BY_SEX_AGE_FORM,
    VICTIMS_BY_YEAR_AGE_GROUP,
    VICTIMS_BY_YEAR_FORM,
    VICTIMS_BY_YEAR_SEX,
)
from trust.store.eventstore import EventStore

K = 10
FOUR_WAY = VICTIMS_BY_SEX_AGE_FORM  # with every margin, as declared
STREAMS = {
    s.name: s for s in (VICTIMS_BY_YEAR_SEX, VICTIMS_BY_YEAR_AGE_GROUP, VICTIMS_BY_YEAR_FORM)
}


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def test_no_release_sequence_lets_the_consumer_learn_a_change_below_k(store: EventStore) -> None:
    result = run(Trust(store, STREAMS, seed=7))
    assert result.releases >= 50
    assert all(result.steps[kind] >= 5 for kind in STEP_KINDS)  # each kind, several times
    attacker = Attacker(K)
    for check in result.checks:
        attacker.observe(check)
    assert [str(f) for f in attacker.findings] == []
    report = attacker.report()
    assert report["releases"] == result.releases == len(received(store))
    assert set(report["per_stream"]) == set(STREAMS)  # the LPs covered all three together
    assert report["lp_solves"] > 1000
    releases = [r for check in result.checks for r in check]
    # the rule did suppress values that would have told a small change: without it, the
    # attacker would have found some (the same releases with every value shown)
    assert any(a.value is None and a.dimensions == () for r in releases for a in r.aggregates)


def test_the_attacker_finds_a_small_change_when_values_are_published_regardless() -> None:
    """The attacker is not blind: two releases publishing 40 then 41 are reported."""

    def release(seq: int, total: int) -> Release:
        return Release(
            "s", f"r{seq}", seq, 0, "t", "u", 2022, 2022, ("year",),
            (Aggregate(("year",), ("2022",), total, True), Aggregate((), (), total, True)),
            K, "m", 1, ("src-a",),
        )  # fmt: skip

    def attack(totals: list[int]) -> list[str]:
        attacker = Attacker(K)
        for seq, total in enumerate(totals, 1):
            attacker.observe([release(seq, total)])
        return [f.kind for f in attacker.findings]

    assert attack([40, 41]) == ["small_change", "small_change"]  # the year and the total
    assert attack([40, 50]) == []
    assert attack([40, 50, 45]) == ["small_change"] * 4  # every pair: 45 is close to both


def test_repeat_victimisation_is_published_with_margins() -> None:
    assert REPEAT_VICTIMISATION.margins


def test_undone_merges_give_earlier_releases_again_and_leak_nothing(store: EventStore) -> None:
    """Merges undone by the operator (``separate``): the counts return to those of the release
    before the merge, and so does every release (the replay rule, ``differencing.md``) — the
    pattern no longer depends on the way back. The attacker, over every pair of releases
    (the replays included), finds nothing."""
    streams = {**STREAMS, FOUR_WAY.name: FOUR_WAY}
    trust = Trust(store, streams, seed=4)
    for _ in range(60):
        trust.add()
    checks = [trust.check()]
    held = {r.stream: r.aggregates for r in checks[0]}  # the consumer's latest, per stream
    assert set(held) == set(streams)
    for _ in range(8):
        for _ in range(20):
            a, b = trust.rng.sample(trust.cases, 2)
            if rv.person_of(store, a) != rv.person_of(store, b):
                break
        rv.decide_pair(store, a, b, same=True, operator="op")
        checks.append(trust.check())
        assert checks[-1], "a merge changes the counts: a release"
        rv.decide_pair(store, a, b, same=False, operator="op")
        checks.append(trust.check())
        # every stream the merge changed is released again, exactly as before the merge (in
        # this run no value on the two persons' paths sat at k, which the guard would keep
        # hidden: test_carry_stage.py)
        assert {r.stream: r.aggregates for r in checks[-1]} == {
            r.stream: held[r.stream] for r in checks[-2]
        }
    attacker = Attacker(K)
    for check in checks:
        attacker.observe(check)
    assert [str(f) for f in attacker.findings] == []
