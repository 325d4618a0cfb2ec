"""The store's driver-level writes an append makes under its lock (trust.store.db), on each
backend: an upsert that only moves a value forward, and an insert that leaves out rows whose key
is taken and says how many it wrote."""

from __future__ import annotations

from sqlalchemy import select

from trust.store.db import insert_values_ignoring, upsert_increasing, writer
from trust.store.eventstore import EventStore
from trust.store.tables import person_keys, positions

_KEY = ("consumer", "topic", "partition")


def _positions(store: EventStore) -> dict[tuple[str, str, int], int]:
    t = positions
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.c.consumer, t.c.topic, t.c.partition, t.c.next_offset))
        return {(c, tp, p): n for c, tp, p, n in rows}


def test_upsert_increasing_inserts_then_moves_only_forward(store: EventStore) -> None:
    with writer(store.engine).begin() as conn:
        upsert_increasing(
            conn, positions, _KEY, "next_offset", [("c", "t", 0, 5), ("c", "t", 1, 2)]
        )
        upsert_increasing(conn, positions, _KEY, "next_offset", [])  # nothing: no statement
    with writer(store.engine).begin() as conn:
        upsert_increasing(
            conn,
            positions,
            _KEY,
            "next_offset",
            [("c", "t", 0, 3), ("c", "t", 1, 9), ("d", "t", 0, 1)],  # 3 < 5: stays at 5
        )
    assert _positions(store) == {("c", "t", 0): 5, ("c", "t", 1): 9, ("d", "t", 0): 1}


def test_insert_values_ignoring_counts_what_it_wrote(store: EventStore) -> None:
    cols = ("person_key_id", "wrapped_key", "created_at_ms", "shredded_at_ms")
    with writer(store.engine).begin() as conn:
        assert (
            insert_values_ignoring(
                conn, person_keys, cols, [("a", b"1", 1, None)], ["person_key_id"]
            )
            == 1
        )
    with writer(store.engine).begin() as conn:
        n = insert_values_ignoring(
            conn,
            person_keys,
            cols,
            [("a", b"2", 2, None), ("b", b"3", 3, None), ("c", None, 4, 4)],
            ["person_key_id"],
        )
        assert n == 2
        assert insert_values_ignoring(conn, person_keys, cols, [], ["person_key_id"]) == 0
    t = person_keys
    with store.engine.connect() as conn:
        got = {
            k: (bytes(w) if w is not None else None, c)
            for k, w, c in conn.execute(
                select(t.c.person_key_id, t.c.wrapped_key, t.c.created_at_ms)
            )
        }
    assert got == {"a": (b"1", 1), "b": (b"3", 3), "c": (None, 4)}  # "a" kept its first row
