"""A digest of every projection table, computed while the rows stream past.

``tiptrust trust rebuild`` checks that the projections rebuilt from the stored events equal the
live ones. Holding both states in memory costs gigabytes at 10^6 events; a digest per table,
taken before and after, needs one row at a time: the database returns each table's rows sorted
by all their columns (a total order up to identical rows, which hash the same), and each row
goes into a SHA-256 as the JSON of its values. Equal digests mean equal tables; the digests of
two databases (SQLite and PostgreSQL) are not comparable with each other, since they may sort
NULLs and text differently — compare states of the same database only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Boolean, Engine, Table

from trust.store.tables import FOLLOWER_TABLES, PROJECTION_TABLES

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


def table_digest(engine: Engine, table: Table) -> TableDigest:
    """The digest of ``table``'s rows, streamed in the order of all its columns.

    The rows come from the driver's cursor as they are (a server-side cursor on PostgreSQL),
    each hashed as the JSON of its values; only a boolean column needs making a
    ``bool`` again (SQLite gives 0/1), so the bytes hashed are those of SQLAlchemy's typed rows
    — digests recorded before (a backup's manifest) still compare — at half the cost."""
    h = hashlib.sha256()
    rows = 0
    q = engine.dialect.identifier_preparer.quote
    names = ", ".join(q(c.name) for c in table.columns)
    flags = [i for i, c in enumerate(table.columns) if isinstance(c.type, Boolean)]
    typed = _row_maker(flags, len(table.columns)) if flags else None
    sql = f"SELECT {names} FROM {q(table.name)} ORDER BY {names}"
    # orjson's OPT_APPEND_NEWLINE gives the same bytes, ten times slower (orjson 3.x): not used
    dumps = orjson.dumps
    with engine.connect() as conn, conn.begin():
        raw: Any = conn.connection.driver_connection
        # PostgreSQL: a named (server-side) cursor, so a large table never sits in memory
        named = engine.dialect.name == "postgresql"
        cursor = raw.cursor(name="tiptrust_digest") if named else raw.cursor()
        try:
            cursor.execute(sql)
            while True:
                part = cursor.fetchmany(_CHUNK)
                if not part:
                    break
                if typed is not None:
                    part = list(map(typed, part))
                h.update(b"".join([dumps(tuple(r), default=_default) + b"\n" for r in part]))
                rows += len(part)
        finally:
            cursor.close()
    return TableDigest(rows, h.hexdigest())


def projection_digests(engine: Engine) -> dict[str, TableDigest]:
    """Every projection table's digest (the followers' too), by table name."""
    return {t.name: table_digest(engine, t) for t in (*PROJECTION_TABLES, *FOLLOWER_TABLES)}


def combined(digests: Mapping[str, TableDigest]) -> str:
    """One short hex digest of a whole state (for a line of output)."""
    h = hashlib.sha256()
    for name in sorted(digests):
        h.update(f"{name}:{digests[name].rows}:{digests[name].sha256}\n".encode())
    return h.hexdigest()[:16]


def differing(before: Mapping[str, TableDigest], after: Mapping[str, TableDigest]) -> list[str]:
    """The tables whose digests differ between two states (sorted)."""
    return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
