"""Fixtures the trust's tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from transport import EventLog, open_log
from trust.store.eventstore import EventStore, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def backend_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """A fresh, migrated event store on each backend (under this name also in modules that
    define their own ``store``)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def store(backend_store: EventStore) -> EventStore:
    """A fresh, migrated event store on each backend (a module may define its own instead)."""
    return backend_store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[EventStore]:
    """A fresh, migrated event store on SQLite only (for modules whose subject is not the
    backend; they alias it as their ``store``)."""
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Iterator[EventLog]:
    """A fresh embedded event log (for modules whose subject is the trust's side of the log)."""
    with open_log(f"sqlite:///{tmp_path / 'log.db'}") as event_log:
        yield event_log
