"""Engines for the store's database (SQLite or PostgreSQL) and its Alembic migrations.

The only place that knows which database is underneath. SQLite gets WAL, ``synchronous=FULL``,
foreign keys and ``secure_delete`` (so a shredded key's bytes are zeroed, not left in free
pages), and explicit ``BEGIN``: ``IMMEDIATE`` on the writer engine so a writer never fails to
upgrade its read lock, ``DEFERRED`` elsewhere. Every engine hides bound parameters in errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Insert
from sqlalchemy.sql.schema import Table

if TYPE_CHECKING:
    from alembic.config import Config

_WRITE_OPTION = "tiptrust_sqlite_begin"
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0011"
"""The newest migration's revision. A store already there opens without loading Alembic and its
scripts (most of a short command's start-up); a test checks this is the scripts' head."""


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://…``)."""
    url = normalise_url(url)
    engine = create_engine(url, hide_parameters=True, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    elif engine.dialect.name == "postgresql":
        _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # psycopg prepares a statement after a few runs; a generic plan made while a table was
        # still small (a sequential scan) would then be kept as the table grows. Plan each run.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin() decide when a transaction starts (pysqlite's own implicit
        # BEGIN would leave the reads before the first write outside the transaction).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in (
                "journal_mode=WAL",
                "synchronous=FULL",
                "foreign_keys=ON",
                "secure_delete=ON",
                "busy_timeout=30000",
            ):
                cursor.execute(f"PRAGMA {pragma}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_WRITE_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions take SQLite's write lock up front."""
    return engine.execution_options(**{_WRITE_OPTION: "IMMEDIATE"})


def dialect_insert(conn: Connection, table: Table) -> Any:
    """An INSERT with ``on_conflict_do_*`` for this connection's dialect (SQLite/PostgreSQL)."""
    return _insert_for(conn.dialect.name, table)


def _insert_for(dialect_name: str, table: Table) -> Insert:
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"unsupported database {dialect_name!r}")  # pragma: no cover


_APPEND_LOCK = 0x7469707472757374  # "tiptrust"


def serialise_appends(conn: Connection) -> None:
    """Make this transaction the only appender until it ends, so seq order is commit order.

    A reader tailing by ``seq`` then never misses an event committed late with a lower seq.
    SQLite's writer transactions (``BEGIN IMMEDIATE``) are already exclusive.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_APPEND_LOCK})")


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT many rows (all with the same keys) through the driver's ``executemany``.

    The statement is compiled by SQLAlchemy for this dialect once per table and set of keys;
    only the per-row parameter processing is skipped, which is most of an append's cost. For
    column types with no bind processing on SQLite/psycopg (strings, integers, booleans, bytes)
    and ``None``.
    """
    if not rows:
        return
    sql, order = _compiled_insert(conn.dialect, table, tuple(rows[0]))
    _execute_many(conn, sql, order, rows)


@lru_cache(maxsize=256)
def _compiled_insert(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[str, tuple[str, ...] | None]:
    """The INSERT's SQL for ``dialect`` and, for a positional driver, its parameters' order."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return compiled.string, order


def _execute_many(
    conn: Connection, sql: str, order: tuple[str, ...] | None, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run ``sql`` once per row through the driver; the rows it changed, summed."""
    params: Any
    if order is not None:
        pick = itemgetter(*order)
        params = [pick(r) for r in rows] if len(order) > 1 else [(pick(r),) for r in rows]
    else:
        params = rows if isinstance(rows, list) else [dict(r) for r in rows]
    return int(conn.exec_driver_sql(sql, params).rowcount)


def insert_values(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT many rows, each a tuple of values in ``columns``' order, through the driver's
    ``executemany`` as they are: :func:`bulk_insert` without building or reading a mapping per
    row (the same column types: strings, integers, booleans, bytes and ``None``)."""
    if not rows:
        return
    sql = _insert_values_sql(conn.dialect, table, tuple(columns))
    conn.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows))


def insert_values_ignoring(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    conflict: Sequence[str],
) -> int:
    """:func:`insert_values`, leaving out each row whose ``conflict`` columns (a unique key)
    match a row already there (``ON CONFLICT … DO NOTHING``);
    returns how many rows were inserted."""
    if not rows:
        return 0
    for name in conflict:
        table.c[name]  # an unknown column is a KeyError here, never SQL
    q = conn.dialect.identifier_preparer.quote
    sql = _insert_values_sql(conn.dialect, table, tuple(columns))
    sql += f" ON CONFLICT ({', '.join(q(c) for c in conflict)}) DO NOTHING"
    return int(conn.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows)).rowcount)


def upsert_increasing(
    conn: Connection,
    table: Table,
    key_columns: Sequence[str],
    column: str,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """INSERT many rows (tuples of ``key_columns``' values, then ``column``'s) through the
    driver's ``executemany``; a row whose key is there already sets ``column`` only where that
    makes it larger (``ON CONFLICT … DO UPDATE … WHERE``; SQLite and PostgreSQL write it alike).
    The SQL is written here, as :func:`select_in` writes its own: SQLAlchemy's statement costs
    more to build than to run, once per append."""
    if not rows:
        return
    for name in (*key_columns, column):
        table.c[name]  # an unknown column is a KeyError here, never SQL
    q = conn.dialect.identifier_preparer.quote
    mark = param_mark(conn)
    names = [q(c) for c in (*key_columns, column)]
    t, c = q(table.name), q(column)
    sql = (
        f"INSERT INTO {t} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))}) "
        f"ON CONFLICT ({', '.join(names[:-1])}) DO UPDATE SET {c} = excluded.{c} "
        f"WHERE {t}.{c} < excluded.{c}"
    )
    conn.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows))


@lru_cache(maxsize=64)
def _insert_values_sql(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> str:
    for name in columns:
        table.c[name]  # an unknown column is a KeyError here, never SQL
    q = dialect.identifier_preparer.quote
    mark = _paramstyle_mark(dialect.paramstyle)
    names = ", ".join(q(c) for c in columns)
    return f"INSERT INTO {q(table.name)} ({names}) VALUES ({', '.join([mark] * len(columns))})"


_IN_CHUNK = 500


def select_in(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    key: str,
    values: Sequence[Any],
    *,
    where: Mapping[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """The ``columns`` of every row of ``table`` whose ``key`` is one of ``values`` (and whose
    ``where`` columns equal theirs), as plain tuples: one statement per 500 values, sent through
    the driver. SQLAlchemy re-expands an ``IN`` list's parameters on every execution, which costs
    more than the query; these statements are simple enough to write directly."""
    if not values:
        return []
    q = conn.dialect.identifier_preparer.quote
    mark = param_mark(conn)
    for name in (*columns, key, *(where or {})):
        table.c[name]  # an unknown column is a KeyError here, never SQL
    fixed = [f"{q(c)} = {mark}" for c in where or {}]
    head = f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table.name)} WHERE "
    out: list[tuple[Any, ...]] = []
    for i in range(0, len(values), _IN_CHUNK):
        chunk = list(values[i : i + _IN_CHUNK])
        cond = [*fixed, f"{q(key)} IN ({', '.join([mark] * len(chunk))})"]
        params = (*(where or {}).values(), *chunk)
        out.extend(tuple(r) for r in conn.exec_driver_sql(head + " AND ".join(cond), params))
    return out


def count_in(conn: Connection, table: Table, key: str, values: Sequence[Any]) -> dict[Any, int]:
    """How many rows of ``table`` hold each of ``values`` in column ``key`` (values with none
    are left out), through the driver like :func:`select_in`."""
    q = conn.dialect.identifier_preparer.quote
    mark = param_mark(conn)
    table.c[key]  # an unknown column is a KeyError here, never SQL
    out: dict[Any, int] = {}
    for i in range(0, len(values), _IN_CHUNK):
        chunk = list(values[i : i + _IN_CHUNK])
        sql = (
            f"SELECT {q(key)}, count(*) FROM {q(table.name)} "
            f"WHERE {q(key)} IN ({', '.join([mark] * len(chunk))}) GROUP BY {q(key)}"
        )
        out.update((k, int(n)) for k, n in conn.exec_driver_sql(sql, tuple(chunk)))
    return out


_KEYS_CHUNK = 300


def select_keys(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    key_columns: Sequence[str],
    keys: Sequence[Sequence[Any]],
) -> list[tuple[Any, ...]]:
    """The ``columns`` of every row of ``table`` whose ``key_columns`` equal one of ``keys`` (each
    a tuple of values in that order), as plain tuples, sent through the driver.

    The keys are a ``VALUES`` list joined with the table, so each key is one probe of the
    table's index on ``key_columns``. An ``IN`` list per column instead makes the database probe
    every combination of the lists' values (300 records of 300 cases: 90,000 probes), and a
    row-value ``IN`` makes SQLite scan the table.
    """
    if not keys:
        return []
    q = conn.dialect.identifier_preparer.quote
    mark = param_mark(conn)
    for name in (*columns, *key_columns):
        table.c[name]  # an unknown column is a KeyError here, never SQL
    width = len(key_columns)
    names = [f"k{i}" for i in range(width)]
    on = " AND ".join(f"t.{q(c)} = k.{n}" for c, n in zip(key_columns, names, strict=True))
    head = f"SELECT {', '.join(f't.{q(c)}' for c in columns)} FROM k JOIN {q(table.name)} t ON {on}"
    row = "(" + ", ".join([mark] * width) + ")"
    out: list[tuple[Any, ...]] = []
    distinct = sorted({tuple(k) for k in keys})
    for i in range(0, len(distinct), _KEYS_CHUNK):
        chunk = distinct[i : i + _KEYS_CHUNK]
        sql = f"WITH k({', '.join(names)}) AS (VALUES {', '.join([row] * len(chunk))}) {head}"
        params = tuple(v for key in chunk for v in key)
        out.extend(tuple(r) for r in conn.exec_driver_sql(sql, params))
    return out


def param_mark(conn: Connection) -> str:
    """The driver's positional parameter marker (``?`` for SQLite, ``%s`` for psycopg), for
    statements written as SQL and sent through the driver."""
    return _paramstyle_mark(conn.dialect.paramstyle)


def _paramstyle_mark(style: str) -> str:
    if style == "qmark":
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    raise NotImplementedError(f"unsupported parameter style {style!r}")  # pragma: no cover


def checkpoint(engine: Engine) -> None:
    """On SQLite, copy the WAL into the database file and truncate it (best effort)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def alembic_config() -> Config:
    """A programmatic Alembic configuration (no ``alembic.ini``)."""
    from alembic.config import Config  # imported here: most opens find the store at HEAD

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``, in one transaction."""
    if revision == "head" and _revision(engine) == HEAD:
        return
    from alembic import command

    cfg = alembic_config()
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _revision(engine: Engine) -> str | None:
    """The revision the store is at, or None when it has none yet (or no version table)."""
    with engine.connect() as conn:
        try:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        except DBAPIError:  # no version table yet: a new store, which migrate creates
            conn.rollback()
            return None
    return None if row is None else str(row[0])
