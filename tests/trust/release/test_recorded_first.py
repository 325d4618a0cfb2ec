"""Releases are recorded before they leave: the store holds the signed bytes, the publisher (a
follower) sends exactly those, and no crash can put two different releases under one sequence."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from schemas.codec import default_registry
from schemas.keys import SigningKey
from schemas.release import verify_release
from tests.trust.store.builders import accepted
from transport import EventLog, open_log, topics
from trust.follow import follow
from trust.release.counts import COUNTING_RULE
from trust.release.publish import RELEASE_PUBLISHER, ReleasePublisher, ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import VICTIMS_BY_SEX_AGE_FORM
from trust.stewardship.agreement import Agreement, Agreements, LinkageTerms, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import ReleaseIssued, SubscriptionAdded, new_event_id
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import follower_positions

KEY = SigningKey.generate("trust")
SPEC = VICTIMS_BY_SEX_AGE_FORM
TOPIC = topics.release("ministry", SPEC.name)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[EventLog, EventStore]]:
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield log, store
    finally:
        store.close()
        log.close()


def stage(store: EventStore) -> ReleaseStage:
    allows = Agreement(
        "src-a",
        1,
        dt.date(2000, 1, 1),
        None,
        ("$",),
        (ReleaseGrant("ministry", ("statistics",)),),
        may_name_source=True,
    )
    policy = Policy(Agreements([allows], default_registry().current("case_record")))
    return ReleaseStage(
        store=store, signer=ReleaseSigner(KEY), policy=policy, streams={SPEC.name: SPEC}
    )


def subscribe(store: EventStore, consumer: str = "ministry", purpose: str = "statistics") -> None:
    store.append(
        [SubscriptionAdded(new_event_id(), consumer, SPEC.name, purpose, 0)], None, "operator"
    )


def add_persons(store: EventStore, n: int, offset: int = 0) -> None:
    store.append_batch(
        [
            ([accepted(case_id=f"c{offset + i}", year=2023)], Position("t", 0, offset + i))
            for i in range(n)
        ],
        "ingest",
    )


def recorded(store: EventStore) -> list[ReleaseIssued]:
    return [e for _, e in store.read() if isinstance(e, ReleaseIssued)]


def test_a_release_is_in_the_store_before_it_is_on_the_log(
    parts: tuple[EventLog, EventStore],
) -> None:
    log, store = parts
    add_persons(store, 12)
    subscribe(store)
    [made] = stage(store).release_once()
    # recorded, with its exact signed bytes, and nothing sent yet
    [event] = recorded(store)
    assert base64.b64decode(event.signed_b64) == made.raw_bytes
    assert log.read_all(TOPIC) == []

    assert follow(store, ReleasePublisher(log)) == 1
    assert [r.value for r in log.read_all(TOPIC)] == [made.raw_bytes]
    release = verify_release(made.raw_bytes, {KEY.key_id: KEY.public})
    assert release.metadata["counting_rule"] == COUNTING_RULE
    assert "not linked" in release.metadata["counting_rule"]
    assert follow(store, ReleasePublisher(log)) == 0  # nothing new to send


def test_a_crash_before_the_position_re_sends_the_same_bytes(
    parts: tuple[EventLog, EventStore],
) -> None:
    log, store = parts
    add_persons(store, 12)
    subscribe(store)
    [made] = stage(store).release_once()
    follow(store, ReleasePublisher(log))
    # the process died after the log acknowledged but before the position was recorded
    with store.engine.begin() as conn:
        conn.execute(
            delete(follower_positions).where(follower_positions.c.follower == RELEASE_PUBLISHER)
        )
    # a restarted trust: nothing changed, so no new release; the publisher re-sends the same one
    assert stage(store).release_once() == []
    follow(store, ReleasePublisher(log))
    assert [r.value for r in log.read_all(TOPIC)] == [made.raw_bytes, made.raw_bytes]

    add_persons(store, 10, offset=100)
    [second] = stage(store).release_once()
    assert second.release.sequence == 2
    follow(store, ReleasePublisher(log))
    values = [r.value for r in log.read_all(TOPIC)]
    assert values == [made.raw_bytes, made.raw_bytes, second.raw_bytes]


def test_one_sequence_can_be_recorded_only_once(parts: tuple[EventLog, EventStore]) -> None:
    _, store = parts
    add_persons(store, 12)
    subscribe(store)
    assert stage(store).release_once()
    rival = recorded(store)[0]
    # a second trust process that signed a different release under the same sequence
    other = ReleaseIssued(
        release_id="another",
        stream=rival.stream,
        sequence=rival.sequence,
        issued_at_ms=rival.issued_at_ms + 1,
        period=rival.period,
        cells_digest="0" * 64,
        signature_b64=rival.signature_b64,
        signed_b64=base64.b64encode(b"different").decode(),
        consumer=rival.consumer,
    )
    with pytest.raises(IntegrityError):
        store.append([other], None, "trust-release")
    assert len(recorded(store)) == 1


def test_only_allowed_consumers_and_purposes_get_releases(
    parts: tuple[EventLog, EventStore],
) -> None:
    log, store = parts
    add_persons(store, 12)
    store.append_batch(
        [([accepted(source_id="src-b", case_id=f"b{i}")], Position("t", 1, i)) for i in range(12)],
        "ingest",
    )
    subscribe(store)
    subscribe(store, consumer="journalist")
    subscribe(store, consumer="ministry-research", purpose="research")
    s = stage(store)
    [made] = s.release_once()
    assert made.release.metadata["consumer"] == "ministry"
    assert made.release.sources == ("src-a",) and made.release.total == 12
    assert made.release.metadata["sources_left_out"] == "1"  # src-b has no agreement
    assert {(k.subscription.consumer, "allows" in k.reason) for k in s.skipped} == {
        ("journalist", True),
        ("ministry-research", True),
    }
    follow(store, ReleasePublisher(log))
    assert log.read_all(topics.release("journalist", SPEC.name)) == []
    assert len(log.read_all(TOPIC)) == 1


def test_an_agreement_ending_is_noticed_without_new_events(
    parts: tuple[EventLog, EventStore],
) -> None:
    _, store = parts
    add_persons(store, 12)
    subscribe(store)
    now = [dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC).timestamp()]
    ending = Agreement(
        "src-a",
        1,
        dt.date(2000, 1, 1),
        dt.date(2025, 7, 1),
        ("$",),
        (ReleaseGrant("ministry", ("statistics",)),),
    )
    policy = Policy(Agreements([ending], default_registry().current("case_record")))
    s = ReleaseStage(
        store=store,
        signer=ReleaseSigner(KEY),
        policy=policy,
        streams={SPEC.name: SPEC},
        clock=lambda: now[0],
    )
    assert len(s.release_once()) == 1
    assert s.release_once() == []  # nothing moved: nothing read
    now[0] += 86_400  # the agreement is no longer in force: the subscription gets nothing more
    assert s.release_once() == []
    assert [k.reason for k in s.skipped] and "allows" in s.skipped[0].reason


def test_a_linked_release_names_its_model_and_the_sources_left_unlinked(
    parts: tuple[EventLog, EventStore],
) -> None:
    _, store = parts
    grant = (ReleaseGrant("ministry", ("statistics",)),)
    agreements = [
        Agreement(s, 1, dt.date(2000, 1, 1), None, ("$",), grant, 10, LinkageTerms(terms))
        for s, terms in (("src-a", ("*",)), ("src-b", ()), ("src-c", ("*",)))
    ]
    policy = Policy(Agreements(agreements, default_registry().current("case_record")))
    linked = ReleaseStage(
        store=store,
        signer=ReleaseSigner(KEY),
        policy=policy,
        streams={SPEC.name: SPEC},
        linkage_model="fs1-test",
    )
    for source in ("src-a", "src-b", "src-c"):
        store.append_batch(
            [
                ([accepted(source_id=source, case_id=f"c{i}", year=2023)], Position(source, 0, i))
                for i in range(12)
            ],
            "ingest",
        )
    subscribe(store)
    [made] = linked.release_once()
    rule = verify_release(made.raw_bytes, {KEY.key_id: KEY.public}).metadata["counting_rule"]
    assert "after record linkage, model version fs1-test" in rule
    assert rule.endswith("src-a and src-b; src-b and src-c.")
