"""The runner's release checks: cheap streams first, each release sent as soon as it is made, so
a two-way stream's release never waits behind the four-way table's secondary suppression."""

from __future__ import annotations

import datetime as dt
import os

from schemas.codec import default_registry
from schemas.keys import Keyring, SigningKey, TrustKeyPair
from tests.trust.store.builders import accepted
from transport import EventLog, topics
from trust.follow import follow
from trust.ingest.pipeline import IngestPipeline
from trust.ingest.worker import IngestWorker
from trust.release.publish import EmitResult, ReleasePublisher, ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import (
    PREVALENCE_ESTIMATE,
    SYNTHETIC_MICRODATA,
    VICTIMS_BY_MONTH_CUMULATIVE,
    VICTIMS_BY_SEX_AGE_FORM,
    VICTIMS_BY_YEAR_SEX,
)
from trust.runner import TrustRunner
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import SubscriptionAdded, new_event_id
from trust.store.eventstore import EventStore, Position
from trust.store.vault import Vault

KEY = SigningKey.generate("trust")
FOUR_WAY, TWO_WAY = VICTIMS_BY_SEX_AGE_FORM, VICTIMS_BY_YEAR_SEX
CASE = default_registry().current("case_record")


def _policy() -> Policy:
    grant = ReleaseGrant("ministry", ("statistics",))
    return Policy(
        Agreements([Agreement("src-a", 1, dt.date(2000, 1, 1), None, ("$",), (grant,))], CASE)
    )


def _runner(log: EventLog, store: EventStore) -> TrustRunner:
    policy = _policy()
    pipeline = IngestPipeline(
        keyring=Keyring([TrustKeyPair.generate()], []),
        policy=policy,
        registry=default_registry(),
        vault=Vault(store.engine, os.urandom(32)),
    )
    stage = ReleaseStage(
        store=store,
        signer=ReleaseSigner(KEY),
        policy=policy,
        streams={s.name: s for s in (FOUR_WAY, TWO_WAY)},
    )
    publisher = ReleasePublisher(log)
    return TrustRunner(
        worker=IngestWorker(log=log, store=store, pipeline=pipeline),
        releases=[stage],
        followers=[publisher],
        send_releases=lambda: follow(store, publisher),
    )


def _add_persons(store: EventStore, n: int, offset: int = 0) -> None:
    victims = (("v1", "Feminine", 23), ("v2", "Masculine", 31))
    store.append_batch(
        [
            ([accepted(case_id=f"c{offset + i}", victims=victims, year=2023)], Position("t", 0, i))
            for i in range(offset, offset + n)
        ],
        "ingest",
    )


def _subscribe(store: EventStore, *streams: str) -> None:
    store.append(
        [SubscriptionAdded(new_event_id(), "ministry", s, "statistics", 0) for s in streams],
        None,
        "operator",
    )


def test_release_cost_ranks_the_catalogue() -> None:
    assert TWO_WAY.release_cost == 0  # margins of two dimensions
    assert VICTIMS_BY_MONTH_CUMULATIVE.release_cost == 0
    assert FOUR_WAY.release_cost == 1  # every margin of four dimensions
    assert PREVALENCE_ESTIMATE.release_cost == 2
    assert SYNTHETIC_MICRODATA.release_cost == 2


def test_a_quick_stream_is_on_its_topic_before_a_slow_one_is_made(
    sqlite_log: EventLog, sqlite_store: EventStore
) -> None:
    log, store = sqlite_log, sqlite_store
    # (consumer, stream) order would check the four-way table first
    assert FOUR_WAY.name < TWO_WAY.name
    _subscribe(store, FOUR_WAY.name, TWO_WAY.name)
    runner = _runner(log, store)
    for round_no in range(2):  # the first releases, then a change to every stream's figures
        _add_persons(store, 30, offset=30 * round_no)
        on_topic: list[tuple[str, list[str]]] = []

        def seen(
            result: EmitResult,
            round_no: int = round_no,
            on_topic: list[tuple[str, list[str]]] = on_topic,
        ) -> None:
            sent = [
                stream
                for stream in (FOUR_WAY.name, TWO_WAY.name)
                if log.read_all(topics.release("ministry", stream))[round_no:]
            ]
            on_topic.append((result.release.stream, sent))

        made = runner.release(on_release=seen)
        assert [r.release.stream for r in made] == [TWO_WAY.name, FOUR_WAY.name]
        # each release was on its topic when it was handed on: the two-way one before the
        # four-way one was made
        assert on_topic == [
            (TWO_WAY.name, [TWO_WAY.name]),
            (FOUR_WAY.name, [FOUR_WAY.name, TWO_WAY.name]),
        ]


def test_without_a_sender_releases_wait_for_the_followers(
    sqlite_log: EventLog, sqlite_store: EventStore
) -> None:
    log, store = sqlite_log, sqlite_store
    _subscribe(store, TWO_WAY.name)
    runner = _runner(log, store)
    runner.send_releases = None
    _add_persons(store, 30)
    assert [r.release.stream for r in runner.release()] == [TWO_WAY.name]
    topic = topics.release("ministry", TWO_WAY.name)
    assert log.read_all(topic) == []  # recorded, not sent
    runner.follow()
    assert len(log.read_all(topic)) == 1
