"""Inbound retention: the envelopes the trust took in leave its log once past their source's
envelope retention; what it has not taken in, or took in recently, stays; a broker that cannot
delete is reported, never mistaken for done."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from infra.broker import TansuBroker
from schemas.codec import default_registry
from tests.trust.store.builders import rejected
from transport import EventLog, open_log
from trust.stewardship.agreement import Agreement, Agreements
from trust.stewardship.inbound_retention import InboundRetention
from trust.store.events import InboundDeleted
from trust.store.eventstore import EventStore, Position
from trust.store.tables import stored_events

TOPIC = "tip.inbound.police"
DAY = 86_400.0
NOW = 1_800_000_000.0


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


@pytest.fixture
def log(sqlite_log: EventLog) -> EventLog:
    return sqlite_log


def _agreements(days: int | None) -> Agreements:
    terms = [] if days is None else [
        Agreement("police", 1, dt.date(2000, 1, 1), None, ("$",), envelope_retention_days=days)
    ]  # fmt: skip
    return Agreements(terms, default_registry().current("case_record"))


def _take_in(store: EventStore, log: EventLog, n: int, *, days_ago: float) -> None:
    """``n`` envelopes on the log, taken in (here: refused) by the trust ``days_ago``."""
    first = store.positions("trust-ingest").get((TOPIC, 0), 0)
    for i in range(n):
        log.append(TOPIC, f"envelope-{first + i}".encode())
    log.flush()
    before = store.last_seq()
    store.append_batch(
        [([rejected()], Position(TOPIC, 0, first + i)) for i in range(n)], "trust-ingest"
    )
    with store.engine.begin() as conn:
        conn.execute(
            update(stored_events)
            .where(stored_events.c.seq > before)
            .values(recorded_at_ms=int((NOW - days_ago * DAY) * 1000))
        )


def _offsets(log: EventLog) -> list[int]:
    return [r.offset for r in log.read_all(TOPIC)]


def test_taken_in_and_past_retention_leaves_the_log(store: EventStore, log: EventLog) -> None:
    _take_in(store, log, 5, days_ago=10)
    _take_in(store, log, 5, days_ago=2)
    log.append(TOPIC, b"not taken in yet")
    log.flush()
    clock = [NOW]
    held = [_agreements(None)]  # no agreement held: the default, 7 days
    prune = InboundRetention(log, store, lambda: held[0], every_s=3600, clock=lambda: clock[0])
    assert prune() == {(TOPIC, 0): 5}
    assert _offsets(log) == list(range(5, 11))
    [deleted] = [e for _, e in store.read() if isinstance(e, InboundDeleted)]
    assert (deleted.topic, deleted.partition, deleted.before_offset) == (TOPIC, 0, 5)

    held[0] = _agreements(0)  # the source's agreement: delete as soon as taken in
    clock[0] += 60
    assert prune() == {}  # within the interval: not looked at again
    clock[0] += 3600
    assert prune() == {(TOPIC, 0): 10}
    assert _offsets(log) == [10]  # what the trust has not taken in stays
    clock[0] += 7200
    assert prune() == {}  # nothing new: no event either
    assert len([e for _, e in store.read() if isinstance(e, InboundDeleted)]) == 2


@pytest.mark.kafka
def test_a_broker_that_cannot_delete_is_reported(
    store: EventStore, tansu: TansuBroker, caplog: pytest.LogCaptureFixture
) -> None:
    with open_log(tansu.url) as kafka:
        kafka.create_topic(TOPIC)
        _take_in(store, kafka, 3, days_ago=30)
        prune = InboundRetention(kafka, store, lambda: _agreements(0), clock=lambda: NOW)
        assert prune() == {} and prune.unsupported
        assert "retention.ms" in caplog.text
        assert len(kafka.read_all(TOPIC)) >= 3
    assert not [e for _, e in store.read() if isinstance(e, InboundDeleted)]
