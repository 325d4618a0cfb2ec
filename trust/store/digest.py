"""A digest of every projection table, computed while the rows stream past.

``tiptrust trust rebuild`` checks that the projections rebuilt from the stored events equal the
live ones. Holding both states in memory costs gigabytes at 10^6 events; a digest per table,
taken before and after, needs one row at a time: the database returns each table's rows sorted
by all their columns (a total order up to identical rows, which hash the same), and each row
goes into a SHA-256 as the JSON of its values. Equal digests mean equal tables; the digests of
two databases (SQLite and PostgreSQL) are not comparable with each other, since they may sort
NULLs and text differently — compare states of the same database only.

``tiptrust trust rebuild`` compares two states of the same database in one run, and only the
tables a rebuild rewrites (:data:`REBUILT_TABLES`): :func:`rebuilt_digests` hashes each chunk of
rows the driver returns as one JSON array (one call per 5,000 rows instead of one per row, the
values as the driver gives them). Its digests are not a backup manifest's: compare them only with
each other.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Boolean, Connection, Engine, Table

from trust.store.tables import (
    FOLLOWER_TABLES,
    PROJECTION_TABLES,
    release_cell_counts,
    release_person_cells,
)

#: rows fetched from the driver at a time (memory stays flat whatever the table's size)
_CHUNK = 5000


@dataclass(frozen=True)
class TableDigest:
    """One table's row count and SHA-256 (hex) of its rows in sorted order."""

    rows: int
    sha256: str


def _default(value: object) -> str:
    return str(value)  # dates, decimals, bytes' reprs: stable text for the hash


