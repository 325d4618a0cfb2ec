"""The producer's durable outbox: stable event ids, and sealed envelopes kept until the log acks.

- **Stable ids.** The event id of a record is remembered by (record key, content digest): the same
  row published again gets the same event id (the trust dedupes by it); a changed row is a new
  event. The digest is SHA-256 of the minimised Avro payload — a local file, never sent.
- **Nothing lost.** Sealed envelopes are written here (one transaction per batch) *before* they go
  to the log, and marked sent only after the log acknowledged them. A broker outage or a crash
  leaves them pending; :meth:`Outbox.pending` gives them back for the next run to resend.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_ids (
    record_key TEXT NOT NULL,
    digest BLOB NOT NULL,
    event_id BLOB NOT NULL,
    PRIMARY KEY (record_key, digest)
);
CREATE TABLE IF NOT EXISTS envelopes (
    event_id BLOB PRIMARY KEY,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    key BLOB,
    envelope BLOB NOT NULL,
    sealed_at_ms INTEGER NOT NULL,
    sent_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS envelopes_pending ON envelopes (sent_at_ms, seq);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    event_id: uuid.UUID
    topic: str
    key: bytes | None
    envelope: bytes


class Outbox:
    """A local SQLite file owned by one source's publisher."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM envelopes").fetchone()
        self._seq = int(row[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def event_ids(
        self, items: Sequence[tuple[str, bytes]], new_id: Iterator[uuid.UUID]
    ) -> list[tuple[uuid.UUID, bool]]:
        """For each (record key, digest): its event id, and whether it was already known.

        New ids are drawn from ``new_id`` and remembered in the same transaction.
        """
        known: dict[tuple[str, bytes], bytes] = {}
        keys = sorted({k for k, _ in items})
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, digest, eid in cur.execute(
                    f"SELECT record_key, digest, event_id FROM event_ids WHERE record_key IN ({marks})",
                    chunk,
                ):
                    known[(key, digest)] = eid
            out: list[tuple[uuid.UUID, bool]] = []
            fresh: list[tuple[str, bytes, bytes]] = []
            for key, digest in items:
                found = known.get((key, digest))
                if found is not None:
                    out.append((uuid.UUID(bytes=found), True))
                else:
                    eid = next(new_id)
                    known[(key, digest)] = eid.bytes
                    fresh.append((key, digest, eid.bytes))
                    out.append((eid, False))
            cur.executemany("INSERT INTO event_ids VALUES (?, ?, ?)", fresh)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return out

    def already_sent(self, event_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these event ids the log has acknowledged (or are sealed and pending)."""
        ids = [e.bytes for e in event_ids]
        found: set[uuid.UUID] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for (eid,) in self._db.execute(
                f"SELECT event_id FROM envelopes WHERE event_id IN ({marks})", chunk
            ):
                found.add(uuid.UUID(bytes=eid))
        return found

    def put(self, entries: Sequence[OutboxEntry]) -> None:
        """Keep sealed envelopes durably, before they are handed to the log."""
        now = int(time.time() * 1000)
        rows = []
        for e in entries:
            self._seq += 1
            rows.append((e.event_id.bytes, self._seq, e.topic, e.key, e.envelope, now))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO envelopes (event_id, seq, topic, key, envelope, sealed_at_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def mark_sent(self, event_ids: Sequence[uuid.UUID]) -> None:
        now = int(time.time() * 1000)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "UPDATE envelopes SET sent_at_ms = ? WHERE event_id = ?",
                [(now, e.bytes) for e in event_ids],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def pending(self, limit: int = 1000) -> list[OutboxEntry]:
        """Sealed envelopes the log has not acknowledged, oldest first."""
        rows = self._db.execute(
            "SELECT event_id, topic, key, envelope FROM envelopes WHERE sent_at_ms IS NULL ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [OutboxEntry(uuid.UUID(bytes=r[0]), r[1], r[2], r[3]) for r in rows]

    def counts(self) -> dict[str, int]:
        sent, pending = self._db.execute(
            "SELECT COUNT(sent_at_ms), COUNT(*) - COUNT(sent_at_ms) FROM envelopes"
        ).fetchone()
        return {"sent": int(sent), "pending": int(pending)}
