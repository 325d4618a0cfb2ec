"""A rate stream through the release stage: refused without population denominators, released
as rates from the protected counts with them, and remembered as counts by the differencing
rule (a rate and its public denominator publish the count)."""

from __future__ import annotations

import dataclasses

import pytest

from trust.release.history import PublishedHistory
from trust.release.population import Population
from trust.release.publish import ReleaseSigner
from trust.release.rates import implied_counts
from trust.release.stage import ReleaseStage
from trust.release.streams import VICTIMS_BY_YEAR_SEX, Rate, StreamSpec
from trust.store.eventstore import EventStore

from .test_noise_stage import DAY0, KEY, add_persons, opened, policy, recorded, subscribe
from .test_rates import population

RATE = dataclasses.replace(
    VICTIMS_BY_YEAR_SEX,
    name="rate_by_year_sex",
    unit="detected victims per 100,000 population",
    rate=Rate(per=100_000, population=("year", "sex")),
)


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def _stage(
    store: EventStore, specs: list[StreamSpec], population: Population | None = None
) -> ReleaseStage:
    return ReleaseStage(
        store=store,
        signer=ReleaseSigner(KEY),
        policy=policy(),
        streams={s.name: s for s in specs},
        clock=lambda: DAY0,
        population=population,
    )


def test_a_rate_stream_without_denominators_is_skipped_with_a_reason(store: EventStore) -> None:
    add_persons(store, 40)
    subscribe(store, RATE.name)
    stage = _stage(store, [RATE])
    assert stage.release_once() == []
    assert [s.code for s in stage.skipped] == ["no_population"]
    assert recorded(store) == []


def test_rates_come_from_the_protected_counts_and_the_history_keeps_the_counts(
    store: EventStore,
) -> None:
    add_persons(store, 40)
    subscribe(store, RATE.name)
    given = population()
    (made,) = _stage(store, [RATE], population=given).release_once()
    release = opened(made.raw_bytes)
    assert release.metadata["rate_per"] == "100000"
    counts = implied_counts(release)
    published = [a for a in release.aggregates if a.value is not None]
    assert published, "some rate is published"
    for a in published:
        assert isinstance(a.value, float)
        assert counts[(a.dimensions, a.key)] >= 10  # never a rate of a count below k
    history = PublishedHistory()
    history.update(store)
    remembered = history.of("ministry")
    for a in published:
        if a.exact:
            assert remembered[(a.dimensions, a.key)] == {counts[(a.dimensions, a.key)]}
