"""Followers: positions tracked with effects, never applied twice, rebuilt when their definitions
change — on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection, event, func, select

from trust.follow import Batch, follow
from trust.release.counts import ReleaseCounts
from trust.release.streams import STREAMS
from trust.store.events import RecordAccepted
from trust.store.eventstore import EventStore, FollowerState, Position
from trust.store.tables import release_cell_counts

from .store.builders import accepted, retracted


class Counter:
    """A store follower that counts the events it was given, in its own (here: Python) state."""

    name = "test-counter"
    event_types = frozenset({"RecordAccepted", "RecordRetracted"})

    def __init__(self, version: str = "v1", *, reads_records: bool = True) -> None:
        self.version = version
        self.reads_records = reads_records
        self.seen: list[int] = []
        self.records: list[dict[str, object]] = []
        self.cleared = 0

    def apply(self, conn: Connection, events: Batch) -> None:
        self.seen.extend(seq for seq, _ in events)
        self.records.extend(ev.record for _, ev in events if isinstance(ev, RecordAccepted))

    def clear(self, conn: Connection) -> None:
        self.cleared += 1
        self.seen.clear()


def _append(store: EventStore, n: int, start: int = 0) -> None:
    store.append_batch(
        [([accepted(case_id=f"c{start + i}")], Position("t", 0, start + i)) for i in range(n)],
        "ingest",
    )


def test_each_event_is_handled_once_in_pages(store: EventStore) -> None:
    _append(store, 25)
    c = Counter()
    assert follow(store, c, page=10) == 25
    assert follow(store, c, page=10) == 0
    _append(store, 3, start=100)
    assert follow(store, c, page=10) == 3
    assert c.seen == sorted(set(c.seen)) and len(c.seen) == 28
    assert store.follower_state(c.name).last_seq == store.last_seq()


def test_a_follower_that_reads_no_records_gets_the_case_without_the_body(
    store: EventStore,
) -> None:
    _append(store, 3)
    full, keys_only = Counter(), Counter(reads_records=False)
    keys_only.name = "test-keys-only"
    follow(store, full)
    follow(store, keys_only)
    assert full.seen == keys_only.seen
    assert all(r["case_id"].startswith("c") for r in full.records)
    assert keys_only.records == [{}, {}, {}]


def test_a_position_another_process_moved_is_not_applied_again(store: EventStore) -> None:
    _append(store, 5)
    c = Counter()
    follow(store, c)
    applied = []
    # a second process that read the old position before the first one advanced it
    ok = store.advance_follower(c.name, 0, store.last_seq(), lambda conn: applied.append(1), "v1")
    assert ok is False and applied == []


def test_a_follower_of_another_version_rebuilds_from_zero(store: EventStore) -> None:
    _append(store, 4)
    follow(store, Counter("v1"))
    newer = Counter("v2")
    assert follow(store, newer) == 4  # everything again
    assert newer.cleared == 1
    assert store.follower_state(newer.name).version == "v2"


def test_release_counts_are_rebuilt_when_the_streams_change(store: EventStore) -> None:
    _append(store, 6)
    store.append([retracted(case_id="c0")], Position("t", 0, 50), "ingest")
    counts = ReleaseCounts(STREAMS)
    follow(store, counts)

    def total() -> int:
        with store.engine.connect() as conn:
            return int(conn.execute(select(func.sum(release_cell_counts.c.persons))).scalar_one())

    assert total() == 5 * len(STREAMS)
    changed = ReleaseCounts(STREAMS)
    changed.version = "another definition"
    follow(store, changed)
    assert total() == 5 * len(STREAMS)  # rebuilt from zero, not added on top


def test_the_view_reads_position_end_and_first_page_together(store: EventStore) -> None:
    c = Counter()
    _append(store, 3)
    at_zero = store.follow_view(c.name, c.event_types, 10)
    assert at_zero.state.last_seq == 0 and at_zero.upto == store.last_seq()
    assert at_zero.first_page is None  # nothing read at 0: a follower may build from state
    follow(store, c)
    at_end = store.follow_view(c.name, c.event_types, 10)
    assert at_end.state.last_seq == at_end.upto and at_end.first_page is None
    _append(store, 4, start=50)
    view = store.follow_view(c.name, c.event_types, 3)
    assert view.state == FollowerState(at_end.upto, "v1")
    assert view.first_page is not None
    assert [seq for seq, _ in view.first_page] == [at_end.upto + i for i in (1, 2, 3)]
    assert all(seq <= view.upto for seq, _ in view.first_page)


def test_a_new_event_costs_one_read_and_one_write_transaction(store: EventStore) -> None:
    c = Counter()
    _append(store, 2)
    follow(store, c)
    _append(store, 1, start=10)
    begun: list[Connection] = []

    def on_begin(conn: Connection) -> None:
        begun.append(conn)

    event.listen(store.engine, "begin", on_begin)
    try:
        assert follow(store, c) == 1
    finally:
        event.remove(store.engine, "begin", on_begin)
    assert len(begun) == 2  # the view, then the advance with the follower's effect
    assert follow(store, c) == 0
