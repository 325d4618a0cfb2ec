"""Streamed digests of the projection tables (what `tiptrust trust rebuild` compares)."""

from __future__ import annotations

from sqlalchemy import delete, insert, update

from trust.store.digest import combined, differing, projection_digests, table_digest
from trust.store.eventstore import EventStore
from trust.store.tables import proj_subscriptions

ROWS = [
    {"consumer": "ministry", "stream": "s1", "purpose": "statistics", "added_at_ms": 1},
    {"consumer": "ministry", "stream": "s2", "purpose": "statistics", "added_at_ms": 2},
    {"consumer": "court", "stream": "s1", "purpose": "research", "added_at_ms": 3},
]


def _fill(store: EventStore, rows: list[dict[str, object]]) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(proj_subscriptions))
        for row in rows:
            conn.execute(insert(proj_subscriptions).values(**row))


def test_equal_tables_give_equal_digests_whatever_the_insert_order(
    backend_store: EventStore,
) -> None:
    _fill(backend_store, ROWS)
    first = projection_digests(backend_store.engine)
    _fill(backend_store, list(reversed(ROWS)))
    again = projection_digests(backend_store.engine)
    assert first == again and differing(first, again) == []
    assert first["proj_subscriptions"].rows == 3
    assert combined(first) == combined(again)


def test_a_changed_value_a_missing_row_and_an_extra_row_are_each_found(
    backend_store: EventStore,
) -> None:
    _fill(backend_store, ROWS)
    engine = backend_store.engine
    base = table_digest(engine, proj_subscriptions)
    with engine.begin() as conn:
        conn.execute(
            update(proj_subscriptions)
            .where(proj_subscriptions.c.stream == "s2")
            .values(purpose="research")
        )
    changed = table_digest(engine, proj_subscriptions)
    assert changed.rows == base.rows and changed.sha256 != base.sha256
    _fill(backend_store, ROWS[:2])
    fewer = table_digest(engine, proj_subscriptions)
    assert fewer.rows == 2 and fewer.sha256 != base.sha256
    _fill(backend_store, [*ROWS, {**ROWS[0], "consumer": "police"}])
    assert table_digest(engine, proj_subscriptions).rows == 4
    before = projection_digests(engine)
    _fill(backend_store, ROWS)
    assert differing(before, projection_digests(engine)) == ["proj_subscriptions"]
