"""The event-store conformance suite on SQLite (a temporary file) and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from trust.store.eventstore import EventStore, open_store

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
