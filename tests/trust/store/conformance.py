"""The event store's conformance suite: every backend (SQLite, PostgreSQL) must pass all of it.

Subclass :class:`EventStoreConformance` and implement ``make_store`` returning a fresh, empty,
migrated store; the subclass's tests are collected by pytest (this base is not: no ``Test``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, select

from schemas.errors import Delivery, ReasonCode
from trust.convert import converter
from trust.store import projections
from trust.store.errors import DuplicateEvent
from trust.store.events import Event
from trust.store.eventstore import EventStore, Position
from trust.store.tables import proj_persons, proj_records

from .builders import accepted, consent, disposal, rejected, release, retracted

CONSUMER = "ingest"


def persons_of(store: EventStore, source_id: str, case_id: str) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(proj_persons).where(
                proj_persons.c.source_id == source_id, proj_persons.c.case_id == case_id
            )
        ).mappings()
        return {r["victim_id"]: dict(r) for r in rows}


def record_of(store: EventStore, source_id: str, case_id: str) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = (
            conn.execute(
                select(proj_records).where(
                    proj_records.c.source_id == source_id, proj_records.c.case_id == case_id
                )
            )
            .mappings()
            .first()
        )
        return dict(row) if row is not None else None


def dicts(events: list[Event]) -> list[dict[str, Any]]:
    return [{"type": e.event_type, **converter.unstructure(e)} for e in events]


class EventStoreConformance:
    """What every event-store backend guarantees."""

    def make_store(self) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    def test_round_trip_of_every_event_type(self, store: EventStore) -> None:
        topic = "tip.inbound.src-a"
        written: list[Event] = [
            accepted(),
            consent("src-a", "case-1", "v1"),
            disposal("src-a", "case-1", None),
            retracted(),
            rejected(offset=4),
        ]
        for offset, ev in enumerate(written):
            store.append([ev], Position(topic, 0, offset), CONSUMER)
        trust_made = release()
        store.append([trust_made], None, CONSUMER)
        written.append(trust_made)

        read = list(store.read())
        assert [seq for seq, _ in read] == sorted(seq for seq, _ in read)
        assert [e for _, e in read] == written
        assert dicts([e for _, e in read]) == dicts(written)
        assert store.count_by_type() == {
            "RecordAccepted": 1,
            "ConsentWithdrawn": 1,
            "DisposalRequested": 1,
            "RecordRetracted": 1,
            "MessageRejected": 1,
            "ReleaseIssued": 1,
        }
        assert store.positions(CONSUMER) == {(topic, 0): 5}

    def test_read_pages_after_seq_and_limit(self, store: EventStore) -> None:
        events = [accepted(case_id=f"c{i}") for i in range(2505)]
        store.append_batch([([e], Position("t", 0, i)) for i, e in enumerate(events)], CONSUMER)
        all_read = list(store.read())
        assert [e for _, e in all_read] == events
        seq_10 = all_read[9][0]
        assert [e for _, e in store.read(after_seq=seq_10, limit=3)] == events[10:13]
        assert len(list(store.read(limit=1001))) == 1001
        assert store.last_seq() == all_read[-1][0]

    def test_duplicate_event_id_is_refused_and_nothing_is_written(self, store: EventStore) -> None:
        first = accepted()
        store.append([first], Position("t", 0, 0), CONSUMER)
        assert store.is_accepted(first.source_id, first.event_id)
        before = projections.snapshot(store.engine)

        fresh = accepted(case_id="case-2")
        assert not store.is_accepted(fresh.source_id, fresh.event_id)
        with pytest.raises(DuplicateEvent) as info:
            store.append([fresh, first], Position("t", 0, 1), CONSUMER)
        assert info.value.code is ReasonCode.DUPLICATE_EVENT
        assert info.value.event_id == first.event_id
        assert info.value.delivery == Delivery("t", 0, 1)  # where the re-sent copy was read

        assert [e for _, e in store.read()] == [first]
        assert not store.is_accepted(fresh.source_id, fresh.event_id)
        assert store.positions(CONSUMER) == {("t", 0): 1}
        assert projections.snapshot(store.engine) == before

    def test_event_ids_are_scoped_by_source(self, store: EventStore) -> None:
        # another source signing the same event id is another event: it cannot squat the id
        police = accepted(source_id="police", case_id="case-1")
        forged = accepted(source_id="ngo", case_id="case-1", event_id=police.event_id)
        store.append([forged], Position("t", 0, 0), CONSUMER)
        assert not store.is_accepted("police", police.event_id)
        store.append([police], Position("t", 0, 1), CONSUMER)
        assert store.is_accepted("police", police.event_id)
        assert store.is_accepted("ngo", police.event_id)
        assert store.accepted_among([("police", police.event_id), ("other", police.event_id)]) == {
            ("police", police.event_id)
        }
        assert record_of(store, "police", "case-1") is not None
        assert record_of(store, "ngo", "case-1") is not None

    def test_joined_ids_that_look_alike_are_different_persons(self, store: EventStore) -> None:
        # "CR:2024:7"/"V1" and "CR:2024"/"7:V1" collided when keys were ":"-joined strings
        a = accepted(case_id="CR:2024:7", victims=[("V1", "Feminine", 30)])
        b = accepted(case_id="CR:2024", victims=[("7:V1", "Masculine", 40)])
        store.append_batch([([a], Position("t", 0, 0)), ([b], Position("t", 0, 1))], CONSUMER)
        assert set(persons_of(store, "src-a", "CR:2024:7")) == {"V1"}
        assert set(persons_of(store, "src-a", "CR:2024")) == {"7:V1"}

    def test_duplicate_within_one_append_is_refused(self, store: EventStore) -> None:
        ev = retracted()
        with pytest.raises(DuplicateEvent):
            store.append_batch([([ev], Position("t", 0, 0)), ([ev], Position("t", 0, 1))], CONSUMER)
        assert list(store.read()) == []
        assert store.positions(CONSUMER) == {}

    def test_the_unique_key_refuses_what_a_check_missed(self, store: EventStore) -> None:
        # A concurrent writer can accept an id between our check and our insert; the unique key
        # is the guarantee. Simulate the race with a store whose pre-check sees nothing.
        class RacingStore(EventStore):
            @staticmethod
            def _accepted_among(conn: Connection, event_ids: Any) -> set[str]:
                return set()

        first = accepted()
        store.append([first], Position("t", 0, 0), CONSUMER)
        racing = RacingStore(store.engine)
        with pytest.raises(DuplicateEvent):
            racing.append([accepted(case_id="other"), first], Position("t", 0, 1), CONSUMER)
        assert [e for _, e in store.read()] == [first]
        assert store.positions(CONSUMER) == {("t", 0): 1}
        assert record_of(store, "src-a", "other") is None

    def test_rejections_and_releases_may_repeat_an_id_free_path(self, store: EventStore) -> None:
        # Only inbound accepted events are idempotency-keyed: rejecting the same event twice
        # (e.g. a re-sent bad message) records both rejections.
        bad = rejected()
        store.append([bad], Position("t", 0, 0), CONSUMER)
        store.append([bad], Position("t", 0, 1), CONSUMER)
        assert store.rejection_counts() == {"invalid_record": 2}
        assert not store.is_accepted(bad.source_id or "", bad.event_id or "")

    def test_positions_move_only_forward_and_per_consumer(self, store: EventStore) -> None:
        store.append([accepted(case_id="a")], Position("t", 0, 5), CONSUMER)
        store.append([accepted(case_id="b")], Position("t", 0, 3), CONSUMER)  # a late replay
        store.append([accepted(case_id="c")], Position("t", 1, 0), CONSUMER)
        store.append([accepted(case_id="d")], Position("u", 0, 9), "other-consumer")
        assert store.positions(CONSUMER) == {("t", 0): 6, ("t", 1): 1}
        assert store.positions("other-consumer") == {("u", 0): 10}
        assert store.positions("nobody") == {}
        read = list(store.read())
        assert len(read) == 4

    def test_a_message_with_no_events_still_moves_its_position(self, store: EventStore) -> None:
        result = store.append([], Position("t", 2, 41), CONSUMER)
        assert result.seqs == () and result.last_seq is None
        assert store.positions(CONSUMER) == {("t", 2): 42}

    def test_a_later_version_replaces_the_case_persons(self, store: EventStore) -> None:
        store.append(
            [accepted(victims=[("v1", "Feminine", 23), ("v2", "Masculine", 15)])], None, CONSUMER
        )
        assert set(persons_of(store, "src-a", "case-1")) == {"v1", "v2"}
        latest = accepted(
            victims=[("v2", "Masculine", 16), ("v3", "Unknown", None)],
            forms=["ForcedLabour", "ForcedBegging"],
            year=2025,
        )
        store.append([latest], None, CONSUMER)
        persons = persons_of(store, "src-a", "case-1")
        assert set(persons) == {"v2", "v3"}
        assert persons["v2"]["age_at_identification"] == 16
        assert persons["v2"]["age_group"] == "12-17"
        assert persons["v3"]["age_group"] == "Unknown"
        assert persons["v3"]["forms_of_exploitation"] == "ForcedBegging;ForcedLabour"
        assert persons["v3"]["year_of_exploitation"] == 2025
        assert (persons["v2"]["source_id"], persons["v2"]["case_id"]) == ("src-a", "case-1")
        rec = record_of(store, "src-a", "case-1")
        assert rec is not None
        assert (rec["version"], rec["event_id"], rec["year"], rec["retracted"]) == (
            2,
            latest.event_id,
            2025,
            False,
        )

    def test_retraction_flags_the_case_and_keeps_flags_for_a_reacceptance(
        self, store: EventStore
    ) -> None:
        store.append([accepted(victims=[("v1", "Feminine", 30)])], None, CONSUMER)
        store.append([consent("src-a", "case-1", "v1")], None, CONSUMER)
        store.append([retracted()], None, CONSUMER)
        rec = record_of(store, "src-a", "case-1")
        assert rec is not None and rec["retracted"] is True
        assert persons_of(store, "src-a", "case-1")["v1"]["retracted"] is True

        store.append([accepted(victims=[("v1", "Feminine", 30)])], None, CONSUMER)
        rec = record_of(store, "src-a", "case-1")
        assert rec is not None and (rec["retracted"], rec["version"]) == (False, 2)
        person = persons_of(store, "src-a", "case-1")["v1"]
        assert (person["retracted"], person["consent_withdrawn"]) == (False, True)

    def test_retracting_an_unknown_case_records_it_retracted(self, store: EventStore) -> None:
        store.append([retracted(case_id="never-seen")], None, CONSUMER)
        rec = record_of(store, "src-a", "never-seen")
        assert rec is not None and (rec["retracted"], rec["version"]) == (True, 0)

    def test_consent_and_disposal_set_flags(self, store: EventStore) -> None:
        victims = [("v1", "Feminine", 30), ("v2", "Feminine", 8)]
        store.append([accepted(case_id="c1", victims=victims)], None, CONSUMER)
        store.append([accepted(case_id="c2", victims=victims)], None, CONSUMER)
        store.append(
            [
                consent("src-a", "c1", "v2"),
                disposal("src-a", "c1", "v1"),
                disposal("src-a", "c2", None),
                consent("src-a", "c1", "nobody"),  # unknown victim: no effect
            ],
            None,
            CONSUMER,
        )
        c1 = persons_of(store, "src-a", "c1")
        c2 = persons_of(store, "src-a", "c2")
        assert (c1["v1"]["disposed"], c1["v1"]["consent_withdrawn"]) == (True, False)
        assert (c1["v2"]["disposed"], c1["v2"]["consent_withdrawn"]) == (False, True)
        assert c1["v2"]["age_group"] == "0-11"
        assert all(p["disposed"] for p in c2.values())

    def test_rejection_counts(self, store: EventStore) -> None:
        store.append_batch(
            [
                ([rejected(reason="bad_signature", offset=0)], Position("t", 0, 0)),
                ([rejected(reason="invalid_record", offset=1)], Position("t", 0, 1)),
                ([rejected(reason="invalid_record", offset=2)], Position("t", 0, 2)),
                ([accepted()], Position("t", 0, 3)),
            ],
            CONSUMER,
        )
        assert store.rejection_counts() == {"bad_signature": 1, "invalid_record": 2}
        assert store.positions(CONSUMER) == {("t", 0): 4}

    def test_releases_are_projected(self, store: EventStore) -> None:
        r1, r2 = release(sequence=1), release(sequence=2)
        store.append([r1, r2], None, CONSUMER)
        snap = projections.snapshot(store.engine)["proj_releases"]
        assert [(c, s, q, rid) for c, s, q, rid, *_ in snap] == [
            ("", "sdg-16-2-2", 1, r1.release_id),
            ("", "sdg-16-2-2", 2, r2.release_id),
        ]

    def test_batch_append_writes_every_message_and_the_furthest_positions(
        self, store: EventStore
    ) -> None:
        items: list[tuple[list[Event], Position]] = []
        for i in range(300):
            partition = i % 3
            ev: Event = (
                rejected(offset=i) if i % 10 == 0 else accepted(case_id=f"c{i % 50}")
            )  # repeated cases: later versions within the same batch
            items.append(([ev], Position("tip.inbound.src-a", partition, i)))
        result = store.append_batch(items, CONSUMER)
        assert len(result.seqs) == 300 and list(result.seqs) == sorted(result.seqs)
        assert [e for _, e in store.read()] == [evs[0] for evs, _ in items]
        assert store.positions(CONSUMER) == {
            ("tip.inbound.src-a", 0): 298,
            ("tip.inbound.src-a", 1): 299,
            ("tip.inbound.src-a", 2): 300,
        }
        assert store.rejection_counts() == {"invalid_record": 30}
        # c1 got versions at i = 1, 51, 101, 151, 201, 251
        rec = record_of(store, "src-a", "c1")
        assert rec is not None and rec["version"] == 6
        live = projections.snapshot(store.engine)
        assert store.rebuild_projections() == 300
        assert projections.snapshot(store.engine) == live

    def test_concurrent_appenders_get_unique_ordered_seqs(self, store: EventStore) -> None:
        other = EventStore(store.engine)  # a second appender on the same database
        errors: list[BaseException] = []

        def work(s: EventStore, partition: int) -> None:
            try:
                for i in range(40):
                    s.append(
                        [accepted(case_id=f"p{partition}-{i}")],
                        Position("t", partition, i),
                        CONSUMER,
                    )
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s, p)) for p, s in enumerate([store, other])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        seqs = [seq for seq, _ in store.read()]
        assert len(seqs) == 80 and len(set(seqs)) == 80
        assert store.positions(CONSUMER) == {("t", 0): 40, ("t", 1): 40}

    def test_racing_duplicates_are_accepted_exactly_once(self, store: EventStore) -> None:
        same = accepted()
        outcomes: list[str] = []
        barrier = threading.Barrier(4)

        def work(offset: int) -> None:
            barrier.wait()
            try:
                store.append([same], Position("t", 0, offset), CONSUMER)
                outcomes.append("ok")
            except DuplicateEvent:
                outcomes.append("dup")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["dup", "dup", "dup", "ok"]
        assert [e for _, e in store.read()] == [same]

    def test_rebuild_gives_the_live_projections(self, store: EventStore) -> None:
        store.append([accepted(case_id="c1", victims=[("v1", "Feminine", 30)])], None, CONSUMER)
        store.append([accepted(case_id="c2", victims=[("v1", "Masculine", 50)])], None, CONSUMER)
        store.append([consent("src-a", "c1", "v1"), retracted(case_id="c2")], None, CONSUMER)
        store.append([accepted(case_id="c2", victims=[("v9", "Feminine", 12)])], None, CONSUMER)
        store.append([disposal("src-a", "c2", "v9"), rejected(), release()], None, CONSUMER)
        live = projections.snapshot(store.engine)
        assert sum(len(rows) for rows in live.values()) > 0
        assert store.rebuild_projections() == 8
        assert projections.snapshot(store.engine) == live
