"""A cumulative monthly series under continual release (``victims_by_month_cumulative``):
OpenDP's b-ary tree, every node drawn once and kept across restarts, the series' ε charged once
per source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from schemas.codec import default_registry
from schemas.keys import SigningKey
from schemas.release import Release, verify_release
from tests.trust.store.builders import accepted
from trust.release.disclosure.continual import ContinualCounter, Series, SeriesEnded, TreeShape
from trust.release.disclosure.dp import PrivacyCost
from trust.release.publish import ReleaseSigner
from trust.release.stage import ReleaseStage, StageMisconfigured
from trust.release.streams import VICTIMS_BY_MONTH_CUMULATIVE, VICTIMS_BY_YEAR_SEX, StreamSpec
from trust.stewardship.agreement import Agreement, Agreements, PrivacyBudget, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import ReleaseIssued, SubscriptionAdded, new_event_id
from trust.store.eventstore import EventStore, Position
from trust.store.tables import privacy_ledger

KEY = SigningKey.generate("trust")
SPEC = VICTIMS_BY_MONTH_CUMULATIVE
OCT_15 = dt.datetime(2026, 10, 15, tzinfo=dt.UTC).timestamp()
DAY = 86_400.0


def policy(budgets: dict[str, PrivacyBudget | None]) -> Policy:
    return Policy(
        Agreements(
            [
                Agreement(
                    source,
                    1,
                    dt.date(2000, 1, 1),
                    None,
                    ("$",),
                    (ReleaseGrant("ministry", ("statistics",)),),
                    privacy_budget=budget,
                )
                for source, budget in budgets.items()
            ],
            default_registry().current("case_record"),
        )
    )


def stage(
    store: EventStore,
    now: list[float],
    budgets: dict[str, PrivacyBudget | None] | None = None,
    specs: tuple[StreamSpec, ...] = (SPEC,),
) -> ReleaseStage:
    return ReleaseStage(
        store=store,
        signer=ReleaseSigner(KEY),
        policy=policy(budgets or {"src-a": PrivacyBudget(2.0)}),
        streams={s.name: s for s in specs},
        clock=lambda: now[0],
    )


_offset = [0]


def add_persons(store: EventStore, n: int, source: str = "src-a") -> None:
    start = _offset[0]
    _offset[0] += n
    store.append_batch(
        [
            ([accepted(source, case_id=f"c{i}")], Position(f"t-{source}", 0, i))
            for i in range(start, start + n)
        ],
        "ingest",
    )


def subscribe(store: EventStore) -> None:
    store.append(
        [SubscriptionAdded(new_event_id(), "ministry", SPEC.name, "statistics", 0)],
        None,
        "operator",
    )


def opened(raw: bytes) -> Release:
    return verify_release(raw, {KEY.key_id: KEY.public})


def by_month(release: Release) -> dict[str, float | None]:
    return {a.key[0]: a.value for a in release.aggregates if a.dimensions == ("month",)}


def ledger(store: EventStore) -> list[tuple[str, str, float]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(privacy_ledger).order_by(privacy_ledger.c.recorded_at_ms))
        return [(r.source_id, r.stream, r.epsilon) for r in rows]


def test_months_are_published_once_each_and_never_change_across_restarts(
    backend_store: EventStore,
) -> None:
    store = backend_store
    now = [OCT_15]
    add_persons(store, 400)
    subscribe(store)
    [first] = stage(store, now).release_once()
    release = opened(first.raw_bytes)
    meta = release.metadata
    assert meta["method_name"] == "dp_continual" and meta["series_start"] == "2026-09"
    assert (meta["horizon_months"], meta["epsilon"], meta["epsilon_spent"]) == ("64", "1", "1")
    assert float(meta["noise_scale"]) == pytest.approx(14.0)  # 7 levels x 2 changes / epsilon 1
    assert list(by_month(release)) == ["2026-09"]  # the month before: everyone counted so far
    assert not any(a.exact for a in release.aggregates)
    assert "cumulative" in release.caveat and "not added up" in release.caveat
    assert ledger(store) == [("src-a", SPEC.name, 1.0)]

    add_persons(store, 30)
    assert stage(store, now).release_once() == []  # October is not over: nothing new
    values = by_month(release)
    for month, label in ((OCT_15 + 20 * DAY, "2026-10"), (OCT_15 + 50 * DAY, "2026-11")):
        now[0] = month
        add_persons(store, 25)
        [made] = stage(store, now).release_once()  # a new stage each time: a restarted trust
        later = by_month(opened(made.raw_bytes))
        assert list(later)[-1] == label
        assert {m: later[m] for m in values} == values  # earlier months exactly as published
        values = later
    assert ledger(store) == [("src-a", SPEC.name, 1.0)]  # charged once for the whole series
    notes = [e.metadata["continual"] for _, e in store.read() if isinstance(e, ReleaseIssued)]
    assert len(notes) == 3
    assert all("Feminine" not in n for n in notes)  # counts and draws, nothing of a record
    series = Series.from_note(notes[-1])
    assert series.closed == [400, 455, 480] and series.leaves() == [400, 55, 25]


def test_a_consumer_folder_draws_the_months_as_counts_and_says_they_are_not_added_up(
    sqlite_store: EventStore, tmp_path: Path
) -> None:
    from consumers.charts import NO_DATA_GID, VALUE_GID, chart_views
    from consumers.writers import CHARTS, ReleaseWriter

    store = sqlite_store
    now = [OCT_15]
    add_persons(store, 300)
    subscribe(store)
    made = [*stage(store, now).release_once()]
    now[0] += 20 * DAY
    made += stage(store, now).release_once()
    release = opened(made[-1].raw_bytes)
    [view] = chart_views(release)
    assert view.name == "by_month" and view.measure == "count"
    assert [b.category for b in view.panels[0].bars] == ["2026-09", "2026-10"]
    assert "not added up" in view.reading
    written = ReleaseWriter(tmp_path, charts=True).write(release)
    folder = tmp_path / SPEC.name
    svg = (folder / CHARTS / "000002.by_month.svg").read_text()
    assert f'id="{VALUE_GID}-1"' in svg and NO_DATA_GID not in svg
    assert {p.name for p in written.paths} >= {"000002.csv", "README.txt"}
    readme = (folder / "README.txt").read_text()
    assert "cumulative" in readme and "not added up" in readme
    rows = (folder / "000002.csv").read_text().splitlines()
    assert rows[0].startswith("month") or "month" in rows[0]


def test_months_the_trust_did_not_check_close_with_the_month_before() -> None:
    series = Series.begin(int(OCT_15 * 1000), 100)
    assert series.close_months(int((OCT_15 + 100 * DAY) * 1000), 130) == 3  # Oct, Nov, Dec
    assert series.months() == ("2026-09", "2026-10", "2026-11", "2026-12")
    assert series.closed == [100, 100, 100, 130]
    assert series.close_months(int((OCT_15 + 101 * DAY) * 1000), 999) == 0
    assert Series.from_note(series.note()) == series


def test_a_series_refuses_once_its_horizon_is_spent() -> None:
    counter = ContinualCounter(TreeShape(4), PrivacyCost(1.0), changes_per_person=2)
    series = Series(0, [10, 12, 15, 15])
    assert len(series.publish(counter)) == 4
    assert len(series.drawn) == TreeShape(4).size  # every node drawn, each once
    series.closed.append(20)
    with pytest.raises(SeriesEnded) as info:
        series.publish(counter)
    assert info.value.code == "continual_series_ended"


def test_each_source_is_charged_once_when_first_counted_and_a_short_budget_refuses(
    sqlite_store: EventStore,
) -> None:
    store = sqlite_store
    now = [OCT_15]
    budgets = {"src-a": PrivacyBudget(2.0), "src-b": PrivacyBudget(2.0)}
    add_persons(store, 50)
    subscribe(store)
    assert len(stage(store, now, budgets).release_once()) == 1
    now[0] += 20 * DAY
    add_persons(store, 40, "src-b")  # a second source joins the series
    [made] = stage(store, now, budgets).release_once()
    assert opened(made.raw_bytes).source_count == 2
    assert sorted(ledger(store)) == [("src-a", SPEC.name, 1.0), ("src-b", SPEC.name, 1.0)]

    now[0] += 30 * DAY
    add_persons(store, 10, "src-c")  # a third, whose agreement grants too little
    short = {**budgets, "src-c": PrivacyBudget(0.5)}
    s = stage(store, now, short)
    assert s.release_once() == []
    [skipped] = s.skipped
    assert skipped.code == "privacy_budget_exhausted"
    assert len(ledger(store)) == 2  # refused: nothing charged


def test_only_a_cumulative_series_takes_the_continual_method(sqlite_store: EventStore) -> None:
    import dataclasses

    with pytest.raises(StageMisconfigured, match="continual"):
        stage(
            sqlite_store,
            [OCT_15],
            specs=(dataclasses.replace(VICTIMS_BY_YEAR_SEX, method="dp_continual"),),
        )
    with pytest.raises(ValueError, match="by month only"):
        dataclasses.replace(SPEC, dimensions=("year",), margins=False)
