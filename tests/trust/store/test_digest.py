"""Streamed digests of the projection tables (what `tiptrust trust rebuild` compares)."""

from __future__ import annotations

import hashlib
import threading

import orjson
from sqlalchemy import Engine, Table, delete, insert, select, update

from trust.store.digest import (
    REBUILT_TABLES,
    TableDigest,
    _snapshots_apart,
    combined,
    differing,
    projection_digests,
    rebuild_check_digest,
    rebuilt_digests,
    rebuilt_digests_meanwhile,
    table_digest,
)
from trust.store.eventstore import EventStore, Position
from trust.store.tables import (
    FOLLOWER_TABLES,
    PROJECTION_TABLES,
    proj_persons,
    proj_records,
    proj_subscriptions,
)

from .builders import accepted, consent, retracted

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


def _typed_digest(engine: Engine, table: Table) -> TableDigest:
    """The digest as first written: SQLAlchemy's typed rows, one hash update per row. A digest
    recorded that way (a backup's manifest) must still compare equal."""
    h = hashlib.sha256()
    rows = 0
    with engine.connect() as conn:
        for row in conn.execute(select(table).order_by(*table.columns)):
            h.update(orjson.dumps(tuple(row), default=str))
            h.update(b"\n")
            rows += 1
    return TableDigest(rows, h.hexdigest())


def test_the_digest_hashes_the_bytes_of_sqlalchemys_typed_rows(backend_store: EventStore) -> None:
    position = Position("tip.inbound", 0, 0)
    backend_store.append(
        [accepted("src-a", "c1", (("v1", "Feminine", 23), ("v2", "Masculine", None)))],
        position,
        "ingest",
    )
    backend_store.append([consent("src-a", "c1", "v2")], Position("tip.inbound", 0, 1), "ingest")
    backend_store.append([retracted("src-a", "c1")], Position("tip.inbound", 0, 2), "ingest")
    backend_store.append([accepted("src-b", "c2")], Position("tip.inbound", 0, 3), "ingest")
    _fill(backend_store, ROWS)
    engine = backend_store.engine
    tables = (*PROJECTION_TABLES, *FOLLOWER_TABLES)
    assert any(table_digest(engine, t).rows for t in (proj_persons, proj_records))
    for table in tables:
        assert table_digest(engine, table) == _typed_digest(engine, table), table.name


def test_the_row_maker_makes_only_the_flag_columns_booleans_and_keeps_nulls() -> None:
    from trust.store.digest import _row_maker

    typed = _row_maker([1, 3], 4)
    assert typed((0, 1, None, 0)) == (0, True, None, False)
    assert typed(("a", None, 2, 5)) == ("a", None, 2, True)
    assert [type(v) for v in typed((1, 0, 1, 1))] == [int, bool, int, bool]
    assert _row_maker([0], 1)((0,)) == (False,)  # a one-column row is still a tuple


def test_the_rebuild_check_covers_exactly_the_tables_a_rebuild_rewrites(
    backend_store: EventStore,
) -> None:
    names = [t.name for t in REBUILT_TABLES]
    assert names == [t.name for t in PROJECTION_TABLES] + [
        "release_person_cells",
        "release_cell_counts",
    ]
    assert not any(n.startswith("link_") for n in names)  # linkage's own state: never rebuilt
    _fill(backend_store, ROWS)
    engine = backend_store.engine
    first = rebuilt_digests(engine)
    assert list(first) == names and first["proj_subscriptions"].rows == 3
    _fill(backend_store, list(reversed(ROWS)))
    assert rebuilt_digests(engine) == first
    _fill(backend_store, [*ROWS[:2], {**ROWS[2], "purpose": "statistics"}])
    assert differing(first, rebuilt_digests(engine)) == ["proj_subscriptions"]
    _fill(backend_store, ROWS[:2])
    fewer = rebuilt_digests(engine)["proj_subscriptions"]
    assert fewer.rows == 2 and fewer != first["proj_subscriptions"]


def test_the_check_digest_finds_a_change_of_one_flag(backend_store: EventStore) -> None:
    backend_store.append(
        [accepted("src-a", "c1", (("v1", "Feminine", 23),))],
        Position("tip.inbound", 0, 0),
        "ingest",
    )
    engine = backend_store.engine
    base = rebuild_check_digest(engine, proj_persons)
    with engine.begin() as conn:
        conn.execute(update(proj_persons).values(disposed=True))
    flagged = rebuild_check_digest(engine, proj_persons)
    assert flagged.rows == base.rows == 1 and flagged.sha256 != base.sha256


def test_digests_taken_meanwhile_are_of_the_state_when_they_were_started(
    backend_store: EventStore,
) -> None:
    engine = backend_store.engine
    assert _snapshots_apart(engine)  # a WAL file or PostgreSQL: the digests run on a thread
    _fill(backend_store, ROWS)
    expected = rebuilt_digests(engine)
    go = threading.Event()
    taking = rebuilt_digests_meanwhile(engine, hash_after=go)
    _fill(backend_store, ROWS[:1])  # committed before the thread reads a row
    go.set()
    assert taking() == expected
    assert differing(expected, rebuilt_digests(engine)) == ["proj_subscriptions"]
