"""A home written by the first release (0.1.0, commit 6fc44bd: its demo with 60 persons, kept as
``data/home-0.1.0.tar.gz``) keeps working: the store and the outbox migrate on first use, nothing
is ingested or receipted twice, its first-format agreements load, and it releases again."""

from __future__ import annotations

import sqlite3
import tarfile
from pathlib import Path

from .conftest import RunCli, last_json, subscribe

DATA = Path(__file__).parent / "data" / "home-0.1.0.tar.gz"
STREAM = "victims_by_sex_age_form"


def _old_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"  # the `cli` fixture's TIPTRUST_HOME
    home.mkdir()
    with tarfile.open(DATA) as tar:
        tar.extractall(home, filter="data")
    return home


def _count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute(sql).fetchone()[0])


def test_a_home_of_the_first_release_upgrades_and_goes_on(cli: RunCli, tmp_path: Path) -> None:
    home = _old_home(tmp_path)
    store_db = home / "trust" / "store.db"
    log_db = home / "log.db"
    events_before = _count(store_db, "SELECT COUNT(*) FROM stored_events")
    receipts_before = _count(
        log_db, "SELECT COUNT(*) FROM messages WHERE topic LIKE 'tip.rejected.%'"
    )

    assert receipts_before == 5  # the demo's five bad messages
    # the trust resumes where it was: nothing new to ingest, no receipt sent again
    run = last_json(cli("trust", "run", "--json").stdout)
    assert run["caught_up"] and run["messages"] == 0 and run["releases"] == []
    linkage = "event_type IN ('RecordLinked', 'LinkReviewOpened')"
    assert _count(store_db, f"SELECT COUNT(*) FROM stored_events WHERE NOT {linkage}") == (
        events_before
    )
    # linkage catches up with the old records: each victim record is placed in a person once
    linked = "SELECT COUNT(*) FROM stored_events WHERE event_type = 'RecordLinked'"
    assert _count(store_db, linked) == _count(store_db, "SELECT COUNT(*) FROM proj_persons") > 0
    assert (
        _count(log_db, "SELECT COUNT(*) FROM messages WHERE topic LIKE 'tip.rejected.%'")
        == receipts_before
    )
    # identity is per source now, taken from each accepted event's stored source
    assert _count(store_db, "SELECT COUNT(*) FROM accepted_event_ids WHERE source_id = ''") == 0
    assert _count(store_db, "SELECT COUNT(*) FROM accepted_event_ids") == 42
    assert "identical" in cli("trust", "rebuild").stdout
    cli("trust", "run", "--json")
    assert _count(store_db, linked) == _count(store_db, "SELECT COUNT(*) FROM proj_persons")

    # an upgraded trust gets its first custodian (the keys it has stay as they are)
    assert "custodian operator added" in cli("keys", "trust-init").stdout
    # the first-format agreements (consumers_allowed: [ministry]) allow the ministry's statistics
    subscribe(cli, stream=STREAM)
    subscribe(cli, "journalist", stream=STREAM)
    run = last_json(cli("trust", "run", "--json").stdout)
    # the ministry already holds release 1 of the stream (from before subscriptions): the next
    # release continues the numbering, so its files sit beside the old ones without a conflict
    assert run["releases"] == [f"{STREAM}#2"]
    old_out = home / "out"
    assert (old_out / STREAM / "000001.json").exists()
    got = cli("subscribe", "--consumer", "ministry", "--stream", STREAM, "--out", str(old_out))
    assert "ministry: 1 received" in got.stdout
    assert (old_out / STREAM / "000002.json").exists()

    # the agency's old outbox migrates: what it sent is known, nothing goes twice
    agency = home / "agencies" / "police"
    out = cli(
        "publish",
        "--source",
        "police",
        "--input",
        str(agency / "records.csv"),
        "--mapping",
        str(agency / "mapping.yaml"),
        "--json",
    )
    report = last_json(out.stdout)
    assert report["events_published"] == 0
    run = last_json(cli("trust", "run", "--json").stdout)
    assert run["accepted"] == 0
