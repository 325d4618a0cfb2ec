"""The release stage applies each stream's declared disclosure method: rounding and cell-key
perturbation after suppression, differential privacy through OpenDP charged to the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from schemas.codec import default_registry
from schemas.keys import SigningKey
from schemas.release import Release, verify_release
from tests.trust.store.builders import accepted
from trust.release.disclosure.methods import UnknownMethod
from trust.release.publish import ReleaseSigner
from trust.release.stage import ReleaseStage, StageMisconfigured
from trust.release.streams import (
    VICTIMS_BY_SEX_AGE_FORM,
    VICTIMS_BY_YEAR_CITIZENSHIP,
    VICTIMS_BY_YEAR_FORM,
    VICTIMS_BY_YEAR_SEX,
    StreamSpec,
)
from trust.stewardship.agreement import Agreement, Agreements, PrivacyBudget, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import ReleaseIssued, SubscriptionAdded, new_event_id
from trust.store.eventstore import EventStore, Position
from trust.store.tables import privacy_ledger

KEY = SigningKey.generate("trust")
SECRET = bytes(range(32))
DAY0 = 1_760_000_000.0  # seconds


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def policy(budget: PrivacyBudget | None = None, k: int = 10) -> Policy:
    allows = Agreement(
        "src-a",
        1,
        dt.date(2000, 1, 1),
        None,
        ("$",),
        (ReleaseGrant("ministry", ("statistics",)),),
        min_cell_size=k,
        privacy_budget=budget,
    )
    return Policy(Agreements([allows], default_registry().current("case_record")))


def stage(
    store: EventStore,
    specs: list[StreamSpec],
    *,
    budget: PrivacyBudget | None = None,
    now: list[float] | None = None,
    secret: bytes | None = SECRET,
) -> ReleaseStage:
    clock = now if now is not None else [DAY0]
    return ReleaseStage(
        store=store,
        signer=ReleaseSigner(KEY),
        policy=policy(budget),
        streams={s.name: s for s in specs},
        clock=lambda: clock[0],
        record_key_secret=secret,
    )


def subscribe(store: EventStore, *streams: str) -> None:
    store.append(
        [SubscriptionAdded(new_event_id(), "ministry", s, "statistics", 0) for s in streams],
        None,
        "operator",
    )


def add_persons(store: EventStore, n: int, offset: int = 0, year: int = 2023) -> None:
    store.append_batch(
        [
            ([accepted(case_id=f"c{offset + i}", year=year)], Position("t", 0, offset + i))
            for i in range(n)
        ],
        "ingest",
    )


def opened(raw: bytes) -> Release:
    return verify_release(raw, {KEY.key_id: KEY.public})


def values(release: Release) -> dict[tuple[tuple[str, ...], tuple[str, ...]], float | None]:
    return {(a.dimensions, a.key): a.value for a in release.aggregates}


def recorded(store: EventStore) -> list[ReleaseIssued]:
    return [e for _, e in store.read() if isinstance(e, ReleaseIssued)]


@pytest.mark.parametrize("name", ["round_down", "random_rounding", "cell_key"])
def test_a_perturbing_method_publishes_no_exact_value(store: EventStore, name: str) -> None:
    spec = dataclasses.replace(VICTIMS_BY_YEAR_SEX, method=name)
    add_persons(store, 37)
    add_persons(store, 12, offset=100, year=2022)
    subscribe(store, spec.name)
    s = stage(store, [spec])
    [made] = s.release_once()
    release = opened(made.raw_bytes)
    published = [a for a in release.aggregates if a.value is not None]
    assert published and not any(a.exact for a in release.aggregates)
    assert all(a.value is not None and a.value >= release.k for a in published)
    assert release.metadata["method_name"] == name
    assert release.metadata["values_exact"] == "false"
    if name == "round_down":
        assert release.metadata["rounding_base"] == "10"
        assert all(a.value is not None and a.value % 10 == 0 for a in published)
    if name == "random_rounding":
        assert all(a.value is not None and a.value % 5 == 0 for a in published)
    if name == "cell_key":
        assert release.metadata["perturbation_table"].startswith("ptable-k10-d2-")
        assert SECRET.hex() not in repr(release.metadata)
    # not exact publications: the differencing rule's history of this consumer stays empty
    s.history.update(store)
    assert not s.history.of("ministry")
    # deterministic: a restarted stage with nothing new re-publishes nothing (no fresh draw)
    assert stage(store, [spec]).release_once() == []


def test_cell_keys_give_the_same_persons_the_same_value_in_every_stream(
    store: EventStore,
) -> None:
    by_sex = dataclasses.replace(VICTIMS_BY_YEAR_SEX, method="cell_key")
    by_form = dataclasses.replace(VICTIMS_BY_YEAR_FORM, method="cell_key")
    add_persons(store, 41)
    add_persons(store, 23, offset=100, year=2022)
    subscribe(store, by_sex.name, by_form.name)
    made = stage(store, [by_sex, by_form]).release_once()
    a, b = (values(opened(m.raw_bytes)) for m in made)
    shared = [key for key in a if key in b and key[0] in ((), ("year",))]
    assert len(shared) == 3  # the total and the two years
    assert all(a[key] == b[key] for key in shared)


def test_a_keyed_method_needs_the_secret_and_an_unknown_method_fails_at_construction(
    store: EventStore,
) -> None:
    with pytest.raises(StageMisconfigured, match="record-key secret"):
        stage(store, [dataclasses.replace(VICTIMS_BY_YEAR_SEX, method="cell_key")], secret=None)
    with pytest.raises(UnknownMethod, match="no disclosure method is declared as 'noise'"):
        stage(store, [dataclasses.replace(VICTIMS_BY_YEAR_SEX, method="noise")])
    with pytest.raises(StageMisconfigured, match="min_interval_s"):
        stage(
            store,
            [
                dataclasses.replace(
                    VICTIMS_BY_YEAR_SEX, method="dp_discrete_laplace", first_year=2022
                )
            ],
        )


def test_a_dp_stream_releases_through_opendp_until_the_budget_refuses(
    backend_store: EventStore,
) -> None:
    """On both backends: the ledger's charge shares the release's transaction."""
    store = backend_store
    spec = dataclasses.replace(
        VICTIMS_BY_YEAR_SEX, method="dp_discrete_laplace", min_interval_s=60, first_year=2022
    )
    now = [DAY0]
    s = stage(store, [spec], budget=PrivacyBudget(0.25), now=now)
    add_persons(store, 60)
    subscribe(store, spec.name)
    [first] = s.release_once()
    release = opened(first.raw_bytes)
    meta = release.metadata
    assert "OpenDP" in release.method and "discrete Laplace" in release.method
    assert (meta["method_name"], meta["epsilon"], meta["delta"]) == (
        "dp_discrete_laplace",
        "0.1",
        "0",
    )
    assert (meta["epsilon_spent"], meta["epsilon_remaining"]) == ("0.1", "0.15")
    assert meta["sensitivity"] == "4"  # a person is in their cell, year, sex and the total
    assert float(meta["noise_scale"]) == pytest.approx(40.0, rel=1e-3)
    assert not any(a.exact for a in release.aggregates)
    with store.engine.connect() as conn:
        rows = conn.execute(select(privacy_ledger)).all()
    assert [(r.consumer, r.source_id, r.release_id, r.epsilon) for r in rows] == [
        ("ministry", "src-a", release.release_id, 0.1)
    ]

    # too soon: not released, nothing spent, checked again later
    add_persons(store, 5, offset=1000)
    now[0] += 30
    assert s.release_once() == [] and not s.skipped

    now[0] += 31
    [second] = s.release_once()
    assert opened(second.raw_bytes).metadata["epsilon_remaining"] == "0.05"

    # a third release would spend 0.3 of 0.25: refused, recorded as skipped with a reason code
    add_persons(store, 5, offset=2000)
    now[0] += 61
    assert s.release_once() == []
    [skip] = s.skipped
    assert skip.code == "privacy_budget_exhausted"
    assert "privacy budget of src-a" in skip.reason and "never refresh" in skip.reason
    assert len(recorded(store)) == 2
    with store.engine.connect() as conn:
        assert len(conn.execute(select(privacy_ledger)).all()) == 2
    # a restarted stage reads the same ledger: still refused
    now[0] += 86_400
    again = stage(store, [spec], budget=PrivacyBudget(0.25), now=now)
    assert again.release_once() == [] and again.skipped[0].code == "privacy_budget_exhausted"


def test_a_source_without_a_privacy_budget_is_in_no_dp_release(store: EventStore) -> None:
    spec = dataclasses.replace(
        VICTIMS_BY_YEAR_SEX, method="dp_discrete_laplace", min_interval_s=60, first_year=2022
    )
    add_persons(store, 50)
    subscribe(store, spec.name)
    s = stage(store, [spec], budget=None)
    assert s.release_once() == []
    [skip] = s.skipped
    assert skip.code == "no_privacy_budget" and "src-a" in skip.reason
    assert recorded(store) == []


def test_a_dp_stream_declares_its_years_and_chooses_no_category_from_the_data(
    store: EventStore,
) -> None:
    dp = dataclasses.replace(VICTIMS_BY_YEAR_SEX, method="dp_discrete_laplace", min_interval_s=60)
    with pytest.raises(StageMisconfigured, match="first_year"):
        stage(store, [dp])
    by_country = dataclasses.replace(
        VICTIMS_BY_YEAR_CITIZENSHIP,
        method="dp_discrete_laplace",
        min_interval_s=60,
        first_year=2022,
    )
    with pytest.raises(StageMisconfigured, match="most frequent"):
        stage(store, [by_country])
    with pytest.raises(ValueError, match="first_year"):
        dataclasses.replace(VICTIMS_BY_SEX_AGE_FORM, first_year=1200)


@pytest.mark.parametrize("method", ["dp_discrete_laplace", "suppression"])
def test_declared_years_are_rows_whoever_is_counted(store: EventStore, method: str) -> None:
    """Years 2022 … the current year (2025 at DAY0), each a row and Unknown too, though persons
    are counted in 2023 only; a person of 2019 (before the range) is counted nowhere."""
    spec = dataclasses.replace(
        VICTIMS_BY_YEAR_SEX, method=method, min_interval_s=60, first_year=2022
    )
    add_persons(store, 40)
    add_persons(store, 1, offset=500, year=2019)
    subscribe(store, spec.name)
    [out] = stage(store, [spec], budget=PrivacyBudget(1.0)).release_once()
    release = opened(out.raw_bytes)
    years = {a.key[0] for a in release.aggregates if a.dimensions == ("year",)}
    assert years == {"2022", "2023", "2024", "2025", "Unknown"}
    assert (release.period_start, release.period_end) == (2022, 2025)
    if method == "suppression":  # exact: the person of 2019 is not in the total
        assert values(release)[((), ())] == 40
