"""The event-store conformance suite on SQLite (a temporary file) and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from trust.store import projections
from trust.store.eventstore import EventStore, Position, open_store

from .builders import accepted
from .conformance import EventStoreConformance


class TestSQLiteEventStore(EventStoreConformance):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"

    def make_store(self) -> EventStore:
        return open_store(f"sqlite:///{self.path}")


@pytest.mark.postgres
class TestPostgresEventStore(EventStoreConformance):
    @pytest.fixture(autouse=True)
    def _schema(self, postgres_schema_url: str) -> None:
        self.url = postgres_schema_url

    def make_store(self) -> EventStore:
        return open_store(self.url)


def test_a_reopened_sqlite_store_resumes_where_it_stopped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.append([accepted()], Position("t", 0, 7), "ingest")
    live = projections.snapshot(store.engine)
    store.close()
    again = open_store(url)  # migrations are a no-op at head
    try:
        assert again.positions("ingest") == {("t", 0): 8}
        assert projections.snapshot(again.engine) == live
        assert len(list(again.read())) == 1
    finally:
        again.close()
