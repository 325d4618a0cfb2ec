"""Embedded event log: a durable, partitioned log in one SQLite file (SQLAlchemy 2 Core).

The default backend: the demo and single-machine deployments need no server. Several
processes (say, a publisher and a trust worker) may share the file: the journal is WAL,
every write transaction starts with ``BEGIN IMMEDIATE`` (so offsets are assigned under the
database's write lock and stay dense per partition), ``synchronous=FULL`` makes a returned
flush durable, and ``busy_timeout`` lets a writer wait for another's lock.

Consumer groups here have ONE member: a consumer gets every partition of its topics, and two
live consumers of one group would both read everything. Sharing partitions between members
of a group is a Kafka-backend feature (capability ``multi_member_groups``).
"""

from __future__ import annotations

import itertools
import sqlite3
import struct
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from transport.errors import DeliveryFailed, LogUnavailable, UnsupportedLogURL
from transport.log import LogRecord

__all__ = ["SqliteConsumer", "SqliteLog"]

_metadata = MetaData()

topics_table = Table(
    "topics",
    _metadata,
    Column("name", String, primary_key=True),
    Column("partitions", Integer, nullable=False),
)

messages_table = Table(
    "messages",
    _metadata,
    Column("topic", String, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=False),
    Column("headers", LargeBinary, nullable=False),
    Column("ts", BigInteger, nullable=False),
)

