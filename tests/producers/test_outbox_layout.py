"""The outbox's version 4 layout, and outboxes of version 3 (and 1) rewritten in it when opened.

Real SQLite files only: the old files are made by the SQL the version 3 publisher ran (written
out below), then opened, read and written by the current :class:`~producers.outbox.Outbox`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path

from producers.outbox import UNRECORDED, Outbox, OutboxEntry
from schemas.envelope import new_event_id

A = "sqlite:///a.db"
B = "sqlite:///b.db"

# what the version 3 outbox created (and version 2: the same tables, user_version 2)
V3_DDL = """
CREATE TABLE IF NOT EXISTS event_ids (
    record_key TEXT NOT NULL,
    digest BLOB NOT NULL,
    event_id BLOB NOT NULL,
    PRIMARY KEY (record_key, digest)
);
CREATE TABLE IF NOT EXISTS envelopes (
    destination TEXT NOT NULL DEFAULT '*',
    event_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    key BLOB,
    envelope BLOB NOT NULL,
    sealed_at_ms INTEGER NOT NULL,
    sent_at_ms INTEGER,
    PRIMARY KEY (destination, event_id)
);
CREATE INDEX IF NOT EXISTS envelopes_pending ON envelopes (sent_at_ms, seq);
CREATE INDEX IF NOT EXISTS envelopes_seq ON envelopes (seq);
"""
# what it ran per batch: ids, then envelopes at the next seqs; marking sent dropped the bytes
V3_ID = "INSERT INTO event_ids VALUES (?, ?, ?)"
V3_PUT = (
    "INSERT OR REPLACE INTO envelopes "
    "(destination, event_id, seq, topic, key, envelope, sealed_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
V3_SENT = (
    "UPDATE envelopes SET sent_at_ms = ?, envelope = x'', key = NULL "
    "WHERE seq BETWEEN ? AND ? AND destination = ? AND sent_at_ms IS NULL"
)


def _digest(i: int) -> bytes:
    return hashlib.sha256(f"record {i}".encode()).digest()


def _v3_outbox(path: Path) -> list[bytes]:
    """A version 3 outbox: 6 records; to A seqs 1-4 sent and 5-6 pending, to B seq 7 pending
    (record 0 again); each put in its own transaction, as the old publisher did."""
    ids = [new_event_id().bytes for _ in range(6)]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA page_size=16384")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V3_DDL)
    db.execute("BEGIN IMMEDIATE")
    db.executemany(V3_ID, [(f"RecordUpsert:C-{i}", _digest(i), e) for i, e in enumerate(ids)])
    db.executemany(
        V3_PUT,
        [
            (A, e, seq, "tip.inbound.police", b"k%d" % seq, b"sealed-a", 1)
            for seq, e in enumerate(ids, 1)
        ],
    )
    db.execute("COMMIT")
    db.execute("BEGIN IMMEDIATE")
    db.execute(V3_PUT, (B, ids[0], 7, "tip.inbound.police", b"k7", b"sealed-b", 2))
    db.execute(V3_SENT, (3, 1, 4, A))
    db.execute("COMMIT")
    db.execute("PRAGMA user_version = 3")
    db.close()
    return ids


def _layout(path: Path) -> tuple[int, str, list[tuple[str, int]], set[str]]:
    with sqlite3.connect(path) as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        (ids_sql,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'event_ids'"
        ).fetchone()
        pk = [(r[1], r[5]) for r in db.execute("PRAGMA table_info(envelopes)") if r[5]]
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    return version, ids_sql, pk, names


def test_a_new_outbox_has_the_version_4_layout(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    version, ids_sql, pk, names = _layout(path)
    assert version == 4
    assert "WITHOUT ROWID" in ids_sql.upper()
    assert pk == [("seq", 1)]  # seq is the row id
    assert "envelopes_seq" not in names and "envelopes_pending" in names


def test_a_version_3_outbox_is_rewritten_in_place_and_works(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    ids = _v3_outbox(path)
    with sqlite3.connect(path) as db:
        before = db.execute(
            "SELECT seq, destination, event_id, topic, key, envelope, sealed_at_ms, sent_at_ms "
            "FROM envelopes ORDER BY seq"
        ).fetchall()
        known_before = sorted(db.execute("SELECT * FROM event_ids").fetchall())
    with Outbox(path) as outbox:
        # what it kept reads the same: per destination, sent and pending, in seq order
        assert outbox.counts(A) == {"sent": 4, "pending": 2}
        assert outbox.counts(B) == {"sent": 0, "pending": 1}
        assert [e.event_id.bytes for e in outbox.pending(A)] == ids[4:]
        assert [(e.event_id.bytes, e.envelope) for e in outbox.pending(B)] == [
            (ids[0], b"sealed-b")
        ]
        assert {e.bytes for e in outbox.already_sent(A, [_uuid(e) for e in ids])} == set(ids)
        assert outbox.already_sent(B, [_uuid(e) for e in ids]) == {_uuid(ids[0])}
        # the same records get the same ids; a changed one a new id
        items = [(f"RecordUpsert:C-{i}", _digest(i)) for i in range(6)]
        items.append(("RecordUpsert:C-0", _digest(99)))
        fresh = new_event_id()
        got = outbox.event_ids(items, iter([fresh]))
        assert [(e.bytes, k) for e, k in got[:6]] == [(e, True) for e in ids]
        assert got[6] == (fresh, False)
        # a new batch follows the highest seq; marking it sent by its range marks only it
        kept = outbox.put(A, [OutboxEntry(fresh, "tip.inbound.police", b"k", b"sealed-new")])
        assert list(kept.seqs) == [8]
        outbox.mark_sent(A, kept)
        assert outbox.counts(A) == {"sent": 5, "pending": 2}
        outbox.mark_sent(A, [_uuid(e) for e in ids[4:]])  # by event id
        assert outbox.counts(A) == {"sent": 7, "pending": 0}
        assert outbox.counts(B) == {"sent": 0, "pending": 1}
    version, ids_sql, pk, names = _layout(path)
    assert (version, pk) == (4, [("seq", 1)]) and "WITHOUT ROWID" in ids_sql.upper()
    assert not names & {"envelopes_old", "event_ids_old", "envelopes_seq"}
    with sqlite3.connect(path) as db:
        after = db.execute(
            "SELECT seq, destination, event_id, topic, key, envelope, sealed_at_ms, sent_at_ms "
            "FROM envelopes WHERE seq <= 7 ORDER BY seq"
        ).fetchall()
        known_after = sorted(
            db.execute("SELECT * FROM event_ids WHERE digest != ?", (_digest(99),)).fetchall()
        )
        assert db.execute(
            "SELECT COUNT(*) FROM envelopes WHERE sent_at_ms IS NOT NULL AND length(envelope) > 0"
        ).fetchone() == (0,)
    # every row and its seq as it was, but for what was marked sent since
    assert [r[:4] + r[6:7] for r in after] == [r[:4] + r[6:7] for r in before]
    assert [r[4:6] for r in after] == [(None, b"")] * 6 + [(b"k7", b"sealed-b")]
    assert known_after == known_before
    with Outbox(path) as outbox:  # opened again: nothing rewritten twice
        assert outbox.counts() == {"sent": 7, "pending": 1}


def test_a_version_1_outbox_with_repeated_seqs_keeps_their_order(tmp_path: Path) -> None:
    """A version 1 file (no destination; seqs not known to be unique) gets seqs 1..n in the
    order of its own (seq, row)."""
    path = tmp_path / "outbox.db"
    ids = [new_event_id().bytes for _ in range(4)]
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE envelopes (event_id BLOB PRIMARY KEY, seq INTEGER NOT NULL, "
            "topic TEXT NOT NULL, key BLOB, envelope BLOB NOT NULL, sealed_at_ms INTEGER NOT NULL,"
            " sent_at_ms INTEGER);"
            "CREATE INDEX envelopes_pending ON envelopes (sent_at_ms, seq);"
        )
        db.executemany(
            "INSERT INTO envelopes VALUES (?, ?, 't', x'', x'65', 1, NULL)",
            [(ids[0], 5), (ids[1], 2), (ids[2], 5), (ids[3], 9)],
        )
    with Outbox(path) as outbox:
        assert outbox.destinations() == [UNRECORDED]
        assert [e.event_id.bytes for e in outbox.pending(A)] == [ids[1], ids[0], ids[2], ids[3]]
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT seq FROM envelopes ORDER BY seq")] == [1, 2, 3, 4]


def test_sealing_again_in_a_batch_of_new_envelopes_replaces_only_that_one(tmp_path: Path) -> None:
    """A batch that holds an envelope sealed again (``--resend``) beside new ones: every one is
    kept in one unbroken range of seqs, the old envelope of that event id is replaced (pending
    again), and the other destination's is untouched."""
    with Outbox(tmp_path / "outbox.db") as outbox:
        old = [OutboxEntry(new_event_id(), "t", b"k", b"first") for _ in range(3)]
        outbox.mark_sent(A, outbox.put(A, old))
        outbox.put(B, old[:1])
        again = OutboxEntry(old[1].event_id, "t", b"k", b"second")
        new = [OutboxEntry(new_event_id(), "t", b"k", b"new") for _ in range(2)]
        kept = outbox.put(A, [new[0], again, new[1]])
        assert list(kept.seqs) == [5, 6, 7]
        assert outbox.counts(A) == {"sent": 2, "pending": 3}
        assert [(e.event_id, e.envelope) for e in outbox.pending(A)] == [
            (new[0].event_id, b"new"),
            (old[1].event_id, b"second"),
            (new[1].event_id, b"new"),
        ]
        assert [e.event_id for e in outbox.pending(B)] == [old[0].event_id]
        outbox.mark_sent(A, kept)
        assert outbox.counts(A) == {"sent": 5, "pending": 0}
        assert outbox.counts(B) == {"sent": 0, "pending": 1}


def test_draw_event_ids_gives_each_ids_stored_bytes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        items = [(f"RecordUpsert:C-{i}", _digest(i)) for i in range(3)]
        ids, raws, known = outbox.draw_event_ids(items, new_event_id)
        assert raws == [e.bytes for e in ids] and known == [False] * 3
        again, raws2, known2 = outbox.draw_event_ids([*items, items[0]], new_event_id)
        assert again == [*ids, ids[0]] and raws2 == [*raws, raws[0]] and all(known2)


def _uuid(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=raw)
