"""The event-store conformance suite on SQLite (a temporary file) and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select, text

from trust.store import projections
from trust.store.errors import DuplicateEvent
from trust.store.events import Event, MessageRejected
from trust.store.eventstore import EventStore, Position, open_store

from .builders import accepted
from .conformance import EventStoreConformance


class TestSQLiteEventStore(EventStoreConformance):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"

    def make_store(self) -> EventStore:
        return open_store(f"sqlite:///{self.path}")


@pytest.mark.postgres
class TestPostgresEventStore(EventStoreConformance):
    @pytest.fixture(autouse=True)
    def _schema(self, postgres_schema_url: str) -> None:
        self.url = postgres_schema_url

    def make_store(self) -> EventStore:
        return open_store(self.url)


def test_a_reopened_sqlite_store_resumes_where_it_stopped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.append([accepted()], Position("t", 0, 7), "ingest")
    live = projections.snapshot(store.engine)
    store.close()
    again = open_store(url)  # migrations are a no-op at head
    try:
        assert again.positions("ingest") == {("t", 0): 8}
        assert projections.snapshot(again.engine) == live
        assert len(list(again.read())) == 1
    finally:
        again.close()


def _rejection_at(offset: int) -> MessageRejected:
    return MessageRejected(
        None, "src-a", "duplicate_event", None, "event id already accepted", "t", 0, offset, 1
    )


def test_on_duplicate_stores_a_replacement_for_each_id_already_accepted(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        first = accepted(case_id="c1")
        store.append([first], Position("t", 0, 0), "ingest")
        again = accepted(case_id="c1", event_id=first.event_id)  # stored before
        new = accepted(case_id="c2")
        twice = accepted(case_id="c2", event_id=new.event_id)  # repeats within the batch
        other_source = accepted(source_id="src-b", case_id="c9", event_id=first.event_id)
        refused: list[int] = []

        def refuse(i: int) -> list[Event]:
            refused.append(i)
            return [_rejection_at(i + 1)]

        items = [([again], 1), ([new], 2), ([twice], 3), ([other_source], 4)]
        result = store.append_batch(
            [(evs, Position("t", 0, off)) for evs, off in items], "ingest", on_duplicate=refuse
        )
        assert refused == [0, 2]
        stored = [ev for _, ev in store.read()]
        assert [type(ev).__name__ for ev in stored] == [
            "RecordAccepted",
            "MessageRejected",
            "RecordAccepted",
            "MessageRejected",
            "RecordAccepted",
        ]
        assert len(result.seqs) == 4
        assert store.accepted_among(
            [("src-a", first.event_id), ("src-a", new.event_id), ("src-b", first.event_id)]
        ) == {("src-a", first.event_id), ("src-a", new.event_id), ("src-b", first.event_id)}
        assert store.positions("ingest") == {("t", 0): 5}
        with pytest.raises(ValueError, match="replacement"):
            store.append_batch(
                [([accepted(case_id="c1", event_id=first.event_id)], Position("t", 0, 5))],
                "ingest",
                on_duplicate=lambda i: [accepted(case_id="c7")],
            )
    finally:
        store.close()


def test_effect_commits_with_the_append_and_rolls_back_with_it(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    marker = text("INSERT INTO positions VALUES ('effect', 'x', 0, 1)")
    try:
        store.append_batch([([accepted()], Position("t", 0, 0))], "ingest", effect=lambda c: None)
        store.append_batch(
            [([], Position("t", 0, 1))], "ingest", effect=lambda c: c.execute(marker)
        )
        assert store.positions("effect") == {("x", 0): 1}

        def failing(conn: Connection) -> None:
            conn.execute(text("DELETE FROM positions WHERE consumer = 'effect'"))
            raise RuntimeError("the effect's own failure")

        with pytest.raises(RuntimeError):
            store.append_batch(
                [([accepted(case_id="c2")], Position("t", 0, 2))], "ingest", effect=failing
            )
        assert store.positions("effect") == {("x", 0): 1}  # its write rolled back with the events
        assert store.positions("ingest") == {("t", 0): 2}
        assert len(list(store.read())) == 1
    finally:
        store.close()


def test_an_accepted_records_stored_json_is_byte_for_byte_the_converters() -> None:
    # the text every stored row holds: json.dumps of the converter's dict (its key order, compact,
    # UTF-8), whichever writer made it — orjson, or json for a value orjson cannot write
    import dataclasses
    import json

    from trust.convert import converter
    from trust.store.events import SealedBlob
    from trust.store.stored import _dumps, event_row

    # blobs the version-3 body does not hold (5- and 1-byte nonces): the row is version 2's
    sealed = {
        "v1": SealedBlob("k" * 64, "bm9uY2U=", "Y2lwaGVy"),
        "vé": SealedBlob("j" * 64, "bg==", "Yw=="),
    }
    event = accepted(sealed=sealed)
    expected = converter.unstructure(dataclasses.replace(event, record={}))
    del expected["record"]
    expected["v"] = 2
    text = json.dumps(expected, separators=(",", ":"), ensure_ascii=False)
    assert event_row(event, 1, "t", 0, 0)["payload"] == text
    huge = {"n": 2**70, "sealed_identifiers": sealed}  # beyond 64 bits: json writes it
    assert json.loads(_dumps(huge))["sealed_identifiers"] == expected["sealed_identifiers"]


def test_the_dedupe_query_runs_before_the_write_lock(tmp_path: Path) -> None:
    # which ids were accepted already is asked before the append takes its lock (so two writers
    # do not queue for it), and a duplicate found there is replaced as before
    asked_locked: list[bool] = []

    class Watched(EventStore):
        def _accepted_before(self, keys: Any) -> set[tuple[str, str]]:
            assert self._queue is not None
            asked_locked.append(self._queue._thread.locked())
            return super()._accepted_before(keys)

    store = Watched(open_store(f"sqlite:///{tmp_path / 'store.db'}").engine)
    try:
        first = accepted(case_id="c1")
        store.append([first], Position("t", 0, 0), "ingest")
        again = accepted(case_id="c1", event_id=first.event_id)
        store.append_batch(
            [([again], Position("t", 0, 1))], "ingest", on_duplicate=lambda i: [_rejection_at(1)]
        )
        assert asked_locked == [False, False]
        assert [type(ev).__name__ for _, ev in store.read()] == [
            "RecordAccepted",
            "MessageRejected",
        ]
    finally:
        store.close()


def test_an_id_accepted_after_the_check_fails_the_append_whole(store: EventStore) -> None:
    # a concurrent writer accepts an id between the check (before the lock) and the insert: the
    # unique key refuses it under the lock, the replacement is never asked for, nothing is written
    class Racing(EventStore):
        @staticmethod
        def _accepted_among(conn: Connection, keys: Any) -> set[tuple[str, str]]:
            return set()

    first = accepted(case_id="c1")
    store.append([first], Position("t", 0, 0), "ingest")
    racing = Racing(store.engine)
    asked: list[int] = []

    def refuse(i: int) -> list[Event]:
        asked.append(i)
        return [_rejection_at(i + 1)]

    again = accepted(case_id="c1", event_id=first.event_id)
    with pytest.raises(DuplicateEvent):
        racing.append_batch(
            [([accepted(case_id="c2")], Position("t", 0, 1)), ([again], Position("t", 0, 2))],
            "ingest",
            on_duplicate=refuse,
        )
    assert asked == []
    assert [ev for _, ev in store.read()] == [first]
    assert store.positions("ingest") == {("t", 0): 1}


def test_an_event_row_is_its_values_by_column(tmp_path: Path) -> None:
    from trust.store.stored import EVENT_COLUMNS, event_row, event_values
    from trust.store.tables import stored_events

    events: list[Event] = [accepted(case_id="c1"), _rejection_at(1)]
    for ev in events:
        values = event_values(ev, 7, "t", 0, 3)
        assert event_row(ev, 7, "t", 0, 3) == dict(zip(EVENT_COLUMNS, values, strict=True))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        seqs = store.append_batch(
            [([ev], Position("t", 0, i)) for i, ev in enumerate(events)], "ingest"
        ).seqs
        c = stored_events.c
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(c.seq, *(c[name] for name in EVENT_COLUMNS)).order_by(c.seq)
            ).all()
        assert [r[0] for r in rows] == list(seqs) == [1, 2]
        for row, ev, i in zip(rows, events, range(2), strict=True):
            want = event_values(ev, row.recorded_at_ms, "t", 0, i)
            got = tuple(bytes(v) if isinstance(v, memoryview) else v for v in row[1:])
            assert got == want
    finally:
        store.close()
