"""The perpetrators projection: one row per perpetrator record of an accepted case, flagged with
its case's retraction and whole-case disposal as the persons are; migration 0010 fills it from
the stored events exactly as the projection holds it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select

from schemas.codec import default_registry
from trust.store import projections
from trust.store.db import alembic_config, make_engine, migrate, writer
from trust.store.events import RecordAccepted
from trust.store.eventstore import EventStore, open_store
from trust.store.tables import proj_perpetrators

from .builders import accepted, consent, disposal, retracted

_CASE = default_registry().current("case_record")


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def case(case_id: str, roles: Sequence[Sequence[str]], year: int = 2023) -> RecordAccepted:
    ev = accepted("src-a", case_id, year=year)
    record = dict(ev.record)
    record["perpetrators"] = [
        {
            "perpetrator_id": f"p{i + 1}",
            "sex": "Masculine",
            "age_group": "Unknown",
            "citizenships": [],
            "roles": list(r),
            "legal_status": "Suspected",
        }
        for i, r in enumerate(roles)
    ]
    return dataclasses.replace(ev, record=_CASE.decode(_CASE.encode(record)))


def rows(store: EventStore) -> dict[tuple[str, str], dict[str, Any]]:
    with store.engine.connect() as conn:
        found = conn.execute(select(proj_perpetrators)).mappings().all()
    return {(r["case_id"], r["perpetrator_id"]): dict(r) for r in found}


def flags(store: EventStore) -> dict[tuple[str, str], tuple[bool, bool]]:
    return {k: (bool(r["retracted"]), bool(r["disposed"])) for k, r in rows(store).items()}


def test_an_accepted_case_projects_one_row_per_perpetrator(store: EventStore) -> None:
    store.append([case("c1", [("Exploiter", "Transporter", "Exploiter"), ()], 2022)], None, "in")
    got = rows(store)
    assert set(got) == {("c1", "p1"), ("c1", "p2")}
    p1 = got[("c1", "p1")]
    assert (p1["source_id"], p1["roles"], p1["year_of_exploitation"]) == (
        "src-a",
        "Exploiter;Transporter",
        2022,
    )
    assert got[("c1", "p2")]["roles"] == ""
    # a new version replaces the case's perpetrators
    store.append([case("c1", [("Smuggler",)], 2023)], None, "in")
    got = rows(store)
    assert set(got) == {("c1", "p1")} and got[("c1", "p1")]["roles"] == "Smuggler"


def test_retraction_flags_them_and_a_reacceptance_unflags_them(store: EventStore) -> None:
    store.append([case("c1", [("Exploiter",)])], None, "in")
    store.append([retracted("src-a", "c1")], None, "in")
    assert flags(store) == {("c1", "p1"): (True, False)}
    store.append([case("c1", [("Exploiter",)])], None, "in")
    assert flags(store) == {("c1", "p1"): (False, False)}


def test_a_whole_case_disposal_flags_them_in_every_version(store: EventStore) -> None:
    store.append([case("c1", [("Exploiter",)]), case("c2", [("Exploiter",)])], None, "in")
    # a victim's own withdrawal or disposal concerns the victim only
    store.append([consent("src-a", "c1", "v1"), disposal("src-a", "c1", "v1")], None, "in")
    assert flags(store) == {("c1", "p1"): (False, False), ("c2", "p1"): (False, False)}
    store.append([disposal("src-a", "c1", None)], None, "in")
    assert flags(store)[("c1", "p1")] == (False, True)
    store.append([case("c1", [("Exploiter",), ("Abuser",)])], None, "in")
    assert flags(store) == {
        ("c1", "p1"): (False, True),
        ("c1", "p2"): (False, True),
        ("c2", "p1"): (False, False),
    }
    # a disposal before the case arrives applies when it does
    store.append([disposal("src-a", "c3", None), case("c3", [("Exploiter",)])], None, "in")
    assert flags(store)[("c3", "p1")] == (False, True)


def test_rebuild_and_migration_0010_give_the_live_projection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        store.append([case("c1", [("Exploiter",), ("Transporter",)], 2022)], None, "in")
        store.append([case("c2", [("Exploiter",)]), retracted("src-a", "c2")], None, "in")
        store.append([disposal("src-a", "c3", None), case("c3", [("Abuser",)])], None, "in")
        store.append([case("c1", [("Smuggler",)], 2024), disposal("src-a", "c1", None)], None, "in")
        live = rows(store)
        assert len(live) == 3
        projections.rebuild(store.engine)
        assert rows(store) == live
    finally:
        store.close()
    engine = make_engine(url)
    try:
        cfg = alembic_config()
        with writer(engine).begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0009")
        migrate(engine)  # 0010 again: the table is filled from the stored events
    finally:
        engine.dispose()
    store = open_store(url)
    try:
        assert rows(store) == live
    finally:
        store.close()
