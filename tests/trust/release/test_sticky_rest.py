"""Most-frequent dimensions (countries) across releases: a category once published stays, and
a code leaving ``Rest`` cannot reveal a small change of what ``Rest`` held
(``disclosure/differencing.md``, sticky categories). The check here is the differencing
attacker's, aware of what ``Rest`` held in each release: for every pair of releases it restates
each exact ``Rest`` value of the earlier one as a sum of the later one's values (today's
``Rest`` plus the codes that left it) and reports any such sum known exactly that moved by
1 .. k-1."""

from __future__ import annotations

import itertools
import random

import pytest

from schemas.release import Release
from tests.trust.release.attacker import Attacker
from tests.trust.release.test_noise_stage import opened, stage, subscribe
from tests.trust.store.builders import accepted, retracted
from trust.release.disclosure import differencing
from trust.release.publish import EmitResult
from trust.release.streams import VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION as SPEC
from trust.store.eventstore import EventStore, Position

K = 10
DIM = "country_of_exploitation"
FIXED = {"Multiple", "Rest", "Unknown"}


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


class Cases:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.n = 0

    def add(self, country: str, n: int, year: int = 2023) -> list[str]:
        ids = [f"c{self.n + i}" for i in range(n)]
        self.store.append_batch(
            [
                ([accepted(case_id=c, year=year, country=country)], Position("t", 0, self.n + i))
                for i, c in enumerate(ids)
            ],
            "ingest",
        )
        self.n += n
        return ids

    def retract(self, case: str) -> None:
        self.store.append([retracted("src-a", case)], None, "ingest")


def categories(release: Release) -> set[str]:
    return {
        c for a in release.aggregates for d, c in zip(a.dimensions, a.key, strict=True) if d == DIM
    }


def rest_leaks(releases: list[Release], k: int = K) -> list[str]:
    """Every exact Rest value of a release whose sum over what Rest held then is known exactly
    in a later release and differs from it by 1 .. k-1."""
    found = []
    for early, late in itertools.combinations(releases, 2):
        held = categories(early)
        later = {(a.dimensions, a.key): a.value for a in late.aggregates if a.exact}
        entrants = sorted(categories(late) - held - FIXED)
        for a in early.aggregates:
            if not (a.exact and a.value is not None and "Rest" in a.key):
                continue
            at = a.dimensions.index(DIM)
            parts = [(*a.key[:at], c, *a.key[at + 1 :]) for c in ("Rest", *entrants)]
            values = [later.get((a.dimensions, p)) for p in parts]
            if all(v is not None for v in values):
                change = sum(v for v in values if v is not None) - a.value
                if 0 < abs(change) < k:
                    found.append(f"{a.key}: {a.value} -> {a.value + change}")
    return found


def releases(made: list[list[EmitResult]]) -> list[Release]:
    return [opened(m.raw_bytes) for check in made for m in check]


def test_a_country_published_on_its_own_stays_when_it_becomes_small(store: EventStore) -> None:
    cases = Cases(store)
    cases.add("NL", 40)
    de = cases.add("DE", 10)
    cases.add("FR", 3)
    cases.add("BE", 2)
    subscribe(store, SPEC.name)
    s = stage(store, [SPEC])
    [first] = s.release_once()
    assert {"DE", "NL", "Rest"} <= categories(opened(first.raw_bytes))
    cases.retract(de[0])  # DE: 9, below k: no longer among the most frequent
    [second] = s.release_once()
    late = opened(second.raw_bytes)
    by = {(a.dimensions, a.key): a.value for a in late.aggregates}
    assert "DE" in categories(late)  # still a category of its own, hidden while small
    assert by[((DIM,), ("DE",))] is None
    # Rest did not take DE's 9 persons in (it would have changed by 9: DE's count)
    rest = [by[((DIM,), ("Rest",))], by[(("year", DIM), ("2023", "Rest"))]]
    assert all(v is None or v == 5 for v in rest)
    assert rest_leaks([opened(first.raw_bytes), late]) == []


def entry(store: EventStore) -> list[Release]:
    """FR (9, in Rest with BE, AT and PL: 21) gets three more persons and leaves Rest, while one
    BE case is retracted: Rest falls by 10 (no change below k on its own), and what Rest held
    (now Rest plus FR) grew by 2; ten more NL persons keep the total and the year published."""
    cases = Cases(store)
    cases.add("NL", 40)
    cases.add("DE", 12)
    cases.add("FR", 9)
    be = cases.add("BE", 5)
    cases.add("AT", 4)
    cases.add("PL", 3)
    subscribe(store, SPEC.name)
    s = stage(store, [SPEC])
    made = [s.release_once()]
    cases.add("FR", 3)
    cases.retract(be[0])
    cases.add("NL", 10)  # the total and the year move by 12: published
    made.append(s.release_once())
    return releases(made)


def test_a_code_leaving_rest_does_not_reveal_a_small_change_of_what_rest_held(
    store: EventStore,
) -> None:
    first, second = entry(store)
    assert "FR" not in categories(first) and "FR" in categories(second)
    assert {a.value for a in first.aggregates if a.key == ("Rest",)} == {21}
    assert rest_leaks([first, second]) == []
    attacker = Attacker(K)  # nor does the plain attacker find anything
    for r in (first, second):
        attacker.observe([r])
    assert [str(f) for f in attacker.findings] == []


def test_without_restating_rest_the_attacker_finds_the_change(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is not blind: with Rest's earlier values compared as they were, FR's and
    Rest's exact values give the old Rest's change of 2."""
    monkeypatch.setattr(differencing, "rebased_rest", lambda earlier, *args: earlier)
    assert sorted(rest_leaks(entry(store))) == [
        "('2023', 'Rest'): 21 -> 23",
        "('Rest',): 21 -> 23",
    ]


def test_a_stream_of_releases_with_codes_entering_leaks_no_small_change(
    store: EventStore,
) -> None:
    """Sixty releases of persons added and retracted across nine countries (several near k):
    codes leave Rest as they grow, none returns; neither the attacker aware of Rest nor the
    plain one finds anything."""
    rng = random.Random(5)
    weights = {"NL": 8, "DE": 5, "FR": 3, "BE": 3, "PL": 2, "RO": 2, "AT": 1, "IT": 1, "ES": 1}
    cases = Cases(store)
    alive: list[str] = []
    for code, n in (("NL", 20), ("DE", 11), ("FR", 8), ("BE", 7), ("PL", 4), ("RO", 3)):
        alive += cases.add(code, n, year=rng.choice((2022, 2023)))
    subscribe(store, SPEC.name)
    s = stage(store, [SPEC])
    made = [s.release_once()]
    while sum(len(m) for m in made) < 60:
        if rng.random() < 0.7 or len(alive) < 30:
            code = rng.choices(list(weights), list(weights.values()))[0]
            alive += cases.add(code, rng.randint(1, 3), year=rng.choice((2022, 2023)))
        else:
            cases.retract(alive.pop(rng.randrange(len(alive))))
        made.append(s.release_once())
    got = releases(made)
    separate = [categories(r) - FIXED for r in got]
    assert len(separate[-1]) > len(separate[0])  # codes left Rest on the way
    assert all(a <= b for a, b in itertools.pairwise(separate))  # and none came back
    assert rest_leaks(got) == []
    attacker = Attacker(K)
    for r in got:
        attacker.observe([r])
    assert [str(f) for f in attacker.findings] == []