starts_table = Table(
    "partition_starts",
    _metadata,
    Column("topic", String, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("start_offset", BigInteger, nullable=False),
)
"""Where a partition starts once records were deleted below it (its offsets never go back)."""

group_offsets_table = Table(
    "group_offsets",
    _metadata,
    Column("group", String, primary_key=True),
    Column("topic", String, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

_IMMEDIATE = "tiptrust_begin_immediate"
_INSERT_MESSAGES = (
    'INSERT INTO messages (topic, "partition", "offset", key, value, headers, ts) '
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_MAX_OFFSET = 'SELECT MAX("offset") FROM messages WHERE topic = ? AND "partition" = ?'
_START_OFFSET = 'SELECT start_offset FROM partition_starts WHERE topic = ? AND "partition" = ?'
_PAGE_SIZE = 16384
_U32 = struct.Struct(">I")

# One buffered append: topic, partition, key, value, encoded headers, timestamp (ms).
_Pending = tuple[str, int, bytes | None, bytes, bytes, int]


# a lone header's bytes before its value, by its name and the value's length (a producer sends
# one ``event_id`` of 16 bytes with every message: these are its 20 bytes, made once)
_ONE_HEADER: dict[tuple[str, int], bytes] = {}


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytes:
    """Headers as bytes: a count, then per header its length-prefixed UTF-8 name and value."""
    if not headers:
        return b""
    if len(headers) == 1:
        name, value = headers[0]
        if type(value) is bytes and type(name) is str:
            shape = (name, len(value))
            prefix = _ONE_HEADER.get(shape)
            if prefix is None:
                raw = name.encode("utf-8")
                prefix = _U32.pack(1) + _U32.pack(len(raw)) + raw + _U32.pack(len(value))
                if len(_ONE_HEADER) < 64:
                    _ONE_HEADER[shape] = prefix
            return prefix + value
    parts = [_U32.pack(len(headers))]
    for name, value in headers:
        raw_name = str(name).encode("utf-8")
        if type(value) is not bytes:
            value = _check_bytes("header value", value)
        parts += [_U32.pack(len(raw_name)), raw_name, _U32.pack(len(value)), value]
    return b"".join(parts)


def decode_headers(raw: bytes) -> tuple[tuple[str, bytes], ...]:
    """Inverse of :func:`encode_headers`."""
    if not raw:
        return ()
    view = memoryview(raw)
    (count,) = _U32.unpack_from(view, 0)
    pos = 4
    out: list[tuple[str, bytes]] = []
    for _ in range(count):
        (n,) = _U32.unpack_from(view, pos)
        name = bytes(view[pos + 4 : pos + 4 + n]).decode("utf-8")
        pos += 4 + n
        (m,) = _U32.unpack_from(view, pos)
        out.append((name, bytes(view[pos + 4 : pos + 4 + m])))
        pos += 4 + m
    return tuple(out)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_bytes(what: str, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, got {type(value).__name__}")


class SqliteLog:
    """An :class:`~transport.log.EventLog` in a SQLite file (``sqlite:///path.db``).

    Appends are buffered in memory and written in one transaction per :meth:`flush` (and
    automatically once ``buffer_limit`` records are pending).

    Args:
        url: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; the parent
            folder is created if missing.
        default_partitions: Partitions of a topic created implicitly by ``append``/``consumer``.
        buffer_limit: Pending appends that trigger an automatic write.
        busy_timeout_ms: How long a write waits for another process's lock.
        poll_interval: Seconds a waiting ``poll`` sleeps between looks at the file.
    """

    def __init__(
        self,
        url: str,
        *,
        default_partitions: int = 1,
        buffer_limit: int = 1000,
        busy_timeout_ms: int = 30_000,
        poll_interval: float = 0.01,
    ) -> None:
        if default_partitions < 1 or buffer_limit < 1:
            raise ValueError("default_partitions and buffer_limit must be >= 1")
        self.url = url
        self._default_partitions = default_partitions
        self._buffer_limit = buffer_limit
        self._poll_interval = poll_interval
        self._engine = _make_engine(url, busy_timeout_ms)
        self._partitions: dict[str, int] = {}
        self._round_robin: dict[str, itertools.count[int]] = {}
        self._buffer: list[_Pending] = []
        self._failed = 0
        self._failure_reason = ""
        self._closed = False
        try:
            with self._write() as conn:
                _metadata.create_all(conn)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise LogUnavailable(
                f"cannot open the SQLite log ({type(exc).__name__})", code="sqlite_open_failed"
            ) from exc

    # -- connections -----------------------------------------------------------------

    def _write(self) -> _Txn:
        """A write transaction that holds the database's write lock from its start."""
        return _Txn(self._engine, immediate=True)

    def _read(self) -> _Txn:
        return _Txn(self._engine, immediate=False)

    def _check_open(self) -> None:
        if self._closed:
            raise LogUnavailable("the log is closed", code="log_closed")

    # -- topics ----------------------------------------------------------------------

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create ``topic`` with ``partitions`` partitions; a no-op if it exists."""
        self._check_open()
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self._ensure_topic(topic, partitions)

    def _ensure_topic(self, topic: str, partitions: int) -> int:
        known = self._partitions.get(topic)
        if known is not None:
            return known
        if not topic:
            raise ValueError("topic name must not be empty")
        try:
            with self._write() as conn:
                conn.execute(
                    sqlite_insert(topics_table)
                    .values(name=topic, partitions=partitions)
                    .on_conflict_do_nothing()
                )
                count = conn.execute(
                    select(topics_table.c.partitions).where(topics_table.c.name == topic)
                ).scalar_one()
        except SQLAlchemyError as exc:
            raise LogUnavailable(
                f"cannot create topic {topic!r} ({type(exc).__name__})", code="sqlite_write_failed"
            ) from exc
        self._partitions[topic] = int(count)
        return int(count)

    def _topic_partitions(self, conn: Connection, topics: Sequence[str]) -> dict[str, int]:
        rows = conn.execute(
            select(topics_table.c.name, topics_table.c.partitions).where(
                topics_table.c.name.in_(list(topics))
            )
        )
        found = {str(name): int(n) for name, n in rows}
        self._partitions.update(found)
        return found

    def list_topics(self, prefix: str = "") -> list[str]:
        """Existing topic names starting with ``prefix``, sorted."""
        self._check_open()
        with self._read() as conn:
            names = conn.execute(select(topics_table.c.name)).scalars().all()
        return sorted(n for n in names if n.startswith(prefix))

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (0 if it does not exist)."""
        self._check_open()
        with self._read() as conn:
            n = conn.execute(
                select(topics_table.c.partitions).where(topics_table.c.name == topic)
            ).scalar()
        return int(n or 0)

    # -- appending -------------------------------------------------------------------

    def append(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Buffer one message; it is durable once :meth:`flush` returns."""
        if self._closed:
            self._check_open()
        if type(value) is not bytes:
            value = _check_bytes("value", value)
        if key is not None and type(key) is not bytes:
            key = _check_bytes("key", key)
        encoded = encode_headers(headers if type(headers) is tuple else tuple(headers))
        count = self._partitions.get(topic) or self._ensure_topic(topic, self._default_partitions)
        if key is not None:
            partition = zlib.crc32(key) % count
        else:
            rr = self._round_robin.setdefault(topic, itertools.count())
            partition = next(rr) % count
        buffer = self._buffer
        buffer.append((topic, partition, key, value, encoded, time.time_ns() // 1_000_000))
        if len(buffer) >= self._buffer_limit:
            self._write_buffer()

    def _write_buffer(self) -> None:
        """Write the buffer in one transaction; on failure count it as failed deliveries."""
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            with self._write() as conn:
                # the driver's own cursor, on the transaction's connection: SQLAlchemy's
                # statement building and per-row parameter processing cost more than SQLite's
                # work here (a Core select of the next offset, 40 times the statement)
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    # per partition, its next offsets from the one read under the lock
                    offsets: dict[tuple[str, int], itertools.count[int]] = {}
                    rows: list[tuple[str, int, int, bytes | None, bytes, bytes, int]] = []
                    add, counter = rows.append, offsets.get
                    for topic, partition, key, value, headers, ts in batch:
                        following = counter((topic, partition))
                        if following is None:
                            following = offsets[(topic, partition)] = itertools.count(
                                _next_offset_raw(cursor, topic, partition)
                            )
                        add((topic, partition, next(following), key, value, headers, ts))
                    cursor.executemany(_INSERT_MESSAGES, rows)
                finally:
                    cursor.close()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            self._failed += len(batch)
            self._failure_reason = type(exc).__name__

    def flush(self, timeout: float = 30.0) -> None:
        """Write every buffered append in one durable transaction.

        ``timeout`` is accepted for the port; the wait for another writer's lock is bounded
        by ``busy_timeout_ms`` instead.

        Raises:
            DeliveryFailed: with ``failed`` = appends since the last flush that were not
                written (they are dropped; the caller appends them again).
        """
        self._check_open()
        self._write_buffer()
        self._raise_failures()

    def _raise_failures(self) -> None:
        if self._failed:
            failed, reason = self._failed, self._failure_reason
            self._failed, self._failure_reason = 0, ""
            raise DeliveryFailed(
                f"{failed} appends were not written to the SQLite log ({reason})",
                failed=failed,
                code="sqlite_write_failed",
            )

    # -- reading ---------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[str]) -> SqliteConsumer:
        """The single member of ``group``, reading every partition of ``topics``.

        Missing topics are created with the default partition count.
        """
        self._check_open()
        if not group:
            raise ValueError("group must not be empty")
        for topic in topics:
            self._ensure_topic(topic, self._default_partitions)
        return SqliteConsumer(self, group, list(topics))

    def delete_before(self, topic: str, partition: int, offset: int) -> int:
        """Delete the partition's records below ``offset``; their bytes are zeroed in the file
        (``secure_delete``) and the write-ahead log is checkpointed, so no copy stays on disk."""
        self._check_open()
        self._write_buffer()
        m = messages_table.c
        try:
            with self._write() as conn:
                start = max(
                    _start(conn, topic, partition),
                    min(offset, _next_offset(conn, topic, partition)),
                )
                conn.execute(
                    delete(messages_table).where(
                        and_(m.topic == topic, m.partition == partition, m.offset < start)
                    )
                )
                conn.execute(
                    delete(starts_table).where(
                        and_(starts_table.c.topic == topic, starts_table.c.partition == partition)
                    )
                )
                conn.execute(
                    starts_table.insert().values(
                        topic=topic, partition=partition, start_offset=start
                    )
                )
            raw = self._engine.raw_connection()  # outside a transaction, as a checkpoint must be
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise LogUnavailable(
                f"cannot delete from the SQLite log ({type(exc).__name__})",
                code="sqlite_write_failed",
            ) from exc
        return start

    def read_all(self, topic: str) -> list[LogRecord]:
        """Every stored record of ``topic``, ordered by (partition, offset)."""
        self._check_open()
        m = messages_table.c
        with self._read() as conn:
            rows = conn.execute(
                select(m.partition, m.offset, m.key, m.value, m.headers, m.ts)
                .where(m.topic == topic)
                .order_by(m.partition, m.offset)
            ).all()
        return [_record(topic, *row) for row in rows]

    def close(self) -> None:
        """Write pending appends, then release the file. Idempotent."""
        if self._closed:
            return
        try:
            self._write_buffer()
        finally:
            self._closed = True
            self._engine.dispose()
        self._raise_failures()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteLog(url={self.url!r}, closed={self._closed})"


class SqliteConsumer:
    """The single member of a consumer group on a :class:`SqliteLog`.

    Gets every partition of its topics (partitions of topics created later are picked up on
    the next poll). Positions start at the group's committed offset, else 0.
    """

    def __init__(self, log: SqliteLog, group: str, topics: list[str]) -> None:
        self._log = log
        self._group = group
        self._topics = topics
        self._positions: dict[tuple[str, int], int] = {}
        self._eof: dict[tuple[str, int], bool] = {}
        self._polled = False
        self._start = 0  # rotates which partition is read first, so none starves
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise LogUnavailable("the consumer is closed", code="consumer_closed")
        self._log._check_open()

    def _partitions(self, conn: Connection) -> list[tuple[str, int]]:
        counts = self._log._topic_partitions(conn, self._topics)
        tps = [(t, p) for t in self._topics for p in range(counts.get(t, 0))]
        missing = [tp for tp in tps if tp not in self._positions]
        if missing:
            committed = self._committed(conn)
            for tp in missing:
                self._positions[tp] = committed.get(tp, 0)
                self._eof[tp] = False
        return tps

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[LogRecord]:
        """Up to ``max_records`` next records; waits up to ``timeout`` s when none are new."""
        self._check_open()
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            records = self._fetch(max_records)
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(self._log._poll_interval, remaining))

    def _fetch(self, max_records: int) -> list[LogRecord]:
        m = messages_table.c
        out: list[LogRecord] = []
        try:
            with self._log._read() as conn:
                tps = self._partitions(conn)
                if not tps:
                    self._polled = True
                    return out
                start = self._start % len(tps)
                self._start += 1
                for topic, partition in tps[start:] + tps[:start]:
                    budget = max_records - len(out)
                    if budget <= 0:
                        # Not looked at in this poll: its end-of-partition state is unknown.
                        self._eof[(topic, partition)] = False
                        continue
                    position = self._positions[(topic, partition)]
                    rows = conn.execute(
                        select(m.offset, m.key, m.value, m.headers, m.ts)
                        .where(
                            and_(m.topic == topic, m.partition == partition, m.offset >= position)
                        )
                        .order_by(m.offset)
                        .limit(budget)
                    ).all()
                    for offset, key, value, headers, ts in rows:
                        out.append(_record(topic, partition, offset, key, value, headers, ts))
                    if rows:
                        self._positions[(topic, partition)] = int(rows[-1][0]) + 1
                    self._eof[(topic, partition)] = len(rows) < budget
        except SQLAlchemyError as exc:
            raise LogUnavailable(
                f"cannot read the SQLite log ({type(exc).__name__})", code="sqlite_read_failed"
            ) from exc
        self._polled = True
        return out

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Durably store the group's next offsets for the given partitions."""
        self._check_open()
        if not positions:
            return
        rows = [
            {"group": self._group, "topic": t, "partition": p, "next_offset": int(o)}
            for (t, p), o in positions.items()
        ]
        stmt = sqlite_insert(group_offsets_table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["group", "topic", "partition"],
            set_={"next_offset": stmt.excluded.next_offset},
        )
        try:
            with self._log._write() as conn:
                conn.execute(stmt, rows)
        except SQLAlchemyError as exc:
            raise LogUnavailable(
                f"cannot commit offsets ({type(exc).__name__})", code="sqlite_commit_failed"
            ) from exc

    def _committed(self, conn: Connection) -> dict[tuple[str, int], int]:
        g = group_offsets_table.c
        rows = conn.execute(
            select(g.topic, g.partition, g.next_offset).where(
                and_(g.group == self._group, g.topic.in_(self._topics))
            )
        )
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    def committed(self) -> dict[tuple[str, int], int]:
        """The group's committed next offsets for this consumer's topics."""
        self._check_open()
        with self._log._read() as conn:
            return self._committed(conn)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Make the next poll of ``(topic, partition)`` start at ``offset`` (no commit)."""
        self._check_open()
        if offset < 0:
            raise ValueError("offset must be >= 0")
        self._positions[(topic, partition)] = offset
        self._eof[(topic, partition)] = False

    def at_end(self) -> bool:
        """True when the last poll read every partition to its end."""
        return self._polled and all(self._eof.values())

    def close(self) -> None:
        """Forget positions; the group's commits stay in the file."""
        self._closed = True

    def __repr__(self) -> str:
        return f"SqliteConsumer(group={self._group!r}, topics={self._topics!r})"


def _record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    headers: bytes,
    ts: int,
) -> LogRecord:
    return LogRecord(
        topic=topic,
        partition=int(partition),
        offset=int(offset),
        key=key,
        value=bytes(value),
        headers=decode_headers(headers),
        timestamp_ms=int(ts),
    )


def _next_offset(conn: Connection, topic: str, partition: int) -> int:
    m = messages_table.c
    last = conn.execute(
        select(func.max(m.offset)).where(and_(m.topic == topic, m.partition == partition))
    ).scalar()
    return max(0 if last is None else int(last) + 1, _start(conn, topic, partition))


def _next_offset_raw(cursor: sqlite3.Cursor, topic: str, partition: int) -> int:
    """:func:`_next_offset` on a driver cursor inside the write transaction."""
    (last,) = cursor.execute(_MAX_OFFSET, (topic, partition)).fetchone()
    found = cursor.execute(_START_OFFSET, (topic, partition)).fetchone()
    return max(0 if last is None else int(last) + 1, 0 if found is None else int(found[0]))


def _start(conn: Connection, topic: str, partition: int) -> int:
    s = starts_table.c
    found = conn.execute(
        select(s.start_offset).where(and_(s.topic == topic, s.partition == partition))
    ).scalar()
    return 0 if found is None else int(found)


class _Txn:
    """``with _Txn(engine, immediate=...) as conn:`` - one transaction, committed on success."""

    def __init__(self, engine: Engine, *, immediate: bool) -> None:
        self._engine = engine
        self._immediate = immediate
        self._conn: Connection | None = None

    def __enter__(self) -> Connection:
        conn = self._engine.connect()
        try:
            conn.execution_options(**{_IMMEDIATE: self._immediate})
            conn.begin()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn
        assert conn is not None
        self._conn = None
        try:
            if exc_type is None:
                conn.commit()
            else:
                conn.rollback()
        finally:
            conn.close()


def check_url(url: str) -> URL:
    """Parse a ``sqlite:///path.db`` URL without touching the file system.

    Raises:
        UnsupportedLogURL: malformed, not SQLite, or not a file path.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UnsupportedLogURL("malformed SQLite log URL", code="unsupported_log_url") from exc
    if parsed.get_backend_name() != "sqlite" or parsed.drivername not in (
        "sqlite",
        "sqlite+pysqlite",
    ):
        raise UnsupportedLogURL("not a sqlite:/// URL", code="unsupported_log_url")
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise UnsupportedLogURL(
            "the SQLite log needs a file path (sqlite:///path.db); in-memory logs are not shared",
            code="unsupported_log_url",
        )
    return parsed


def _make_engine(url: str, busy_timeout_ms: int) -> Engine:
    parsed = check_url(url)
    database = parsed.database
    assert database is not None
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed.set(database=str(Path(database).expanduser())),
        hide_parameters=True,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not pysqlite, decide how a transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            # a new file's pages (an existing file keeps its own, set when it was made): a
            # record is a fifth of a 4 KiB page, and larger pages cost SQLite less per append
            cur.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA secure_delete=ON")  # a deleted record's bytes are zeroed
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so offsets are read and assigned under it
        # and two processes can never hand out the same offset.
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
