"""The Alembic migrations create exactly the tables in ``trust.store.tables``."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from trust.store.db import make_engine, migrate
from trust.store.tables import metadata


def assert_no_changes(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate(engine)
        migrate(engine)  # idempotent at head
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            tables = set(inspect(conn).get_table_names())
        assert tables == set(metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_sqlite_migration_matches_the_tables(tmp_path: Path) -> None:
    assert_no_changes(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_migration_matches_the_tables(postgres_schema_url: str) -> None:
    assert_no_changes(postgres_schema_url)


def test_head_is_the_newest_migration() -> None:
    """``db.HEAD`` lets an up-to-date store open without Alembic: it must name the scripts' head,
    or a store would be taken as current while a migration it needs was never run."""
    from alembic.script import ScriptDirectory

    from trust.store.db import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD]


def test_a_store_behind_head_is_migrated(tmp_path: Path) -> None:
    """The fast path only skips Alembic at HEAD: a store at an older revision is upgraded."""
    from sqlalchemy import text

    from trust.store.db import HEAD

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        migrate(engine, "0009")
        migrate(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
            assert "proj_perpetrators" in set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
