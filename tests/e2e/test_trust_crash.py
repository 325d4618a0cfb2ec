"""The trust worker killed (SIGKILL) at a random point mid-stream loses nothing and counts
nothing twice: its projections equal an uninterrupted run's — on the embedded log and on Tansu."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from infra.broker import TansuBroker
from trust.store.eventstore import open_store
from trust.store.projections import snapshot

from .conftest import TIPTRUST, RunCli, last_json, publish_args
from .test_publish import SOURCES, _setup


def _comparable(store_url: str) -> dict[str, object]:
    store = open_store(store_url)
    snap = snapshot(store.engine)
    counts = store.count_by_type()
    rejections = store.rejection_counts()
    store.close()
    return {
        "proj_records": snap["proj_records"],
        "proj_persons": snap["proj_persons"],
        "accepted": counts.get("RecordAccepted", 0),
        "rejected": rejections,
    }


def _stored_events(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return int(c.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])
    except sqlite3.Error:
        return 0


def _publish_everything(cli: RunCli, tmp_path: Path, log_args: list[str]) -> None:
    sim = _setup(cli, tmp_path)
    for s in SOURCES:
        cli(*publish_args(sim, s, *log_args))


def _crash_and_compare(cli: RunCli, tmp_path: Path, log_args: list[str], seed: int) -> None:
    """Publish (unless the home was copied published already), then kill and compare."""
    if not (tmp_path / "home" / "log.db").exists() or log_args:
        _publish_everything(cli, tmp_path, log_args)
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    reference = last_json(cli("trust", "run", "--store", ref_url, "--json", *log_args).stdout)
    assert reference["accepted"] > 500

    crashed_db = tmp_path / "crashed.db"
    crashed_url = f"sqlite:///{crashed_db}"
    env = {**os.environ, "TIPTRUST_HOME": str(tmp_path / "home")}
    args = [*TIPTRUST, "trust", "run", "--store", crashed_url, "--batch", "40", "--json", *log_args]
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    target = random.Random(seed).randint(50, reference["accepted"] - 200)
    deadline = time.monotonic() + 120
    while _stored_events(crashed_db) < target:
        assert proc.poll() is None, (
            "the worker finished before the kill: " + proc.stderr.read().decode()[-2000:]
        )
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _stored_events(crashed_db)
    assert 0 < killed_at < reference["accepted"]

    resumed = last_json(cli("trust", "run", "--store", crashed_url, "--json", *log_args).stdout)
    assert resumed["caught_up"]
    assert _comparable(crashed_url) == _comparable(ref_url)


def test_sigkill_mid_stream_on_the_embedded_log(
    cli: RunCli, tmp_path: Path, published: Path
) -> None:
    _crash_and_compare(cli, tmp_path, [], seed=os.getpid())


@pytest.mark.kafka
def test_sigkill_mid_stream_on_tansu(cli: RunCli, tmp_path: Path, own_tansu: TansuBroker) -> None:
    _crash_and_compare(cli, tmp_path, ["--log", own_tansu.url], seed=os.getpid() + 1)


@pytest.mark.postgres
@pytest.mark.fresh_interpreters  # two runs compared: each its own process and hash seed
def test_postgres_store_gives_the_same_projections_and_rebuilds(
    cli: RunCli, tmp_path: Path, postgres_schema_url: str, published: Path
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'sqlite.db'}"
    a = last_json(cli("trust", "run", "--store", sqlite_url, "--json").stdout)
    b = last_json(cli("trust", "run", "--store", postgres_schema_url, "--json").stdout)
    assert a["accepted"] == b["accepted"] > 500
    assert _comparable(sqlite_url) == _comparable(postgres_schema_url)
    for url in (sqlite_url, postgres_schema_url):
        out = cli("trust", "rebuild", "--store", url).stdout
        assert "identical" in out
