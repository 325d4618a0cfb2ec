"""Backends agree with a tiny list model on random histories (hypothesis state machine).

Random appends (four keys over two partitions), flushes, polls, commits, replays from the
start, consumer reopens and log reopens. The model keeps, per key, the appended values in
order; a consumer's position per key; the committed position per key. Keys map to one
partition each, so per-key positions are exactly what per-partition offsets commit.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from infra.broker import TansuBroker
from tests.conftest import unique_name
from tests.transport.conformance import drain
from transport import EventLog, LogConsumer, LogRecord, open_log

KEYS = (b"a", b"b", b"c", b"d")
PARTITIONS = 2


class LogAgreement(RuleBasedStateMachine):
    """The machine; subclasses say how to open the log and what visibility to expect."""

    # SQLite makes appends visible only at flush; Kafka may deliver before flush (linger).
    visible_only_after_flush: ClassVar[bool] = True
    # A poll when records are available returns some (SQLite); Kafka may need a join first.
    prompt_poll: ClassVar[bool] = True
    poll_timeout: ClassVar[float] = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.topic = unique_name("agree")
        self.group = unique_name("agree-g")
        self.log = self.open()
        self.log.create_topic(self.topic, PARTITIONS)
        self.consumer: LogConsumer = self.log.consumer(self.group, [self.topic])
        self.appended: dict[bytes, list[bytes]] = defaultdict(list)
        self.flushed: dict[bytes, int] = defaultdict(int)
        self.position: dict[bytes, int] = defaultdict(int)
        self.committed: dict[bytes, int] = defaultdict(int)
        self.offsets: dict[tuple[str, int], int] = {}  # the consumer's own next offsets
        self.counter = 0

    def open(self) -> EventLog:
        raise NotImplementedError

    # -- writes -------------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS), n=st.integers(1, 30))
    def append(self, key: bytes, n: int) -> None:
        for _ in range(n):
            self.counter += 1
            value = key + b"-" + str(self.counter).encode()
            self.log.append(self.topic, value, key=key, headers=[("n", str(self.counter).encode())])
            self.appended[key].append(value)

    @rule()
    def flush(self) -> None:
        self.log.flush()
        for key, values in self.appended.items():
            self.flushed[key] = len(values)

    # -- reads ----------------------------------------------------------------------------

    def _check(self, records: list[LogRecord]) -> None:
        for r in records:
            assert r.key is not None
            pos = self.position[r.key]
            limit = (
                self.flushed[r.key] if self.visible_only_after_flush else len(self.appended[r.key])
            )
            assert pos < limit, f"record beyond what was appended/flushed for key {r.key!r}"
            assert r.value == self.appended[r.key][pos], "out of order, duplicated or lost"
            assert r.headers == (("n", r.value.split(b"-")[1]),)
            tp = (r.topic, r.partition)
            if tp in self.offsets:
                assert r.offset == self.offsets[tp], "offsets skip or repeat"
            self.offsets[tp] = r.offset + 1
            self.position[r.key] = pos + 1

    @rule(n=st.integers(1, 50))
    def poll(self, n: int) -> None:
        records = self.consumer.poll(max_records=n, timeout=self.poll_timeout)
        assert len(records) <= n
        if self.prompt_poll and any(self.position[k] < self.flushed[k] for k in KEYS):
            assert records, "records were available but poll returned none"
        self._check(records)

    @rule()
    def commit(self) -> None:
        self.consumer.commit(dict(self.offsets))
        for key in KEYS:
            self.committed[key] = self.position[key]

    @rule()
    def replay_from_start(self) -> None:
        for p in range(PARTITIONS):
            self.consumer.seek(self.topic, p, 0)
            self.offsets[(self.topic, p)] = 0
        for key in KEYS:
            self.position[key] = 0

    def _reset_to_committed(self) -> None:
        self.offsets = dict(self.consumer.committed())
        for key in KEYS:
            self.position[key] = self.committed[key]

    @rule()
    def reopen_consumer(self) -> None:
        self.consumer.close()
        self.consumer = self.log.consumer(self.group, [self.topic])
        self._reset_to_committed()

    @rule()
    def reopen_log(self) -> None:
        self.log.close()  # closes the consumer and flushes what is pending
        for key, values in self.appended.items():
            self.flushed[key] = len(values)
        self.log = self.open()
        self.consumer = self.log.consumer(self.group, [self.topic])
        self._reset_to_committed()

    @invariant()
    def committed_positions_agree(self) -> None:
        # Offsets are dense and each key lives in one partition, so what the group stored
        # adds up to the records the model says were committed.
        assert sum(self.consumer.committed().values()) == sum(self.committed.values())

    def teardown(self) -> None:
        try:
            self.log.flush()
            for key, values in self.appended.items():
                self.flushed[key] = len(values)
            self._check(drain(self.consumer))
            for key in KEYS:
                assert self.position[key] == len(self.appended[key]), "records lost"
            stored = self.log.read_all(self.topic)
            assert sorted(r.value for r in stored) == sorted(
                v for values in self.appended.values() for v in values
            )
        finally:
            self.log.close()
            self.cleanup()

    def cleanup(self) -> None:
        pass


class SqliteAgreement(LogAgreement):
    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="tiptrust-agree-")
        super().__init__()

    def open(self) -> EventLog:
        return open_log(f"sqlite:///{self.folder}/log.db")

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def test_sqlite_log_agrees_with_the_model() -> None:
    run_state_machine_as_test(
        SqliteAgreement,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def _kafka_agrees(url: str) -> None:
    class KafkaAgreement(LogAgreement):
        visible_only_after_flush = False
        prompt_poll = False
        poll_timeout = 0.05

        def open(self) -> EventLog:
            return open_log(url)

    # Reopening a consumer costs a group join (~1.2 s on Tansu): few, short histories.
    run_state_machine_as_test(
        KafkaAgreement,
        settings=settings(
            max_examples=3,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.kafka
def test_kafka_log_agrees_with_the_model(tansu: TansuBroker) -> None:
    _kafka_agrees(tansu.url)


@pytest.mark.real_kafka
def test_kafka_log_agrees_with_the_model_on_apache_kafka(real_kafka_url: str) -> None:
    _kafka_agrees(real_kafka_url)
