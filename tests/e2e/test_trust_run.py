"""`tiptrust trust run` as an operator runs it: --follow says what it ingests, rejects and
releases, stops cleanly on SIGTERM, and a store that fails stops it with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from tiptrust.home import Home
from trust.store.eventstore import open_store
from trust.store.tables import proj_persons

from .conftest import TIPTRUST, RunCli, last_json, publish_args, subscribe
from .test_publish import _setup

STREAM = "victims_by_year_sex"  # a two-way stream: the four-way one costs seconds per release


def _until_said(proc: subprocess.Popen[str], errors: Path, said: Callable[[str], bool]) -> None:
    """Wait until the follower's stderr so far satisfies ``said`` (a minute at most)."""
    deadline = time.monotonic() + 60
    while not said(errors.read_text(errors="replace")):
        assert proc.poll() is None, errors.read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, errors.read_text(errors="replace")[-2000:]
        time.sleep(0.05)


def _until_stored(home: Path, source: str) -> None:
    """Wait until the running trust's store holds a record ``source`` sent (a minute at most)."""
    store = open_store(Home(home).store_url())
    held = select(proj_persons.c.victim_id).where(proj_persons.c.source_id == source).limit(1)
    try:
        deadline = time.monotonic() + 60
        while True:
            with store.engine.connect() as conn:
                if conn.execute(held).first() is not None:
                    return
            assert time.monotonic() < deadline, f"nothing of {source} was taken in"
            time.sleep(0.1)
    finally:
        store.close()


def test_follow_reports_and_stops_on_sigterm(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path, persons=300, sources=("nrm", "ngo_haven"))
    cli(*publish_args(sim, "nrm"))
    subscribe(cli)
    env = {
        **os.environ,
        "TIPTRUST_HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
        "TIPTRUST_LOGGING_LEVEL": "info",
    }
    errors = tmp_path / "follow.err"
    with errors.open("wb") as to:
        proc = subprocess.Popen(
            [*TIPTRUST, "trust", "run", "--follow", "--release-every", "0.2", "--json"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=to,
            text=True,
        )
    try:
        # polled, not a fixed wait: it has taken nrm's export in and released
        _until_said(proc, errors, lambda e: f"released ministry/{STREAM} #1" in e)
        # more arrives while it follows, from an agency publishing for the first time (a topic
        # made after the trust started): taken in without a restart
        cli(*publish_args(sim, "ngo_haven"))
        _until_stored(tmp_path / "home", "ngo_haven")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = errors.read_text(errors="replace")
    assert proc.returncode == 0, err[-2000:]
    summary = last_json(out)
    assert summary["accepted"] > 0 and summary["releases"]
    assert "ingested" in err and "accepted" in err
    assert f"released ministry/{STREAM} #1" in err
    assert "release.recorded" in err  # the library's own event codes, through the redaction filter
    names = [n for n in (sim / "nrm" / "records.csv").read_text().split(",") if len(n) >= 6]
    assert not any(n in err for n in names[:200])


def test_a_failing_store_stops_the_trust_with_a_clear_error(cli: RunCli, tmp_path: Path) -> None:
    _setup(cli, tmp_path, persons=50, sources=("nrm",))
    failed = cli(
        "trust", "run", "--store", "postgresql+psycopg://nobody@127.0.0.1:1/none", check=False
    )
    assert failed.returncode == 4
    assert "the event store failed" in failed.stderr and "nothing was lost" in failed.stderr
    assert "Traceback" not in failed.stderr
