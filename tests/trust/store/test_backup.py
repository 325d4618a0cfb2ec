"""Backup and restore: a consistent copy of the whole store that restores into an empty store
on SQLite or PostgreSQL, refuses what is not an unaltered backup, and never overwrites data."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trust.follow import follow
from trust.release import counts as release_counts
from trust.release.streams import STREAMS
from trust.stewardship.principals import Role, add_principal
from trust.store.backup import BackupError, backup, read_manifest, restore
from trust.store.digest import projection_digests
from trust.store.events import SubscriptionAdded
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import metadata

from .builders import accepted, consent, eid, rejected, retracted


def _fill(store: EventStore, n: int = 30) -> None:
    store.append_batch(
        [([accepted(case_id=f"c{i}", year=2020 + i % 3)], Position("t", 0, i)) for i in range(n)],
        "ingest",
    )
    store.append([retracted(case_id="c1"), consent("src-a", "c2", "v1"), rejected()], None, "x")
    store.append([SubscriptionAdded(eid(), "ministry", "victims_by_year_sex", "s", 1)], None, "op")
    add_principal(store, "ministry", Role.CONSUMER, added_by="op")
    follow(store, release_counts.ReleaseCounts(STREAMS))


def _events(store: EventStore) -> list[object]:
    return [e for _, e in store.read()]


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[EventStore]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    _fill(store)
    try:
        yield store
    finally:
        store.close()


def test_a_backup_restores_into_an_empty_sqlite_store_as_it_was(
    filled: EventStore, tmp_path: Path
) -> None:
    out = tmp_path / "b" / "trust.backup"
    made = backup(filled.engine, out)
    assert out.is_file() and not (tmp_path / "b" / "trust.backup.part").exists()
    assert made.last_seq == filled.last_seq() and made.events == filled.last_seq()
    assert read_manifest(out) == made
    assert set(made.tables) == {t.name for t in metadata.sorted_tables}

    url = f"sqlite:///{tmp_path / 'restored.db'}"
    restore(out, url)
    again = open_store(url)
    try:
        assert _events(again) == _events(filled)
        assert projection_digests(again.engine) == projection_digests(filled.engine)
        # the restored store goes on: a new event takes the next seq
        again.append([retracted(case_id="c3")], None, "x")
        assert again.last_seq() == filled.last_seq() + 1
    finally:
        again.close()


def test_a_backup_never_overwrites_and_a_restore_never_writes_over_data(
    filled: EventStore, tmp_path: Path
) -> None:
    out = tmp_path / "trust.backup"
    backup(filled.engine, out)
    with pytest.raises(BackupError) as exists:
        backup(filled.engine, out)
    assert exists.value.code == "exists"

    other = tmp_path / "other.db"
    store = open_store(f"sqlite:///{other}")
    store.append([retracted(case_id="mine")], None, "x")
    store.close()
    with pytest.raises(BackupError) as busy:
        restore(out, f"sqlite:///{other}")
    assert busy.value.code == "target_not_empty"
    store = open_store(f"sqlite:///{other}")
    try:
        assert [type(e).__name__ for e in _events(store)] == ["RecordRetracted"]
    finally:
        store.close()


def test_an_altered_or_foreign_file_is_refused(filled: EventStore, tmp_path: Path) -> None:
    out = tmp_path / "trust.backup"
    backup(filled.engine, out)
    with sqlite3.connect(out) as conn:  # someone edits a subscription in the backup
        conn.execute("UPDATE proj_subscriptions SET purpose = 'intelligence'")
    with pytest.raises(BackupError) as altered:
        restore(out, f"sqlite:///{tmp_path / 'r.db'}")
    assert altered.value.code == "altered" and "proj_subscriptions" in str(altered.value)

    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError) as foreign:
        read_manifest(junk)
    assert foreign.value.code == "not_a_backup"


def test_the_copy_is_one_instant_while_the_trust_writes(filled: EventStore, tmp_path: Path) -> None:
    stop = threading.Event()

    def write() -> None:
        i = 1000
        while not stop.is_set():
            filled.append_batch([([accepted(case_id=f"w{i}")], Position("t", 0, i))], "ingest")
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        made = backup(filled.engine, tmp_path / "live.backup")
    finally:
        stop.set()
        writer.join()
    with sqlite3.connect(tmp_path / "live.backup") as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM stored_events ORDER BY seq")]
        records = conn.execute("SELECT COUNT(*) FROM proj_records").fetchone()[0]
        accepted_events = conn.execute(
            "SELECT COUNT(*) FROM stored_events WHERE event_type = 'RecordAccepted'"
        ).fetchone()[0]
    assert filled.last_seq() > made.last_seq  # the trust wrote on during the backup
    assert seqs == list(range(1, made.last_seq + 1))  # no gap, nothing after the instant
    assert records == accepted_events  # the projections are of exactly those events


@pytest.mark.postgres
def test_sqlite_and_postgresql_backups_restore_into_each_other(
    filled: EventStore, tmp_path: Path, postgres_schema_url: str
) -> None:
    from_sqlite = tmp_path / "sqlite.backup"
    backup(filled.engine, from_sqlite)
    restore(from_sqlite, postgres_schema_url)
    pg = open_store(postgres_schema_url)
    try:
        assert _events(pg) == _events(filled)
        pg.append([retracted(case_id="c4")], None, "x")  # its sequences were moved on
        assert pg.last_seq() == filled.last_seq() + 1
        made = backup(pg.engine, tmp_path / "pg.backup")
        assert made.source_dialect == "postgresql"
        expected = _events(pg)
    finally:
        pg.close()
    url = f"sqlite:///{tmp_path / 'back.db'}"
    restore(tmp_path / "pg.backup", url)
    back = open_store(url)
    try:
        assert _events(back) == expected
    finally:
        back.close()


@pytest.mark.parametrize("into", ["sqlite", "postgresql"])
def test_a_backup_made_at_an_older_revision_restores_and_is_migrated(
    tmp_path: Path, into: str, request: pytest.FixtureRequest
) -> None:
    """A trust backed up before an upgrade restores with the upgraded code: the copy takes the
    columns the backup's tables have at its revision (not the code's newer ones), then the
    migrations bring the restored store up to the code's revision, filling what they add."""
    from sqlalchemy import select

    from trust.store.db import make_engine, migrate, writer
    from trust.store.tables import proj_subscriptions

    old = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(old, "0010")  # before release review added columns to proj_subscriptions
    with writer(old).begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO proj_subscriptions (consumer, stream, purpose, added_at_ms) "
            "VALUES ('ministry', 'victims_by_year_sex', 'statistics', 1700000000000)"
        )
    out = tmp_path / "old.backup"
    made = backup(old, out)
    old.dispose()
    assert made.revision == "0010"
    assert made.tables["proj_subscriptions"].rows == 1
    assert read_manifest(out) == made

    url = (
        request.getfixturevalue("postgres_schema_url")
        if into == "postgresql"
        else f"sqlite:///{tmp_path / 'restored.db'}"
    )
    restore(out, url)
    again = open_store(url)
    try:
        c = proj_subscriptions.c
        with again.engine.connect() as conn:
            rows = conn.execute(
                select(c.consumer, c.stream, c.added_at_ms, c.approved_by, c.approved_at_ms)
            ).all()
        # the row came across, and the migration after the copy marked it approved as in force
        assert [tuple(r) for r in rows] == [
            (
                "ministry",
                "victims_by_year_sex",
                1700000000000,
                "(before release review)",
                1700000000000,
            )
        ]
    finally:
        again.close()
