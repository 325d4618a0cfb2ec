"""The ``prevalence_estimate`` stream through the release stage: planned, estimated from the
allowed sources' linked persons, signed and recorded like every release; refused below k or
with fewer than two lists; not made again while the linked data have not changed materially."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest

from schemas.codec import default_registry
from tests.trust.store.builders import accepted
from trust.release.publish import ESTIMATE_ASSUMPTIONS, ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import MEASURES, PREVALENCE_ESTIMATE, VICTIMS_BY_YEAR_SEX, StreamSpec
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import LinkDecision, RecordLinked, SubscriptionAdded, VictimRef
from trust.store.events import new_event_id as eid
from trust.store.eventstore import EventStore, Position

from .test_noise_stage import DAY0, KEY, opened, recorded, values

ALLOWED = ("ngo", "nrm", "police")
#: persons per capture history over the allowed lists (police, ngo, nrm), then press's own
HISTORIES: dict[tuple[str, ...], int] = {
    ("police",): 20,
    ("ngo",): 15,
    ("nrm",): 12,
    ("police", "ngo"): 8,
    ("police", "nrm"): 6,
    ("ngo", "nrm"): 5,
    ("police", "ngo", "nrm"): 3,
    ("police", "press"): 4,  # counted on the police list only
    ("press",): 7,  # not allowed: in no history
}
OBSERVED = sum(n for h, n in HISTORIES.items() if set(h) & set(ALLOWED))
SPEC = dataclasses.replace(PREVALENCE_ESTIMATE, k=5, min_interval_s=0.0)


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def policy(k: int = 5) -> Policy:
    def agreement(source: str, allows: bool) -> Agreement:
        grants = (ReleaseGrant("ministry", ("statistics",)),) if allows else ()
        return Agreement(
            source,
            1,
            dt.date(2000, 1, 1),
            None,
            ("$",),
            grants,
            min_cell_size=k,
            may_name_source=True,
        )

    agreements = [agreement(s, True) for s in ALLOWED] + [agreement("press", False)]
    return Policy(Agreements(agreements, default_registry().current("case_record")))


_offset = itertools.count()


def add_persons(store: EventStore, histories: dict[tuple[str, ...], int], tag: str) -> None:
    """Each person: one record per list of its history, placed in one person by linkage."""
    events: list[object] = []
    person = itertools.count()
    for history, n in histories.items():
        for _ in range(n):
            pid = f"P-{tag}-{next(person)}"
            for source in history:
                case = f"{pid}-{source}"
                events.append(accepted(source_id=source, case_id=case, year=2023))
                events.append(
                    RecordLinked(
                        eid(), VictimRef(source, case, "v1"), pid, LinkDecision.JOINED, "m1", [], 0
                    )
                )
    store.append_batch(
        [([ev], Position("t", 0, next(_offset))) for ev in events],  # type: ignore[list-item]
        "ingest",
    )


def subscribe(store: EventStore, *streams: str) -> None:
    store.append(
        [SubscriptionAdded(eid(), "ministry", s, "statistics", 0) for s in streams], None, "op"
    )


def stage(store: EventStore, specs: list[StreamSpec]) -> ReleaseStage:
    return ReleaseStage(
        store=store,
        signer=ReleaseSigner(KEY),
        policy=policy(),
        streams={s.name: s for s in specs},
        clock=lambda: DAY0,
    )


@pytest.fixture
def released(store: EventStore) -> ReleaseStage:
    add_persons(store, HISTORIES, "a")
    subscribe(store, SPEC.name)
    return stage(store, [SPEC])


def test_the_estimate_is_released_with_its_interval_from_the_allowed_sources_only(
    store: EventStore, released: ReleaseStage
) -> None:
    (made,) = released.release_once()
    release = opened(made.raw_bytes)  # signed by the trust's release key
    assert release.stream == SPEC.name and release.dimensions == ("measure",)
    got = {key[0]: v for (_, key), v in values(release).items()}
    assert list(got) == list(MEASURES)
    assert got["observed"] == OBSERVED  # press's own persons are in no history
    low, est, high = got["ci_low"], got["estimate"], got["ci_high"]
    assert low is not None and est is not None and high is not None
    assert OBSERVED <= low <= est <= high
    exact = {a.key[0]: a.exact for a in release.aggregates}
    assert exact == {"observed": True, "estimate": False, "ci_low": False, "ci_high": False}
    assert release.sources == ALLOWED and release.metadata["sources_left_out"] == "1"
    assert release.metadata["estimate_exists"] == "true"
    assert set(release.metadata["lists"].split(", ")) == set(ALLOWED)
    assert release.metadata["interval_method"] == "profile"
    assert set(ESTIMATE_ASSUMPTIONS) <= set(release.metadata)
    # no per-list count or overlap: four numbers, nothing else
    assert len(release.aggregates) == 4
    (event,) = recorded(store)  # recorded first, with exactly the signed bytes
    assert event.stream == SPEC.name and event.consumer == "ministry"
    assert released.estimates.computed == 1


def test_no_release_and_no_new_estimate_while_nothing_changed_materially(
    store: EventStore, released: ReleaseStage
) -> None:
    assert len(released.release_once()) == 1
    subscribe(store, "other_stream")  # the store moves, the persons do not
    assert released.release_once() == []
    assert released.estimates.computed == 1
    add_persons(store, {("police", "ngo"): 2}, "b")  # fewer than k more persons
    assert released.release_once() == []
    assert released.estimates.computed == 1  # not material: not even estimated
    add_persons(store, {("police",): 3, ("nrm",): 3}, "c")  # now k or more since the release
    (again,) = released.release_once()
    assert released.estimates.computed == 2
    assert values(opened(again.raw_bytes))[(("measure",), ("observed",))] == OBSERVED + 8
    assert len(recorded(store)) == 2


def test_a_restarted_stage_does_not_release_an_unchanged_estimate_again(
    store: EventStore, released: ReleaseStage
) -> None:
    assert len(released.release_once()) == 1
    fresh = stage(store, [SPEC])  # reads the last release from the store
    assert fresh.release_once() == []
    assert fresh.estimates.computed == 0


def test_below_k_or_one_list_is_refused_with_a_reason(store: EventStore) -> None:
    add_persons(store, {("police",): 3, ("police", "ngo"): 1}, "a")
    subscribe(store, SPEC.name)
    s = stage(store, [SPEC])
    assert s.release_once() == []
    assert [k.code for k in s.skipped] == ["below_k"]
    add_persons(store, {("press",): 30}, "b")
    assert s.release_once() == []
    assert [k.code for k in s.skipped] == ["below_k"]  # press's persons are not the plan's
    assert recorded(store) == []


def test_fewer_than_two_lists_is_refused(store: EventStore) -> None:
    add_persons(store, {("police",): 30, ("press",): 30}, "a")
    subscribe(store, SPEC.name)
    s = stage(store, [SPEC])
    assert s.release_once() == []
    assert [k.code for k in s.skipped] == ["too_few_lists"]
    assert recorded(store) == []


def test_the_stage_counts_only_the_count_streams(store: EventStore) -> None:
    add_persons(store, HISTORIES, "a")
    subscribe(store, SPEC.name, VICTIMS_BY_YEAR_SEX.name)
    s = stage(store, [SPEC, VICTIMS_BY_YEAR_SEX])
    assert set(s.counts.streams) == {VICTIMS_BY_YEAR_SEX.name}
    made = {r.release.stream for r in s.release_once()}
    assert made == {SPEC.name, VICTIMS_BY_YEAR_SEX.name}


def test_lists_that_never_overlap_release_the_detected_total_and_the_reason(
    store: EventStore,
) -> None:
    add_persons(store, {("police",): 12, ("ngo",): 9}, "a")
    subscribe(store, SPEC.name)
    (made,) = stage(store, [SPEC]).release_once()
    release = opened(made.raw_bytes)
    got = {key[0]: v for (_, key), v in values(release).items()}
    assert got == {"observed": 21, "estimate": None, "ci_low": None, "ci_high": None}
    assert release.metadata["estimate_exists"] == "false"
    assert release.metadata["no_estimate_reason_code"] == "lists_disjoint"


def test_the_detected_total_follows_the_differencing_rule_of_the_totals(store: EventStore) -> None:
    add_persons(store, HISTORIES, "a")
    subscribe(store, VICTIMS_BY_YEAR_SEX.name)
    s = stage(store, [SPEC, VICTIMS_BY_YEAR_SEX])
    (counts,) = s.release_once()
    assert opened(counts.raw_bytes).total == OBSERVED  # the consumer holds this total
    add_persons(store, {("police", "ngo"): 2}, "b")
    subscribe(store, SPEC.name)
    made = {r.release.stream: r for r in s.release_once()}
    assert SPEC.name not in made  # 2 more persons than a total the consumer holds: below k
    assert [k.code for k in s.skipped] == ["differencing"]
    if VICTIMS_BY_YEAR_SEX.name in made:  # the count stream withholds its new total likewise
        assert opened(made[VICTIMS_BY_YEAR_SEX.name].raw_bytes).total is None
