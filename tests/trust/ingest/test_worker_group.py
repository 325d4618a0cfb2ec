"""Several ingest workers on one store: the store's positions fence them, so each message is stored
exactly once whichever worker read it.

On the embedded log every consumer reads every partition (single-writer mode): two workers there
read everything twice, and the fence drops what the other stored — including a batch one worker
polled before the other stored it (checked inside the append, under the store's write lock). On
Tansu two workers of one group share a 4-partition topic, then one leaves and the other takes over.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from infra.broker import TansuBroker
from schemas.keys import Keyring
from transport import EventLog, LogRecord, open_log, topics
from trust.ingest.pipeline import IngestPipeline
from trust.ingest.worker import INGEST_CONSUMER, IngestStats, IngestWorker, _continuing, _Moved
from trust.stewardship.agreement import Agreements
from trust.stewardship.policy import Policy
from trust.store.eventstore import EventStore, open_store
from trust.store.vault import Vault

from .test_worker import CASE, KEYS, REGISTRY, TRUST, agreement, record, seal

KEK = bytes(range(1, 33))


def _worker(log: EventLog, store: EventStore, poll_max: int) -> IngestWorker:
    pipeline = IngestPipeline(
        keyring=Keyring([TRUST], [k.public for k in KEYS.values()]),
        policy=Policy(Agreements([agreement("police")], CASE)),
        registry=REGISTRY,
        vault=Vault(store.engine, KEK),  # one vault: the trust's, whichever worker seals
    )
    return IngestWorker(
        log=log, store=store, pipeline=pipeline, poll_max=poll_max, poll_timeout=0.05
    )


def _publish(log: EventLog, n: int, start: int = 0) -> None:
    """``n`` records from police on its inbound topic (4 partitions), keyed by case."""
    topic = topics.inbound("police")
    log.create_topic(topic, 4)
    datums = [record("police", f"C-{i}", [f"V{i}"]) for i in range(start, start + n)]
    for i, env in zip(range(start, start + n), seal("police", datums), strict=True):
        log.append(topic, env, key=f"case-{i}".encode())
    log.flush()


def _ends(log: EventLog) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for r in log.read_all(topics.inbound("police")):
        ends[(r.topic, r.partition)] = max(ends.get((r.topic, r.partition), 0), r.offset + 1)
    return ends


def _stored_once(store: EventStore, n: int) -> None:
    """``n`` messages stored, each once, each accepted (no duplicate refused, no rejection)."""
    where: Counter[tuple[str, int, int]] = Counter()
    types: Counter[str] = Counter()
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            'SELECT topic, partition, "offset", event_type FROM stored_events'
        ).all()
    for topic, partition, offset, event_type in rows:
        where[(topic, partition, offset)] += 1
        types[event_type] += 1
    assert types == Counter({"RecordAccepted": n})
    assert len(where) == n and set(where.values()) == {1}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> EventStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    s = open_store(url)
    request.addfinalizer(s.close)
    return s


def test_two_workers_on_the_embedded_log_store_each_message_once(
    tmp_path: Path, store: EventStore
) -> None:
    with open_log(f"sqlite:///{tmp_path / 'log.db'}") as log:
        _publish(log, 240)
        a, b = _worker(log, store, 25), _worker(log, store, 25)
        stats = {"a": IngestStats(), "b": IngestStats()}
        for _ in range(200):
            sa, sb = a.step(), b.step()
            stats["a"].add(sa)
            stats["b"].add(sb)
            if sa.messages == sb.messages == 0 and sa.caught_up and sb.caught_up:
                break
        a.close()
        b.close()
        assert store.positions(INGEST_CONSUMER) == _ends(log)
    _stored_once(store, 240)
    # both read everything; what one stored, the other skipped (by its position, never as a
    # duplicate): the two stored 240 between them
    assert stats["a"].accepted > 0 and stats["b"].accepted > 0
    assert stats["a"].accepted + stats["b"].accepted == 240
    assert not stats["a"].rejected and not stats["b"].rejected
    assert stats["a"].skipped > 0 and stats["b"].skipped > 0


def test_a_batch_polled_before_another_worker_stored_it_is_not_stored_again(
    tmp_path: Path, store: EventStore
) -> None:
    with open_log(f"sqlite:///{tmp_path / 'log.db'}") as log:
        _publish(log, 40)
        late, early = _worker(log, store, 1000), _worker(log, store, 1000)
        late.start()
        assert late._consumer is not None
        polled = []
        deadline = time.monotonic() + 10
        while len(polled) < 40 and time.monotonic() < deadline:
            polled += late._consumer.poll(1000, 0.05)
        # the other worker stores everything while the first still holds its poll
        while not (s := early.step()).caught_up or s.messages:
            pass
        assert store.positions(INGEST_CONSUMER) == _ends(log)
        # the first stores what it polled: by its own view (read at its start) the batch continues
        # its positions, so only the check under the store's lock can stop it
        records, _, expect = _continuing(polled, late._next)
        assert records == polled
        with pytest.raises(_Moved):
            late._process_and_store(records, expect)
        assert late._unstored(polled)[0] == []  # by the store's positions read now: all stored
        late.close()
        early.close()
    _stored_once(store, 40)


@pytest.mark.kafka
def test_two_workers_of_a_group_share_the_partitions_and_one_takes_over(
    tmp_path: Path, own_tansu: TansuBroker
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with open_log(own_tansu.url) as log:
        _publish(log, 200)
        a, b = _worker(log, store, 20), _worker(log, store, 20)
        by = {"a": IngestStats(), "b": IngestStats()}
        deadline = time.monotonic() + 60
        while sum(store.positions(INGEST_CONSUMER).values()) < 200:
            assert time.monotonic() < deadline, store.positions(INGEST_CONSUMER)
            by["a"].add(a.step())
            by["b"].add(b.step())
        assert by["a"].accepted > 0 and by["b"].accepted > 0  # the group shared the partitions
        assert by["a"].accepted + by["b"].accepted == 200

        a.close()  # leaves the group: b takes over its partitions
        _publish(log, 100, start=200)
        deadline = time.monotonic() + 60
        while sum(store.positions(INGEST_CONSUMER).values()) < 300:
            assert time.monotonic() < deadline, store.positions(INGEST_CONSUMER)
            by["b"].add(b.step())
        b.close()
        assert store.positions(INGEST_CONSUMER) == _ends(log)
        assert len(_ends(log)) == 4
    _stored_once(store, 300)
    store.close()


def _recs(partition: int, offsets: range) -> list[LogRecord]:
    return [LogRecord("tip.inbound.police", partition, o, None, b"", (), 0) for o in offsets]


def test_a_read_off_the_stored_position_is_filtered_and_sought_back_or_forward() -> None:
    t = "tip.inbound.police"
    stored = {(t, 0): 10, (t, 1): 50, (t, 2): 5}
    polled = _recs(0, range(8, 14)) + _recs(1, range(20, 30)) + _recs(2, range(7, 9))
    polled += _recs(3, range(3, 5))
    kept, seeks, expect = _continuing(polled, stored)
    # below the position: dropped; all of partition 1 below it: sought forward; partition 2 starts
    # past its position (a hole): dropped and sought back; partition 3 was never read: kept
    assert [(r.partition, r.offset) for r in kept] == [(0, o) for o in range(10, 14)] + [
        (3, 3),
        (3, 4),
    ]
    assert seeks == {(t, 1): 50, (t, 2): 5}
    assert expect == {(t, 0): 10, (t, 3): None}
    # sought back once and the log still starts past the position: those records are gone from
    # the log, and what follows is kept rather than sought for ever
    kept, seeks, expect = _continuing(_recs(2, range(7, 9)), stored, {(t, 2): 5})
    assert [r.offset for r in kept] == [7, 8] and seeks == {} and expect == {(t, 2): 5}
