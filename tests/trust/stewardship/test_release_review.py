"""Release review: a subscription is released to only after a trustee other than the one who
asked approved it, for the stream definition the trust runs; routine releases then go out alone."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trust.release.test_recorded_first import SPEC, add_persons, stage
from trust.release.streams import CATALOGUE, SYNTHETIC_MICRODATA
from trust.stewardship.principals import Principal, Role, add_principal
from trust.stewardship.release_review import (
    PRE_REVIEW,
    ReviewError,
    Status,
    approve_subscription,
    definition_digest,
    in_force,
    request_subscription,
    subscription_states,
)
from trust.store.db import make_engine, migrate
from trust.store.events import SubscriptionAdded, SubscriptionApproved, new_event_id
from trust.store.eventstore import EventStore, open_store

STREAMS = {SPEC.name: SPEC}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    add_principal(s, "ministry", Role.CONSUMER, added_by="op")
    add_principal(s, "uni", Role.RESEARCHER, added_by="op")
    try:
        yield s
    finally:
        s.close()


def _trustee(store: EventStore, name: str) -> Principal:
    return add_principal(store, name, Role.TRUSTEE, added_by="op").principal


def _codes(fn: object) -> str:
    assert callable(fn)
    with pytest.raises(ReviewError) as caught:
        fn()
    return caught.value.code


def test_a_request_is_released_to_only_after_another_trustee_approved_it(
    store: EventStore,
) -> None:
    alice, bob = _trustee(store, "alice"), _trustee(store, "bob")
    custodian = add_principal(store, "carol", Role.CUSTODIAN, added_by="op").principal
    add_persons(store, 12)
    request_subscription(store, "ministry", SPEC.name, "statistics", "alice", streams=STREAMS)
    [state] = subscription_states(store, STREAMS)
    assert state.status is Status.AWAITING_APPROVAL and state.requested_by == "alice"
    assert in_force(store, STREAMS) == [] and stage(store).release_once() == []

    approve = approve_subscription
    assert _codes(lambda: approve(store, "ministry", SPEC.name, alice, streams=STREAMS)) == (
        "same_person"
    )
    assert _codes(lambda: approve(store, "ministry", SPEC.name, custodian, streams=STREAMS)) == (
        "not_a_trustee"
    )
    assert _codes(lambda: approve(store, "ministry", "nope", bob, streams=STREAMS)) == (
        "no_request"
    )
    assert stage(store).release_once() == []  # refusals approve nothing

    approved = approve(store, "ministry", SPEC.name, bob, streams=STREAMS)
    assert approved.approved_by == "bob" and approved.status is Status.IN_FORCE
    assert [s.consumer for s in in_force(store, STREAMS)] == ["ministry"]
    assert len(stage(store).release_once()) == 1  # released now
    add_persons(store, 10, offset=100)
    assert len(stage(store).release_once()) == 1  # and routinely, without anyone in the loop
    assert _codes(lambda: approve(store, "ministry", SPEC.name, bob, streams=STREAMS)) == (
        "already_approved"
    )


def test_a_changed_stream_definition_waits_for_a_new_approval(store: EventStore) -> None:
    bob = _trustee(store, "bob")
    request_subscription(store, "ministry", SPEC.name, "statistics", "alice", streams=STREAMS)
    approve_subscription(store, "ministry", SPEC.name, bob, streams=STREAMS)
    assert len(in_force(store, STREAMS)) == 1

    changed = {SPEC.name: dataclasses.replace(SPEC, k=SPEC.k + 5)}  # an upgrade changed it
    assert definition_digest(changed[SPEC.name]) != definition_digest(SPEC)
    [state] = subscription_states(store, changed)
    assert state.status is Status.DEFINITION_CHANGED and in_force(store, changed) == []
    assert len(in_force(store, STREAMS)) == 1  # the definition it was approved for still is

    # a trustee other than the requester approves the new definition (bob may: alice asked)
    approve_subscription(store, "ministry", SPEC.name, bob, streams=changed)
    assert len(in_force(store, changed)) == 1
    assert in_force(store, STREAMS) == []  # and the old definition no longer releases


def test_labels_are_no_new_definition() -> None:
    spec = CATALOGUE["victims_by_year_sex"]
    assert definition_digest(dataclasses.replace(spec, title="Another title")) == (
        definition_digest(spec)
    )
    assert definition_digest(dataclasses.replace(spec, margins=not spec.margins)) != (
        definition_digest(spec)
    )


def test_an_approval_of_a_replaced_request_approves_nothing(store: EventStore) -> None:
    bob = _trustee(store, "bob")
    first = request_subscription(store, "ministry", SPEC.name, "statistics", "al", streams=STREAMS)
    request_subscription(store, "ministry", SPEC.name, "research", "al", streams=STREAMS)
    assert first.request_id is not None
    # an approval recorded for the first request (made before the second arrived, say)
    store.append(
        [
            SubscriptionApproved(
                new_event_id(), first.request_id, "ministry", SPEC.name, "statistics",
                definition_digest(SPEC), bob.name, 1,
            )
        ],
        None,
        "review",
    )  # fmt: skip
    [state] = subscription_states(store, STREAMS)
    assert state.purpose == "research" and state.status is Status.AWAITING_APPROVAL


def test_record_level_data_goes_to_researchers_only(store: EventStore) -> None:
    name = SYNTHETIC_MICRODATA.name
    code = _codes(lambda: request_subscription(store, "ministry", name, "research", "alice"))
    assert code == "researchers_only"
    assert subscription_states(store) == []
    request_subscription(store, "uni", name, "research", "alice")
    assert [s.consumer for s in subscription_states(store)] == ["uni"]
    assert _codes(lambda: request_subscription(store, "uni", "nope", "research", "alice")) == (
        "no_stream"
    )


def test_subscriptions_from_before_release_review_stay_in_force(store: EventStore) -> None:
    store.append(
        [SubscriptionAdded(new_event_id(), "ministry", SPEC.name, "statistics", 7)], None, "op"
    )
    [state] = subscription_states(store, STREAMS)
    assert state.approved_by == PRE_REVIEW and state.status is Status.IN_FORCE
    assert len(in_force(store, STREAMS)) == 1


def test_replaying_the_events_gives_the_same_subscriptions(store: EventStore) -> None:
    bob = _trustee(store, "bob")
    request_subscription(store, "ministry", SPEC.name, "statistics", "alice", streams=STREAMS)
    approve_subscription(store, "ministry", SPEC.name, bob, streams=STREAMS)
    request_subscription(store, "uni", SPEC.name, "research", "alice", streams=STREAMS)
    store.append([SubscriptionAdded(new_event_id(), "old", SPEC.name, "statistics", 7)], None, "op")
    before = subscription_states(store, STREAMS)
    store.rebuild_projections()
    assert subscription_states(store, STREAMS) == before
    assert [s.status for s in before] == [
        Status.IN_FORCE,
        Status.IN_FORCE,
        Status.AWAITING_APPROVAL,
    ]


def test_the_migration_keeps_earlier_subscriptions_in_force(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        migrate(engine, "0010")
    finally:
        engine.dispose()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO proj_subscriptions (consumer, stream, purpose, added_at_ms) "
            "VALUES ('ministry', ?, 'statistics', 5)",
            (SPEC.name,),
        )
    store = open_store(f"sqlite:///{db}")
    try:
        [state] = subscription_states(store, STREAMS)
        assert state.approved_by == PRE_REVIEW and state.status is Status.IN_FORCE
    finally:
        store.close()
