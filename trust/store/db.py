"""Engines for the store's database (SQLite or PostgreSQL) and its Alembic migrations.

The only place that knows which database is underneath. SQLite gets WAL, ``synchronous=FULL``,
foreign keys and ``secure_delete`` (so a shredded key's bytes are zeroed, not left in free
pages), and explicit ``BEGIN``: ``IMMEDIATE`` on the writer engine so a writer never fails to
upgrade its read lock, ``DEFERRED`` elsewhere. Every engine hides bound parameters in errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Insert
from sqlalchemy.sql.schema import Table

_WRITE_OPTION = "tiptrust_sqlite_begin"
MIGRATIONS = Path(__file__).parent / "migrations"


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
    name = conn.dialect.name
    if name == "sqlite":
        ins: Insert = sqlite.insert(table)
    elif name == "postgresql":
        ins = postgresql.insert(table)
    else:  # pragma: no cover - only the two supported databases
        raise NotImplementedError(f"unsupported database {name!r}")
    return ins


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

    The statement is compiled by SQLAlchemy for this dialect; only the per-row parameter
    processing is skipped, which is most of an append's cost. For column types with no bind
    processing on SQLite/psycopg (strings, integers, booleans, bytes) and ``None``.
    """
    if not rows:
        return
    keys = list(rows[0])
    compiled = insert(table).compile(dialect=conn.dialect, column_keys=keys)
    params: Any
    if compiled.positional:
        order = compiled.positiontup or []
        params = [tuple(r[k] for k in order) for r in rows]
    else:
        params = [dict(r) for r in rows] if not isinstance(rows, list) else rows
    conn.exec_driver_sql(compiled.string, params)


def checkpoint(engine: Engine) -> None:
    """On SQLite, copy the WAL into the database file and truncate it (best effort)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def alembic_config() -> Config:
    """A programmatic Alembic configuration (no ``alembic.ini``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``, in one transaction."""
    cfg = alembic_config()
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
