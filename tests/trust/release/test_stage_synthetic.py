"""The ``synthetic_microdata`` stream through the release stage: k-anonymous synthetic records of
the allowed sources' persons, checked independently, signed and recorded like every release;
research only, nothing below k, nothing re-made while the persons are unchanged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from pathlib import Path

import pytest

from consumers.writers import ReleaseWriter, synthetic_records
from schemas.codec import default_registry
from tests.trust.store.builders import accepted
from trust.release.publish import ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import SYNTHETIC_MICRODATA
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy, Subscription
from trust.store.events import SubscriptionAdded
from trust.store.events import new_event_id as eid
from trust.store.eventstore import EventStore, Position
from trust.synthesize import check
from trust.synthesize.release import sensitive_rows

from .test_noise_stage import DAY0, KEY, opened, recorded

SPEC = dataclasses.replace(SYNTHETIC_MICRODATA, k=5, min_interval_s=0.0)
_offset = itertools.count()


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def policy() -> Policy:
    def agreement(source: str, grants: tuple[ReleaseGrant, ...]) -> Agreement:
        return Agreement(
            source,
            1,
            dt.date(2000, 1, 1),
            None,
            ("$",),
            grants,
            min_cell_size=5,
            may_name_source=True,
        )

    allowed = (ReleaseGrant("uni", ("research", "statistics")),)
    agreements = [agreement("police", allowed), agreement("ngo", allowed), agreement("press", ())]
    return Policy(Agreements(agreements, default_registry().current("case_record")))


def add_persons(
    store: EventStore, source: str, n: int, years: tuple[int, ...] = (2022, 2023)
) -> None:
    """``n`` persons of ``source`` (records linkage has not placed: each its own person)."""
    sexes, ages = ("Feminine", "Masculine"), (15, 23, 30, 41)
    events = [
        accepted(
            source_id=source,
            case_id=f"{source}-{next(_offset)}",
            victims=(("v1", sexes[i % 2], ages[i % 4]),),
            year=years[i % len(years)],
        )
        for i in range(n)
    ]
    store.append_batch([([ev], Position("t", 0, next(_offset))) for ev in events], "ingest")


def subscribe(store: EventStore, purpose: str = "research") -> None:
    store.append([SubscriptionAdded(eid(), "uni", SPEC.name, purpose, 0)], None, "op")


def stage(store: EventStore) -> ReleaseStage:
    return ReleaseStage(
        store=store,
        signer=ReleaseSigner(KEY),
        policy=policy(),
        streams={SPEC.name: SPEC},
        clock=lambda: DAY0,
    )


def test_synthetic_records_of_the_allowed_persons_hold_no_rare_combination(
    store: EventStore,
) -> None:
    add_persons(store, "police", 50)
    add_persons(store, "ngo", 30)
    add_persons(store, "press", 30, years=(2019,))  # not allowed: 2019 must appear nowhere
    subscribe(store)
    s = stage(store)
    (made,) = s.release_once()
    release = opened(made.raw_bytes)
    assert release.sources == ("ngo", "police") and release.metadata["sources_left_out"] == "1"
    assert not any(a.exact for a in release.aggregates)
    records = synthetic_records(release)
    assert records and all(len(r) == len(SPEC.dimensions) for r in records)
    assert release.metadata["synthetic_records"] == str(len(records))
    assert release.metadata["synthesis_leaks"] == "0"
    year = SPEC.dimensions.index("year")
    assert "2019" not in {r[year] for r in records}
    sub = Subscription("uni", SPEC.name, "research")
    plan = policy().plan(sub, SPEC, ["ngo", "police", "press"], int(DAY0 * 1000))
    sensitive = sensitive_rows(store, plan)
    assert len(sensitive) == 80
    verdict = check(SPEC.dimensions, sensitive, SPEC.dimensions, records, 5)  # independently
    assert verdict.ok and verdict.single_count_mismatches == 0
    assert len(recorded(store)) == 1
    # nothing changed: no new synthesis, no release
    assert s.release_once() == [] and s.synthetic.made == 1


def test_research_only_and_never_below_k(store: EventStore) -> None:
    add_persons(store, "police", 4)
    subscribe(store)
    s = stage(store)
    assert s.release_once() == []
    assert [k.code for k in s.skipped] == ["below_k"]
    add_persons(store, "police", 40)
    subscribe(store, purpose="statistics")  # replaces the purpose
    assert s.release_once() == []
    assert [k.code for k in s.skipped] == ["purpose_not_served"]
    assert recorded(store) == []


def test_the_consumer_writes_one_row_per_synthetic_record(
    store: EventStore, tmp_path: Path
) -> None:
    add_persons(store, "police", 40)
    subscribe(store)
    (made,) = stage(store).release_once()
    release = opened(made.raw_bytes)
    out = tmp_path
    ReleaseWriter(out, charts=True).write(release)
    folder = out / SPEC.name
    lines = (folder / "000001.csv").read_text().splitlines()
    assert lines[0] == ",".join(SPEC.dimensions)
    assert len(lines) - 1 == len(synthetic_records(release))
    assert "Synthetic records" in (folder / "README.txt").read_text()
    assert (folder / "000001.parquet").stat().st_size > 0
