"""The EventLog conformance suite, subclassed once per backend.

A subclass provides ``make_log()`` (a new handle on the SAME log each call, so reopening can
be tested) and declares ``capabilities``. A capability changes what a test expects (it never
skips a test):

* ``multi_member_groups`` - consumers of one group share its partitions (Kafka). Without
  it, a group has one member and a second live member also reads everything (SQLite).
* ``multi_process_writers`` - several processes may append to the same log (both).
* ``delete_records`` - ``delete_before`` deletes (SQLite, Apache Kafka). Without it the backend
  must refuse with ``DeleteUnsupported`` and keep every record (Tansu drops DeleteRecords).

Broker gaps that the port hides (Tansu's wrong ListOffsets high watermark) are covered by
tests that always run: ``at_end`` must never claim "caught up" early.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from transport import DeleteUnsupported, DeliveryFailed, EventLog, LogConsumer, LogRecord

KNOWN_CAPABILITIES = frozenset({"multi_member_groups", "multi_process_writers", "delete_records"})


def drain(
    consumer: LogConsumer, *, timeout: float = 20.0, max_records: int = 500
) -> list[LogRecord]:
    """Poll until the consumer is caught up (``at_end``); fail if that takes over ``timeout``."""
    out: list[LogRecord] = []
    deadline = time.monotonic() + timeout
    while True:
        out += consumer.poll(max_records=max_records, timeout=0.1)
        if consumer.at_end():
            return out
        assert time.monotonic() < deadline, f"not caught up after {timeout}s ({len(out)} read)"


def next_positions(records: list[LogRecord]) -> dict[tuple[str, int], int]:
    """The positions to commit after processing ``records``."""
    positions: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        positions[key] = max(positions.get(key, 0), r.offset + 1)
    return positions


def values(records: list[LogRecord]) -> list[bytes]:
    return [r.value for r in records]


class EventLogConformance(ABC):
    """Tests every EventLog backend must pass. Subclass, implement ``make_log``."""

    capabilities: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def make_log(self) -> EventLog:
        """Open the backend's log under test (same log on every call)."""

    # -- fixtures ---------------------------------------------------------------------

    @pytest.fixture
    def log(self) -> Iterator[EventLog]:
        with self.make_log() as log:
            yield log

    @pytest.fixture
    def topic(self, log: EventLog, new_name: Callable[[str], str]) -> str:
        name = new_name("topic")
        log.create_topic(name, 1)
        return name

    def test_declares_known_capabilities(self) -> None:
        assert self.capabilities <= KNOWN_CAPABILITIES

    # -- appending and reading back ---------------------------------------------------

    def test_round_trip_is_byte_exact(self, log: EventLog, new_name: Callable[[str], str]) -> None:
        topic = new_name("rt")
        log.create_topic(topic, 3)
        sent = [
            (b"k1", b"\x00\xffvalue-1", [("h", b"a"), ("h", b"b"), ("empty", b"")]),
            (None, b"", []),
            (b"k2", bytes(range(256)), [("trace", b"\x00\x01")]),
            (b"", b"empty key", [("\u00e9t\u00e9", b"utf8-name")]),
        ]
        for key, value, headers in sent:
            log.append(topic, value, key=key, headers=headers)
        log.flush()
        got = log.read_all(topic)
        assert Counter((r.key, r.value, r.headers) for r in got) == Counter(
            (k, v, tuple(h)) for k, v, h in sent
        )
        now_ms = time.time() * 1000
        for r in got:
            assert r.topic == topic
            assert 0 <= r.partition < 3
            assert abs(r.timestamp_ms - now_ms) < 120_000
        assert [(r.partition, r.offset) for r in got] == sorted(
            (r.partition, r.offset) for r in got
        )

    def test_offsets_are_dense_from_zero_per_partition(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        topic = new_name("dense")
        log.create_topic(topic, 3)
        for i in range(90):
            log.append(topic, f"v{i}".encode(), key=f"k{i % 9}".encode())
        log.flush()
        by_partition: dict[int, list[int]] = defaultdict(list)
        for r in log.read_all(topic):
            by_partition[r.partition].append(r.offset)
        assert sum(len(o) for o in by_partition.values()) == 90
        for offsets in by_partition.values():
            assert offsets == list(range(len(offsets)))

    def test_delete_before_removes_a_prefix_for_every_reader(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        topic = new_name("del")
        log.create_topic(topic, 1)
        for i in range(10):
            log.append(topic, f"v{i}".encode())
        log.flush()
        old_group = new_name("g")
        group = log.consumer(old_group, [topic])
        assert len(drain(group)) == 10
        group.commit({(topic, 0): 3})  # as if it had processed three
        group.close()
        if "delete_records" not in self.capabilities:
            with pytest.raises(DeleteUnsupported):
                log.delete_before(topic, 0, 6)
            assert [r.offset for r in log.read_all(topic)] == list(range(10))
            return
        assert log.delete_before(topic, 0, 6) == 6
        assert log.delete_before(topic, 0, 2) == 6  # never back
        assert [r.offset for r in log.read_all(topic)] == [6, 7, 8, 9]
        # a group committed below the cut, and a new one, both go on from the earliest kept
        for name in (old_group, new_name("g2")):
            c = log.consumer(name, [topic])
            assert values(drain(c)) == [b"v6", b"v7", b"v8", b"v9"]
            c.close()
        # offsets are never handed out again, even once everything is deleted
        assert log.delete_before(topic, 0, 10) == 10
        log.append(topic, b"next")
        log.flush()
        assert [(r.offset, r.value) for r in log.read_all(topic)] == [(10, b"next")]

    def test_same_key_same_partition_in_append_order(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        topic = new_name("keys")
        log.create_topic(topic, 4)
        for i in range(40):
            log.append(topic, f"{i % 5}:{i}".encode(), key=f"key-{i % 5}".encode())
        log.flush()
        partitions: dict[bytes, set[int]] = defaultdict(set)
        order: dict[bytes, list[int]] = defaultdict(list)
        for r in log.read_all(topic):
            assert r.key is not None
            partitions[r.key].add(r.partition)
            order[r.key].append(int(r.value.split(b":")[1]))
        assert all(len(p) == 1 for p in partitions.values())
        assert all(seq == sorted(seq) and len(seq) == 8 for seq in order.values())

    def test_append_creates_a_missing_topic(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        topic = new_name("auto")
        log.append(topic, b"x")
        log.flush()
        assert topic in log.list_topics()
        assert values(log.read_all(topic)) == [b"x"]

    def test_create_topic_is_idempotent(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        topic = new_name("idem")
        log.create_topic(topic, 2)
        log.create_topic(topic, 2)
        log.append(topic, b"a")
        log.flush()
        assert log.list_topics(topic) == [topic]

    def test_list_topics_by_prefix_sorted(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        prefix = new_name("pfx") + "."
        names = [prefix + s for s in ("zeta", "alpha", "mid")]
        for name in names:
            log.create_topic(name)
        assert log.list_topics(prefix) == sorted(names)
        assert set(names) <= set(log.list_topics())
        assert log.list_topics(prefix + "nothing") == []

    def test_partitions_of_a_topic(self, log: EventLog, new_name: Callable[[str], str]) -> None:
        name = new_name("parts")
        assert log.partitions(name) == 0
        log.create_topic(name, 3)
        assert log.partitions(name) == 3

    def test_read_all_of_unknown_topic_is_empty(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        assert log.read_all(new_name("never")) == []

    def test_flush_with_nothing_pending(self, log: EventLog) -> None:
        log.flush()
        log.flush(timeout=1.0)

    def test_large_values_survive(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        big = [bytes([i]) * 1_000_000 for i in range(3)]
        for i, value in enumerate(big):
            log.append(topic, value, key=f"big{i}".encode())
        log.flush()
        assert values(log.read_all(topic)) == big
        consumer = log.consumer(new_name("g"), [topic])
        try:
            assert values(drain(consumer)) == big
        finally:
            consumer.close()

    def test_many_small_messages_arrive_exactly_once(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        topic = new_name("many")
        log.create_topic(topic, 2)
        sent = [f"m{i:05d}".encode() for i in range(5000)]
        for i, value in enumerate(sent):
            log.append(topic, value, key=str(i % 13).encode())
        log.flush()
        consumer = log.consumer(new_name("g"), [topic])
        try:
            got = drain(consumer, max_records=1000)
        finally:
            consumer.close()
        assert Counter(values(got)) == Counter(sent)

    # -- consumer groups ----------------------------------------------------------------

    def test_group_resumes_after_commit(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        group = new_name("g")
        for i in range(20):
            log.append(topic, f"a{i}".encode())
        log.flush()
        first = log.consumer(group, [topic])
        got = drain(first)
        assert values(got) == [f"a{i}".encode() for i in range(20)]
        first.commit(next_positions(got))
        assert first.committed() == {(topic, 0): 20}
        first.close()

        for i in range(10):
            log.append(topic, f"b{i}".encode())
        log.flush()
        second = log.consumer(group, [topic])
        try:
            assert second.committed() == {(topic, 0): 20}
            assert values(drain(second)) == [f"b{i}".encode() for i in range(10)]
        finally:
            second.close()

    def test_uncommitted_records_are_redelivered(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        group = new_name("g")
        for i in range(10):
            log.append(topic, f"r{i}".encode())
        log.flush()
        first = log.consumer(group, [topic])
        got = drain(first)
        assert len(got) == 10
        first.commit({(topic, 0): 4})  # processed only the first four
        first.close()

        second = log.consumer(group, [topic])
        try:
            assert values(drain(second)) == [f"r{i}".encode() for i in range(4, 10)]
        finally:
            second.close()

    def test_a_new_group_starts_at_the_earliest_record(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        for i in range(5):
            log.append(topic, f"e{i}".encode())
        log.flush()
        consumer = log.consumer(new_name("g"), [topic])
        try:
            assert consumer.committed() == {}
            assert [r.offset for r in drain(consumer)] == [0, 1, 2, 3, 4]
        finally:
            consumer.close()

    def test_groups_are_independent(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        for i in range(8):
            log.append(topic, f"i{i}".encode())
        log.flush()
        a = log.consumer(new_name("a"), [topic])
        b = log.consumer(new_name("b"), [topic])  # created early: both groups join at once
        got = drain(a)
        a.commit(next_positions(got))
        a.close()
        try:
            assert b.committed() == {}
            assert values(drain(b)) == values(got)
        finally:
            b.close()

    def test_closing_an_unused_consumer_does_not_block_its_group(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        # On Tansu a member leaving while its JoinGroup is held wedged the group for good.
        group = new_name("g")
        log.append(topic, b"only")
        log.flush()
        log.consumer(group, [topic]).close()
        consumer = log.consumer(group, [topic])
        try:
            assert values(drain(consumer)) == [b"only"]
        finally:
            consumer.close()

    def test_seek_replays_from_an_offset(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        for i in range(12):
            log.append(topic, f"s{i}".encode())
        log.flush()
        consumer = log.consumer(new_name("g"), [topic])
        try:
            assert len(drain(consumer)) == 12
            consumer.seek(topic, 0, 7)
            assert not consumer.at_end()
            assert [r.offset for r in drain(consumer)] == [7, 8, 9, 10, 11]
        finally:
            consumer.close()

    def test_seek_right_after_creation_resumes_from_a_stored_position(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        group = new_name("g")
        for i in range(12):
            log.append(topic, f"s{i}".encode())
        log.flush()
        consumer = log.consumer(group, [topic])
        consumer.commit({(topic, 0): 2})  # the group's commit lags the caller's own store
        consumer.close()
        consumer = log.consumer(group, [topic])
        try:
            consumer.seek(topic, 0, 9)
            assert [r.offset for r in drain(consumer)] == [9, 10, 11]
            assert consumer.committed() == {(topic, 0): 2}  # seek does not commit
        finally:
            consumer.close()

    def test_consumer_reads_several_topics(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        t1, t2 = new_name("x"), new_name("y")
        log.create_topic(t1, 2)
        log.create_topic(t2, 1)
        for i in range(6):
            log.append(t1, f"x{i}".encode(), key=str(i).encode())
            log.append(t2, f"y{i}".encode())
        log.flush()
        consumer = log.consumer(new_name("g"), [t1, t2])
        try:
            got = drain(consumer)
            assert sorted(values(got)) == sorted(
                [f"x{i}".encode() for i in range(6)] + [f"y{i}".encode() for i in range(6)]
            )
            consumer.commit(next_positions(got))
            assert sum(consumer.committed().values()) == 12
        finally:
            consumer.close()

    def test_two_members_of_one_group(self, log: EventLog, new_name: Callable[[str], str]) -> None:
        topic, group = new_name("mm"), new_name("g")
        log.create_topic(topic, 2)
        sent = [f"p{i}".encode() for i in range(40)]
        for i, value in enumerate(sent):
            log.append(topic, value, key=str(i).encode())
        log.flush()
        a, b = log.consumer(group, [topic]), log.consumer(group, [topic])
        try:
            got_a: list[LogRecord] = []
            got_b: list[LogRecord] = []
            deadline = time.monotonic() + 20
            while not (a.at_end() and b.at_end()) and time.monotonic() < deadline:
                got_a += a.poll(timeout=0.05)
                got_b += b.poll(timeout=0.05)
            # Let a late rebalance settle, then take what is left.
            for _ in range(3):
                got_a += a.poll(timeout=0.05)
                got_b += b.poll(timeout=0.05)
        finally:
            a.close()
            b.close()
        if "multi_member_groups" in self.capabilities:
            # Shared: together they read everything, and each partition went to one member
            # once the group settled.
            assert Counter(values(got_a) + values(got_b)) >= Counter(sent)
            assert set(values(got_a) + values(got_b)) == set(sent)
        else:
            # One member per group: a second live member reads everything too.
            assert Counter(values(got_a)) == Counter(sent)
            assert Counter(values(got_b)) == Counter(sent)

    # -- caught up --------------------------------------------------------------------------

    def test_at_end_once_caught_up(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        consumer = log.consumer(new_name("g"), [topic])
        try:
            assert not consumer.at_end()  # nothing polled yet
            assert drain(consumer) == []  # an empty topic is caught up too
            log.append(topic, b"late")
            log.flush()
            got: list[LogRecord] = []
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                got = consumer.poll(timeout=0.2)
            assert values(got) == [b"late"]
            assert values(drain(consumer)) == []
            assert consumer.at_end()
        finally:
            consumer.close()

    def test_own_append_ends_caught_up(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        # Once caught up, an append this log has flushed is past the end the consumer saw:
        # "caught up" after a later poll includes it (on Kafka, the EOF the consumer holds is
        # from a fetch that began before the append, and may answer without it).
        consumer = log.consumer(new_name("g"), [topic])
        try:
            assert drain(consumer) == []
            consumer.poll(timeout=0.2)  # a fetch is waiting at the end
            log.append(topic, b"late")
            log.flush()
            assert values(drain(consumer)) == [b"late"]
            assert consumer.at_end()
        finally:
            consumer.close()

    def test_at_end_never_claims_caught_up_early(
        self, log: EventLog, new_name: Callable[[str], str]
    ) -> None:
        # Tansu's ListOffsets returns wrong high watermarks; at_end must not depend on them.
        topic = new_name("wm")
        log.create_topic(topic, 1)
        for i in range(3000):
            log.append(topic, i.to_bytes(4, "big"))
        log.flush()
        consumer = log.consumer(new_name("g"), [topic])
        try:
            seen = 0
            deadline = time.monotonic() + 20
            while seen < 3000:
                assert time.monotonic() < deadline
                seen += len(consumer.poll(max_records=100, timeout=0.2))
                if seen < 3000:
                    assert not consumer.at_end(), f"at_end after {seen} of 3000"
            assert values(drain(consumer)) == []
        finally:
            consumer.close()

    # -- failures and lifetime --------------------------------------------------------------

    def test_delivery_failed_carries_count_not_values(self, log: EventLog) -> None:
        # Backends provide the failure in ``provoke_delivery_failure``.
        secret = b"SECRET-VALUE-123"
        try:
            self.provoke_delivery_failure(secret)
        except DeliveryFailed as exc:
            assert exc.failed >= 1
            assert exc.code
            assert "SECRET" not in str(exc) and "SECRET" not in repr(exc)
        else:
            pytest.fail("DeliveryFailed not raised")

    @abstractmethod
    def provoke_delivery_failure(self, value: bytes) -> None:
        """Append ``value`` so that its delivery fails for real, then flush."""

    def test_reopen_keeps_records_and_commits(self, new_name: Callable[[str], str]) -> None:
        topic, group = new_name("dur"), new_name("g")
        with self.make_log() as log:
            log.create_topic(topic, 2)
            for i in range(30):
                log.append(topic, f"d{i}".encode(), key=str(i).encode())
            log.flush()
            before = log.read_all(topic)
            for i in range(5):  # close() flushes what is pending
                log.append(topic, f"late{i}".encode(), key=str(i).encode())
            consumer = log.consumer(group, [topic])
            consumer.commit({(topic, 0): 1, (topic, 1): 1})
            consumer.close()
        with self.make_log() as log:
            after = log.read_all(topic)
            kept = {(r.partition, r.offset, r.key, r.value, r.headers) for r in after}
            assert {(r.partition, r.offset, r.key, r.value, r.headers) for r in before} <= kept
            assert len(before) == 30
            assert len(after) == 35
            consumer = log.consumer(group, [topic])
            try:
                assert consumer.committed() == {(topic, 0): 1, (topic, 1): 1}
            finally:
                consumer.close()

    def test_closed_log_refuses_use(self, new_name: Callable[[str], str]) -> None:
        from transport import LogUnavailable

        log = self.make_log()
        log.close()
        log.close()  # idempotent
        with pytest.raises(LogUnavailable) as info:
            log.append(new_name("closed"), b"x")
        assert info.value.code == "log_closed"
