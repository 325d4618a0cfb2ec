"""The producer's durable outbox: stable event ids, and sealed envelopes kept until the log acks.

- **Stable ids.** The event id of a record is remembered by (record key, content digest): the same
  row published again gets the same event id (the trust dedupes by it); a changed row is a new
  event. The digest is SHA-256 of the minimised Avro payload — a local file, never sent. Event ids
  do not depend on the destination: a record published to two logs has one event id.
- **Per destination.** Sealed envelopes and their sent state are kept per *destination* (a stable
  name of the log, see :func:`producers.workflow.destination_of`): publishing to a test log first
  does not make the real log look served.
- **Nothing lost.** Sealed envelopes are written here *before* they go to the log — with the
  event ids of the batch, in one transaction (:meth:`Outbox.transaction`) — and marked sent only
  after the log acknowledged them. A broker outage or a crash leaves them pending;
  :meth:`Outbox.pending` gives them back for the next run to resend.
- **Nothing kept longer than needed.** Once the log acknowledged an envelope its bytes and message
  key are dropped (``secure_delete`` zeroes them in the file): the row stays, so the record still
  counts as sent there, but the outbox no longer grows with everything ever published, and no
  sealed copy of a record outlives its delivery on the agency's disk.

**What it keeps per record, once acknowledged:** in ``event_ids`` the record key (kind and case
reference), the SHA-256 content digest and the event id — what makes a re-publish of the same
export send nothing; in ``envelopes`` one row per destination (event id, seq, topic, when sealed
and sent) with empty envelope bytes and no message key. The file does not shrink when the bytes
are dropped: the emptied rows stay in the pages the envelopes filled (about 1.3 KB per record
in all, measured by ``benchmarks/publish.py --scale``).

**Outboxes written before destinations were recorded** are migrated in place when opened: their
envelopes get the destination :data:`UNRECORDED` (``"*"``, "the log it was written for", which
nobody wrote down). Such rows count for *every* destination — sent means sent wherever this
outbox publishes next, pending means they go to the next log published to — because guessing a
log could only be wrong; ``tiptrust publish --resend`` sends them anywhere again. Their stored
message keys are the clear case references the old publisher used
(:attr:`OutboxEntry.clear_key`); the publisher re-keys them before sending.

**Outboxes of an older layout** (schema versions 1 to 3, in ``PRAGMA user_version``) are
rewritten in the current one (version 4) in the transaction that opens them: every envelope row
with its seq, destination, bytes and sent state, and every remembered event id, as they were.
Version 4 writes less per event: ``seq`` is the envelopes' row id (no index of its own; a
batch's range of seqs is a range of rows), only pending envelopes are indexed, and ``event_ids``
is one b-tree (``WITHOUT ROWID``) instead of a table and its key's index.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import overload

__all__ = ["UNRECORDED", "Kept", "Outbox", "OutboxEntry"]

UNRECORDED = "*"
"""The destination of envelopes written before destinations were recorded: any destination."""

_SCHEMA_VERSION = 4
_PAGE_SIZE = 16384
# version 4: ``seq`` is the row id (the next seq is the table's last row id, a range of seqs is
# a range of rows), one unique index finds an envelope by destination and event id, and only
# pending envelopes are indexed for :meth:`Outbox.pending` (a partial index: a row leaves it
# when it is marked sent). ``event_ids`` is stored in its primary key's order (``WITHOUT
# ROWID``): one b-tree written per id, not a table and an index.
_EVENT_IDS = """
CREATE TABLE IF NOT EXISTS event_ids (
    record_key TEXT NOT NULL,
    digest BLOB NOT NULL,
    event_id BLOB NOT NULL,
    PRIMARY KEY (record_key, digest)
) WITHOUT ROWID
"""
_ENVELOPES = """
CREATE TABLE IF NOT EXISTS envelopes (
    seq INTEGER PRIMARY KEY,
    destination TEXT NOT NULL DEFAULT '*',
    event_id BLOB NOT NULL,
    topic TEXT NOT NULL,
    key BLOB,
    envelope BLOB NOT NULL,
    sealed_at_ms INTEGER NOT NULL,
    sent_at_ms INTEGER,
    UNIQUE (destination, event_id)
)
"""
_SCHEMA = (
    _EVENT_IDS,
    _ENVELOPES,
    "CREATE INDEX IF NOT EXISTS envelopes_pending ON envelopes (sent_at_ms) "
    "WHERE sent_at_ms IS NULL",
)
# an outbox of an earlier version (1: no destination column, one row per event id; 2 and 3:
# ``seq`` a column with an index of its own, ``event_ids`` a table and its key's index) is
# rewritten in the version 4 layout, in the transaction that opens it; its seqs are kept (they
# were handed out under the write lock, so unique), else renumbered in their order
_OLD_INDEXES = ("envelopes_pending", "envelopes_seq")
_COPY_ENVELOPES = (
    "INSERT INTO envelopes "
    "(seq, destination, event_id, topic, key, envelope, sealed_at_ms, sent_at_ms) "
    "SELECT {seq}, {destination}, event_id, topic, key, envelope, sealed_at_ms, sent_at_ms "
    "FROM envelopes_old ORDER BY seq, rowid"
)
_INSERT_ENVELOPES = (
    "INSERT INTO envelopes (destination, event_id, seq, topic, key, envelope, sealed_at_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_REPLACE_ENVELOPES = _INSERT_ENVELOPES.replace("INSERT", "INSERT OR REPLACE", 1)


def _migrate(db: sqlite3.Connection, columns: set[str]) -> None:
    """Rewrite an outbox of version 1 to 3 (``columns``: its envelopes' columns) as version 4."""
    db.execute("ALTER TABLE envelopes RENAME TO envelopes_old")
    for index in _OLD_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {index}")
    db.execute(_ENVELOPES)
    (unique,) = db.execute("SELECT COUNT(*) = COUNT(DISTINCT seq) FROM envelopes_old").fetchone()
    db.execute(
        _COPY_ENVELOPES.format(
            seq="seq" if unique else "NULL",
            destination="destination" if "destination" in columns else "'*'",
        )
    )
    db.execute("DROP TABLE envelopes_old")
    has_ids = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_ids'"
    ).fetchone()
    if has_ids:
        db.execute("ALTER TABLE event_ids RENAME TO event_ids_old")
        db.execute(_EVENT_IDS)
        db.execute("INSERT INTO event_ids SELECT record_key, digest, event_id FROM event_ids_old")
        db.execute("DROP TABLE event_ids_old")