def _row_maker(flags: Sequence[int], width: int) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function making a driver's row (``width`` columns) a ``bool`` at the columns ``flags``
    (None kept), the other values as they are; it touches only the flag columns (a generator over
    every value of every row took a third of a digest's time)."""
    flagged = tuple(i for i in flags if 0 <= i < width)

    def made(row: Sequence[Any]) -> tuple[Any, ...]:
        out = list(row)
        for i in flagged:
            if out[i] is not None:
                out[i] = bool(out[i])
        return tuple(out)

    return made


def _sorted_sql(engine: Engine, table: Table) -> str:
    q = engine.dialect.identifier_preparer.quote
    names = ", ".join(q(c.name) for c in table.columns)
    return f"SELECT {names} FROM {q(table.name)} ORDER BY {names}"


def _stream(engine: Engine, table: Table, hashed: Callable[[list[Any]], None]) -> None:
    """Every row of ``table`` in the order of all its columns, ``_CHUNK`` at a time, as the
    driver gives them, to ``hashed``, in a transaction of its own."""
    with engine.connect() as conn, conn.begin():
        _stream_in(conn, table, hashed)


def _stream_in(conn: Connection, table: Table, hashed: Callable[[list[Any]], None]) -> None:
    """:func:`_stream` inside ``conn``'s transaction: from a server-side cursor on PostgreSQL,
    so a large table never sits in memory."""
    raw: Any = conn.connection.driver_connection
    named = conn.dialect.name == "postgresql"
    cursor = raw.cursor(name="tiptrust_digest") if named else raw.cursor()
    try:
        cursor.execute(_sorted_sql(conn.engine, table))
        while True:
            part = cursor.fetchmany(_CHUNK)
            if not part:
                break
            hashed(part)
    finally:
        cursor.close()


def table_digest(engine: Engine, table: Table) -> TableDigest:
    """The digest of ``table``'s rows, streamed in the order of all its columns.

    The rows come from the driver's cursor as they are (a server-side cursor on PostgreSQL),
    each hashed as the JSON of its values; only a boolean column needs making a
    ``bool`` again (SQLite gives 0/1), so the bytes hashed are those of SQLAlchemy's typed rows
    — digests recorded before (a backup's manifest) still compare — at half the cost."""
    h = hashlib.sha256()
    rows = 0
    flags = [i for i, c in enumerate(table.columns) if isinstance(c.type, Boolean)]
    typed = _row_maker(flags, len(table.columns)) if flags else None
    # orjson's OPT_APPEND_NEWLINE gives the same bytes, ten times slower (orjson 3.x): not used
    dumps = orjson.dumps

    def hashed(part: list[Any]) -> None:
        nonlocal rows
        if typed is not None:
            part = list(map(typed, part))
        h.update(b"".join([dumps(tuple(r), default=_default) + b"\n" for r in part]))
        rows += len(part)

    _stream(engine, table, hashed)
    return TableDigest(rows, h.hexdigest())


def rebuild_check_digest(engine: Engine, table: Table) -> TableDigest:
    """A digest of ``table``'s rows in the order of all its columns, to compare with another
    taken by this function on the same database (see the module note): each chunk of rows
    the driver returns is hashed as one JSON array of its rows' values as they are (a flag
    stays the driver's 0/1 on SQLite, in both states alike)."""
    with engine.connect() as conn, conn.begin():
        return _check_digest_in(conn, table)


def _check_digest_in(conn: Connection, table: Table) -> TableDigest:
    h = hashlib.sha256()
    rows = 0
    dumps = orjson.dumps

    def hashed(part: list[Any]) -> None:
        nonlocal rows
        # the rows' JSON arrays, each chunk's a distinct array: equal sequences of rows give
        # equal bytes, and any difference in a value or a row's place differs
        h.update(dumps(part, default=_default))
        rows += len(part)

    _stream_in(conn, table, hashed)
    return TableDigest(rows, h.hexdigest())


def projection_digests(engine: Engine) -> dict[str, TableDigest]:
    """Every projection table's digest (the followers' too), by table name."""
    return {t.name: table_digest(engine, t) for t in (*PROJECTION_TABLES, *FOLLOWER_TABLES)}


REBUILT_TABLES: tuple[Table, ...] = (*PROJECTION_TABLES, release_person_cells, release_cell_counts)
"""The tables ``tiptrust trust rebuild`` rewrites: the ingest projections (replayed) and the
release counts (their follower reset to position 0). Linkage's tables (``link_*``) are its own
state, not rebuilt (its decisions are events): a rebuild leaves them as they are."""


def rebuilt_digests(engine: Engine) -> dict[str, TableDigest]:
    """:func:`rebuild_check_digest` of every table a rebuild rewrites, by table name: what
    ``tiptrust trust rebuild`` compares before and after."""
    return {t.name: rebuild_check_digest(engine, t) for t in REBUILT_TABLES}


def rebuilt_digests_meanwhile(
    engine: Engine, *, hash_after: threading.Event | None = None
) -> Callable[[], dict[str, TableDigest]]:
    """:func:`rebuilt_digests` of the state as it is NOW, taken on another thread while the
    caller goes on (and may change those tables): returns once that thread holds its snapshot
    — one read transaction over every table, REPEATABLE READ on PostgreSQL, a WAL reader's on
    SQLite — and gives a function that waits for the digests and returns them (or raises what
    the thread raised). A rebuild then replays while the state before it is hashed. On a
    SQLite database not in WAL mode (a reader would block the rebuild's commit) or in memory
    (another connection is another database), the digests are taken before it returns.
    ``hash_after``: the thread reads no row before this event is set (once the snapshot is
    taken), so a test can change the tables in between."""
    if not _snapshots_apart(engine):
        now = rebuilt_digests(engine)
        return lambda: now
    result: dict[str, TableDigest] = {}
    failed: list[BaseException] = []
    ready = threading.Event()

    def run() -> None:
        try:
            reading = engine
            if engine.dialect.name == "postgresql":
                reading = engine.execution_options(isolation_level="REPEATABLE READ")
            with reading.connect() as conn, conn.begin():
                # the first read takes the snapshot every table is read in
                conn.exec_driver_sql(f"SELECT 1 FROM {_quoted(conn, REBUILT_TABLES[0])} LIMIT 1")
                ready.set()
                if hash_after is not None:
                    hash_after.wait()
                for table in REBUILT_TABLES:
                    result[table.name] = _check_digest_in(conn, table)
        except BaseException as exc:  # handed to the caller by wait()
            failed.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="tiptrust-digest", daemon=True)
    thread.start()
    ready.wait()
    if failed:
        thread.join()
        raise failed[0]

    def wait() -> dict[str, TableDigest]:
        thread.join()
        if failed:
            raise failed[0]
        return result

    return wait


def _quoted(conn: Connection, table: Table) -> str:
    return str(conn.dialect.identifier_preparer.quote(table.name))


def _snapshots_apart(engine: Engine) -> bool:
    """Whether a reader on another connection keeps its snapshot while a writer commits."""
    if engine.dialect.name == "postgresql":
        return True
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return False
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    return str(mode).lower() == "wal"


def combined(digests: Mapping[str, TableDigest]) -> str:
    """One short hex digest of a whole state (for a line of output)."""
    h = hashlib.sha256()
    for name in sorted(digests):
        h.update(f"{name}:{digests[name].rows}:{digests[name].sha256}\n".encode())
    return h.hexdigest()[:16]


def differing(before: Mapping[str, TableDigest], after: Mapping[str, TableDigest]) -> list[str]:
    """The tables whose digests differ between two states (sorted)."""
    return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
