"""The release stage carries what the previous release of a stream hid into the next one."""

from __future__ import annotations

import pytest

from tests.trust.release.test_noise_stage import add_persons, opened, stage, subscribe
from trust.release.history import PublishedHistory
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
    add_persons(store, 3, offset=100, year=2022)
    subscribe(store, spec.name)
    s = stage(store, [spec])
    [first] = s.release_once()
    hidden = frozenset(
        (a.dimensions, a.key) for a in opened(first.raw_bytes).aggregates if a.value is None
    )
    assert YEAR_2022 in hidden
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
