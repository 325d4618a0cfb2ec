"""The release stage carries what the previous release of a stream hid into the next one, and
gives an earlier release again when the exact counts are that release's (the replay rule,
``disclosure/differencing.md``)."""

from __future__ import annotations

import pytest

from schemas.release import Aggregate, Release, sign_release
from tests.trust.release.test_noise_stage import (
    KEY,
    SECRET,
    add_persons,
    opened,
    recorded,
    stage,
    subscribe,
    values,
)
from tests.trust.store.builders import retracted
from trust.release.history import COUNTS_DIGEST, GUARDED, PublishedHistory, guarded_bitmap
from trust.release.streams import VICTIMS_BY_YEAR_SEX
from trust.store.eventstore import EventStore

YEAR_2022 = (("year",), ("2022",))


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def _suppressed(store: EventStore, stream: str) -> frozenset[object] | None:
    history = PublishedHistory()
    history.update(store)
    assert history.suppressed("ministry", "no_such_stream") is None
    return history.suppressed("ministry", stream)


def test_a_margin_hidden_while_small_stays_hidden_until_2k(store: EventStore) -> None:
    spec = VICTIMS_BY_YEAR_SEX
    add_persons(store, 37)
    add_persons(store, 12, offset=100, year=2022)
    subscribe(store, spec.name)
    s = stage(store, [spec])
    [shown] = s.release_once()
    assert values(opened(shown.raw_bytes))[YEAR_2022] == 12
    store.append(
        [retracted("src-a", f"c{100 + i}") for i in range(9)], None, "ingest"
    )  # 2022: 12 -> 3, below k
    [first] = s.release_once()
    hidden = frozenset(
        (a.dimensions, a.key) for a in opened(first.raw_bytes).aggregates if a.value is None
    )
    assert YEAR_2022 in hidden  # the year stays, its value hidden
    # the history the stage reads holds what the latest release of the stream hid
    assert _suppressed(store, spec.name) == hidden
    add_persons(store, 10, offset=200, year=2022)  # 2022: 3 -> 13, at least k, below 2k
    [second] = s.release_once()
    by = {(a.dimensions, a.key): a.value for a in opened(second.raw_bytes).aggregates}
    assert by[YEAR_2022] is None
    assert _suppressed(store, spec.name) == frozenset(key for key, v in by.items() if v is None)
    add_persons(store, 10, offset=300, year=2022)  # 23: no longer small
    [third] = s.release_once()
    by = {(a.dimensions, a.key): a.value for a in opened(third.raw_bytes).aggregates}
    assert by[YEAR_2022] == 23


# -- the replay rule: the same exact counts as an earlier release give that release again ------


def _aggregates(raw: bytes) -> tuple[object, ...]:
    return tuple((a.dimensions, a.key, a.value, a.exact) for a in opened(raw).aggregates)


def _digests(store: EventStore) -> list[object]:
    return [e.metadata.get(COUNTS_DIGEST) for e in recorded(store)]


def test_the_same_counts_again_give_the_earlier_release_again(store: EventStore) -> None:
    spec = VICTIMS_BY_YEAR_SEX
    add_persons(store, 37)
    add_persons(store, 15, offset=100, year=2022)
    subscribe(store, spec.name)
    s = stage(store, [spec])
    [first] = s.release_once()
    assert values(opened(first.raw_bytes))[YEAR_2022] == 15
    store.append([retracted("src-a", "c100")], None, "ingest")  # 2022: 15 -> 14
    [second] = s.release_once()
    # 14 is within k of the 15 the consumer holds: not published (the differencing rule)
    assert values(opened(second.raw_bytes))[YEAR_2022] is None
    add_persons(store, 1, offset=500, year=2022)  # another person, the same cell: 15 again
    [third] = s.release_once()
    # every value and every suppression exactly as in the first release (its pattern, not one
    # carried from the second), and the digests of the exact counts say why
    assert _aggregates(third.raw_bytes) == _aggregates(first.raw_bytes)
    assert third.digest == first.digest != second.digest
    one, two, three = _digests(store)
    assert isinstance(one, str) and one == three != two
    history = PublishedHistory()
    history.update(store)
    hidden = frozenset(
        (a.dimensions, a.key) for a in opened(first.raw_bytes).aggregates if a.value is None
    )
    assert history.made_from(store, "ministry", spec.name, one) == hidden
    assert history.made_from(store, "ministry", spec.name, "0" * 64) is None
    assert SECRET.hex() not in repr(recorded(store)[0].metadata)
    # the stage's notes stay in the trust: the signed release carries neither
    assert not {COUNTS_DIGEST, GUARDED} & set(opened(third.raw_bytes).metadata)


def test_a_value_hidden_while_below_k_is_not_given_again_below_2k(store: EventStore) -> None:
    spec = VICTIMS_BY_YEAR_SEX
    add_persons(store, 37)
    add_persons(store, 10, offset=100, year=2022)
    subscribe(store, spec.name)
    s = stage(store, [spec])
    [first] = s.release_once()
    assert values(opened(first.raw_bytes))[YEAR_2022] == 10
    store.append([retracted("src-a", "c100")], None, "ingest")  # 2022: 10 -> 9, below k
    [second] = s.release_once()
    assert values(opened(second.raw_bytes))[YEAR_2022] is None
    add_persons(store, 1, offset=500, year=2022)  # 10 again: the counts of the first release
    [third] = s.release_once()
    one, _, three = _digests(store)
    assert one == three  # the replay was possible, and refused:
    # the first release's 10 would show a value hidden while below k back at less than 2k
    assert values(opened(third.raw_bytes))[YEAR_2022] is None
    assert _aggregates(third.raw_bytes) != _aggregates(first.raw_bytes)


def test_without_the_record_key_secret_there_is_no_replay(store: EventStore) -> None:
    spec = VICTIMS_BY_YEAR_SEX
    add_persons(store, 37)
    add_persons(store, 15, offset=100, year=2022)
    subscribe(store, spec.name)
    s = stage(store, [spec], secret=None)
    s.release_once()
    store.append([retracted("src-a", "c100")], None, "ingest")
    s.release_once()
    add_persons(store, 1, offset=500, year=2022)
    [third] = s.release_once()
    assert _digests(store) == [None, None, None]  # no digest of exact counts without a key
    assert values(opened(third.raw_bytes))[YEAR_2022] is None  # carried, as before the rule


def test_the_guarded_note_reads_back_and_a_missing_one_guards_every_hidden_value() -> None:
    """The stage's ``guarded`` note, read back by the history (which of the hidden aggregates
    the carry rule guards); a release without it, or with one that does not fit, counts every
    hidden aggregate as guarded."""
    keys = [(("year",), (str(y),)) for y in range(2010, 2021)] + [((), ())]
    guarded = {keys[0], keys[9], keys[11]}
    note = guarded_bitmap(keys, guarded)
    aggregates = tuple(Aggregate(d, key, None, False) for d, key in keys)
    release = Release(
        "s", "r1", 1, 0, "t", "u", 2010, 2020, ("year",), aggregates, 10, "m", 1, ("src-a",),
    )  # fmt: skip
    history = PublishedHistory()
    history._add("ministry", sign_release(release, KEY), {GUARDED: note, COUNTS_DIGEST: "d1"})
    assert history.guarded("ministry", "s") == frozenset(guarded)
    history._add("ministry", sign_release(release, KEY), {})  # recorded before the notes
    assert history.guarded("ministry", "s") == frozenset(keys)
    history._add("ministry", sign_release(release, KEY), {GUARDED: "AA=="})  # does not fit
    assert history.guarded("ministry", "s") == frozenset(keys)