# what an acknowledged envelope keeps: its row (sent where, when), not its bytes or message key
_DROP_ACKNOWLEDGED = (
    "UPDATE envelopes SET envelope = x'', key = NULL "
    "WHERE sent_at_ms IS NOT NULL AND length(envelope) > 0"
)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One sealed envelope, as it goes to the log: its event id, topic, message key and bytes.

    ``clear_key`` is true only for envelopes kept by a publisher older than keyed message keys:
    their ``key`` is a clear reference that must be re-keyed before it is sent.
    """

    event_id: uuid.UUID
    topic: str
    key: bytes | None
    envelope: bytes
    clear_key: bool = False


class Kept(Sequence[uuid.UUID]):
    """What one :meth:`Outbox.put` kept: the event ids of its envelopes, in order, and the one
    range of seqs they were given. Handed back to :meth:`Outbox.mark_sent` of the same outbox and
    destination once the log acknowledged them, it marks them with one statement over the range
    rather than a statement per event id."""

    __slots__ = ("_ids", "destination", "outbox", "seqs")

    def __init__(
        self, outbox: Outbox, destination: str, event_ids: Sequence[uuid.UUID], seqs: range
    ) -> None:
        self.outbox = outbox
        self.destination = destination
        self._ids = event_ids
        self.seqs = seqs

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> uuid.UUID: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[uuid.UUID]: ...
    def __getitem__(self, index: int | slice) -> uuid.UUID | Sequence[uuid.UUID]:
        return self._ids[index]

    def __iter__(self) -> Iterator[uuid.UUID]:
        return iter(self._ids)


def _check(destination: str) -> str:
    if not destination or destination == UNRECORDED:
        raise ValueError("a destination names one log (non-empty, not '*')")
    return destination


class Outbox:
    """A local SQLite file owned by one source's publisher (it may serve several logs)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        # a new file's pages (an existing file keeps its own): a sealed envelope is most of a
        # 4 KiB page, and larger pages cost SQLite less per row written (about 1.5 µs of ~9)
        self._db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(envelopes)")}
            if columns and version < 4:
                _migrate(self._db, columns)
            for statement in _SCHEMA:
                self._db.execute(statement)
            if columns and version < 3:  # version 2 kept acknowledged envelopes: drop them now
                self._db.execute(_DROP_ACKNOWLEDGED)
            if version < _SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._db.close()
            raise
        self._open_transaction = False

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction for what is done inside: :meth:`event_ids`,
        :meth:`already_sent` and :meth:`put` of one batch, committed together (or, on an
        error, none of them: no id is then remembered for an envelope never kept, and nothing
        was sent). It holds the file's write lock throughout, so another publisher sharing the
        file draws its ids and seqs after this batch's, never beside them."""
        if self._open_transaction:
            raise RuntimeError("an outbox transaction is already open")
        self._db.execute("BEGIN IMMEDIATE")
        self._open_transaction = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._open_transaction = False

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Inside :meth:`transaction` as it is, else in a transaction of its own."""
        if self._open_transaction:
            yield
        else:
            with self.transaction():
                yield

    def event_ids(
        self, items: Sequence[tuple[str, bytes]], new_id: Iterator[uuid.UUID]
    ) -> list[tuple[uuid.UUID, bool]]:
        """For each (record key, digest): its event id, and whether it was already known.

        New ids are drawn from ``new_id`` and remembered in the same transaction.
        """
        ids, _, known = self.draw_event_ids(items, new_id.__next__)
        return list(zip(ids, known, strict=True))

    def draw_event_ids(
        self, items: Sequence[tuple[str, bytes]], new_id: Callable[[], uuid.UUID]
    ) -> tuple[list[uuid.UUID], list[bytes], list[bool]]:
        """:meth:`event_ids` as parallel lists, with each id's 16 bytes (as stored): for each
        (record key, digest) its event id, those bytes and whether it was already known; a new
        id is ``new_id()``, remembered in the same transaction."""
        known: dict[tuple[str, bytes], bytes] = {}
        keys = sorted({k for k, _ in items})
        cur = self._db.cursor()
        with self._writing():
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, digest, eid in cur.execute(
                    f"SELECT record_key, digest, event_id FROM event_ids WHERE record_key IN ({marks})",
                    chunk,
                ):
                    known[(key, digest)] = eid
            ids: list[uuid.UUID] = []
            raws: list[bytes] = []
            was_known: list[bool] = []
            fresh: list[tuple[str, bytes, bytes]] = []
            lookup, add_id, add_raw, add_known = (
                known.get,
                ids.append,
                raws.append,
                was_known.append,
            )
            for item in items:
                found = lookup(item)
                if found is not None:
                    add_id(uuid.UUID(bytes=found))
                    add_raw(found)
                    add_known(True)
                else:
                    eid = new_id()
                    raw = known[item] = eid.bytes
                    fresh.append((item[0], item[1], raw))
                    add_id(eid)
                    add_raw(raw)
                    add_known(False)
            cur.executemany("INSERT INTO event_ids VALUES (?, ?, ?)", fresh)
        return ids, raws, was_known

    def already_sent(self, destination: str, event_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these event ids were sealed for ``destination`` (acknowledged or pending).

        Envelopes of an :data:`UNRECORDED` destination count for every destination.
        """
        _check(destination)
        ids = [e.bytes for e in event_ids]
        found: set[uuid.UUID] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for (eid,) in self._db.execute(
                f"SELECT event_id FROM envelopes WHERE destination IN (?, '*') "
                f"AND event_id IN ({marks})",
                [destination, *chunk],
            ):
                found.add(uuid.UUID(bytes=eid))
        return found

    def put(self, destination: str, entries: Sequence[OutboxEntry]) -> Kept:
        """Keep sealed envelopes for ``destination`` durably, before they are handed to the log.

        An envelope sealed again for the same destination and event id (``--resend``) replaces
        the one kept before and is pending again. Their ``seq`` (the order :meth:`pending`
        gives them back in) follows the highest one in the file, read in the same write
        transaction: two publishers sharing the file never hand out the same seq, and one
        ``put`` gets one unbroken range of them. Returns what was kept (their event ids and
        that range), for :meth:`mark_sent` once the log acknowledged them.
        """
        return self._put(
            destination,
            [e.event_id for e in entries],
            [e.event_id.bytes for e in entries],
            [e.topic for e in entries],
            [e.key for e in entries],
            [e.envelope for e in entries],
        )

    def put_sealed(
        self,
        destination: str,
        topic: str,
        event_ids: Sequence[uuid.UUID],
        keys: Sequence[bytes | None],
        envelopes: Sequence[bytes],
        event_id_bytes: Sequence[bytes] | None = None,
    ) -> Kept:
        """:meth:`put` of one topic's envelopes given as parallel lists (a publisher's batch,
        without an :class:`OutboxEntry` made per envelope). ``event_id_bytes``, if given, are
        the event ids' 16 bytes each (as :meth:`draw_event_ids` gave them), not computed again."""
        raw = [e.bytes for e in event_ids] if event_id_bytes is None else event_id_bytes
        return self._put(
            destination, event_ids, raw, itertools.repeat(topic, len(envelopes)), keys, envelopes
        )

    def _put(
        self,
        destination: str,
        event_ids: Sequence[uuid.UUID],
        raw_ids: Iterable[bytes],
        topics: Iterable[str],
        keys: Iterable[bytes | None],
        envelopes: Sequence[bytes],
    ) -> Kept:
        _check(destination)
        n = len(envelopes)
        if len(event_ids) != n:
            raise ValueError("one event id per envelope")
        now = int(time.time() * 1000)
        with self._writing():
            (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM envelopes").fetchone()
            seqs = range(last + 1, last + n + 1)
            # one event id, topic and message key per envelope (else ValueError)
            rows = list(
                zip(
                    itertools.repeat(destination, n),
                    raw_ids,
                    seqs,
                    topics,
                    keys,
                    envelopes,
                    itertools.repeat(now, n),
                    strict=True,
                )
            )
            # a plain insert, unless an envelope of one of these event ids is kept for this
            # destination already (sealed again): then the batch's rows replace those. SQLite
            # inserts several times slower with REPLACE into a table keyed by its row id and a
            # unique index, so REPLACE is only used when it has something to replace.
            self._db.execute("SAVEPOINT put")
            try:
                self._db.executemany(_INSERT_ENVELOPES, rows)
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK TO put")
                self._db.executemany(_REPLACE_ENVELOPES, rows)
            finally:
                self._db.execute("RELEASE put")
        return Kept(self, destination, event_ids, seqs)

    def mark_sent(self, destination: str, event_ids: Sequence[uuid.UUID]) -> None:
        """Record that ``destination`` acknowledged these envelopes, and drop their bytes.

        Given what :meth:`put` returned (for the same destination, once the transaction it was
        in committed), the envelopes that ``put`` kept are marked — by their range of seqs, in one statement; an envelope of those event
        ids kept by another ``put`` since (sealed again, so not the one that was acknowledged)
        stays pending. Given event ids, every unacknowledged envelope of those ids for
        ``destination`` (or for any destination, ``"*"``) is marked.
        """
        _check(destination)
        now = int(time.time() * 1000)
        with self._writing():
            if (
                isinstance(event_ids, Kept)
                and event_ids.outbox is self
                and event_ids.destination == destination
            ):
                if event_ids.seqs:
                    self._db.execute(
                        "UPDATE envelopes SET sent_at_ms = ?, envelope = x'', key = NULL "
                        "WHERE seq BETWEEN ? AND ? AND destination = ? AND sent_at_ms IS NULL",
                        (now, event_ids.seqs[0], event_ids.seqs[-1], destination),
                    )
                return
            self._db.executemany(
                "UPDATE envelopes SET sent_at_ms = ?, envelope = x'', key = NULL "
                "WHERE destination IN (?, '*') AND event_id = ? AND sent_at_ms IS NULL",
                [(now, destination, e.bytes) for e in event_ids],
            )

    def pending(self, destination: str, limit: int = 1000) -> list[OutboxEntry]:
        """Sealed envelopes ``destination`` has not acknowledged, oldest first."""
        _check(destination)
        rows = self._db.execute(
            "SELECT event_id, topic, key, envelope, destination FROM envelopes "
            "WHERE sent_at_ms IS NULL AND destination IN (?, '*') ORDER BY seq LIMIT ?",
            (destination, limit),
        ).fetchall()
        return [
            OutboxEntry(uuid.UUID(bytes=r[0]), r[1], r[2], r[3], clear_key=r[4] == UNRECORDED)
            for r in rows
        ]

    def counts(self, destination: str | None = None) -> dict[str, int]:
        """How many envelopes are sent and pending, for one destination or all of them."""
        where, args = (
            ("", ()) if destination is None else ("WHERE destination IN (?, '*')", (destination,))
        )
        sent, pending = self._db.execute(
            f"SELECT COUNT(sent_at_ms), COUNT(*) - COUNT(sent_at_ms) FROM envelopes {where}", args
        ).fetchone()
        return {"sent": int(sent), "pending": int(pending)}

    def destinations(self) -> list[str]:
        """The destinations this outbox has sealed envelopes for (``"*"`` for unrecorded ones)."""
        return [
            r[0] for r in self._db.execute("SELECT DISTINCT destination FROM envelopes ORDER BY 1")
        ]
