"""Years in the release stage's tables: a year is shown on its own once it holds k persons and
then stays in the consumer's later tables, the persons of the other years in ``Rest``, so
neither a year's first appearance nor its disappearance says that a few persons were added or
removed (``disclosure/differencing.md``, sticky years)."""

from __future__ import annotations

import pytest

from tests.trust.release.test_noise_stage import add_persons, opened, stage, subscribe, values
from tests.trust.store.builders import retracted
from trust.release.aggregate import table_from_counts
from trust.release.categories import UnknownCode
from trust.release.streams import VICTIMS_BY_YEAR_SEX
from trust.store.eventstore import EventStore

SPEC = VICTIMS_BY_YEAR_SEX
TOTAL = ((), ())


def year(y: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (("year",), (y,))


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def test_a_year_appears_with_k_persons_and_stays_when_they_leave(store: EventStore) -> None:
    add_persons(store, 40)  # 2023
    add_persons(store, 4, offset=100, year=2021)
    subscribe(store, SPEC.name)
    s = stage(store, [SPEC])
    [first] = s.release_once()
    release = opened(first.raw_bytes)
    published = values(release)
    assert year("2021") not in published  # 4 persons: no row says which year they have
    assert published[TOTAL] == 44 and published[year("Rest")] is None  # in Rest, hidden
    assert (release.period_start, release.period_end) == (2023, 2023)  # the years shown
    assert "once at least k persons" in release.metadata["year_rule"]
    assert release.labels["year"]["Rest"].startswith("Other years")

    # 2021 reaches 10 (and 2023 grows by 10, so that the total moves by k or more)
    add_persons(store, 6, offset=200, year=2021)
    add_persons(store, 10, offset=400)
    [second] = s.release_once()
    published = values(opened(second.raw_bytes))
    assert year("2021") in published and published[TOTAL] == 60  # shown on its own now
    # Rest stays once published, empty now and hidden (a zero is sensitive): 2021 is hidden
    # beside it, or Rest would be the total minus the years
    assert year("Rest") in published and published[year("Rest")] is None
    assert published[year("2021")] is None

    store.append(
        [retracted("src-a", f"c{i}") for i in (100, 101, 102, 103, 200, 201, 202, 203, 204, 205)],
        None,
        "ingest",
    )  # nobody left in 2021
    add_persons(store, 20, offset=500)
    [third] = s.release_once()
    published = values(opened(third.raw_bytes))
    assert year("2021") in published and published[year("2021")] is None  # stays, hidden
    assert published[TOTAL] == 70


def test_without_a_history_every_year_with_a_person_is_a_category() -> None:
    counts = {("2021", "Feminine"): 3, ("2023", "Feminine"): 30, ("Unknown", "Masculine"): 2}
    plain = table_from_counts(SPEC, counts)
    assert plain.categories[0] == ("2021", "2023", "Unknown") and plain.period_start == 2021
    staged = table_from_counts(SPEC, counts, {})  # the stage's tables: k persons to be shown
    assert staged.categories[0] == ("2023", "Rest") and staged.total == 35
    assert staged.counts[("Rest", "Feminine")] == 3 and staged.counts[("Rest", "Masculine")] == 2
    assert (staged.period_start, staged.period_end) == (2023, 2023)
    kept = table_from_counts(SPEC, {("2023", "Feminine"): 30}, {"year": {"2019", "Unknown"}})
    assert kept.categories[0] == ("2019", "2023", "Unknown")
    assert kept.counts[("2019", "Feminine")] == 0
    with pytest.raises(UnknownCode):
        table_from_counts(SPEC, counts, {"year": {"Multiple"}})
